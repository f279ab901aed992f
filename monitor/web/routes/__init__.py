"""One router per surface of the web app."""
