"""Local HTTP servers that speak platforms' documented APIs, for tests only."""
