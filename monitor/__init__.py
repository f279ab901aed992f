"""hashtag-monitor: collect campaign hashtag posts, moderate them, publish the approved."""

__version__ = "0.1.0"
