"""Image safety: every stored image is looked at by detectors before a moderator decides.

The package has two halves with one seam between them:

- :mod:`monitor.analysis.findings` (this seam): what a detector is given and what it
  returns. A detector never touches the database and never approves anything; it
  turns one image into :class:`~monitor.analysis.findings.Finding` objects.
- The pipeline (jobs, the worker, the card's "being checked" state, approval gating)
  decides when each image is analysed and what each finding does to its post.
"""
