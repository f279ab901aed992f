"""What detectors may consult about this install, built from the database.

The analyser process (see :mod:`monitor.analysis.runner`) opens its own
database connection and calls :func:`build_context` at most every
:data:`CONTEXT_MAX_AGE_SECONDS`, so a rule an admin adds applies within seconds
while a long list (10,000 place names) is not recompiled for every image.
"""

from __future__ import annotations

from sqlmodel import Session

from monitor.analysis.findings import Context

#: How long a built context is reused before it is built again from the database.
CONTEXT_MAX_AGE_SECONDS = 10.0


def build_context(session: Session) -> Context:
    """The detectors' context: the text rules and hash banks this install holds."""
    return Context()
