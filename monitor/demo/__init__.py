"""Training mode: a built-in sample of campaign posts, its images, and ``hashtag-monitor demo``.

Everything here is written for this project: no real people, numbers or
schools. Phone numbers come from Ofcom's ranges reserved for drama
(07700 900xxx, 0116 496 0xxx), so a trainee who dials one reaches nobody.
"""
