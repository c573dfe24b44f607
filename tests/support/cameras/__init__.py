"""Cameras for tests: clips made with ffmpeg, and the servers that serve them on 127.0.0.1."""

# The user and password the test cameras ask for.
LOGIN = ("viewer", "s3cret-Pa55")
