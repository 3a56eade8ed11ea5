"""broadcaster: a webinar-style AI avatar broadcast from a self-hosted LiveKit server."""

__version__ = "0.1.0"
