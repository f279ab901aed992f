"""Training mode: a built-in sample of campaign posts, its images, and ``hashtag-monitor demo``.

Everything here is written for this project: people, schools, shops and
accounts are invented, and the email address is on example.com. Phone numbers
come from Ofcom's ranges reserved for drama (07700 900xxx, 0116 496 0xxx), so a
trainee who dials one reaches nobody.
"""
