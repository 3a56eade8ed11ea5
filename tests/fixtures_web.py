"""Fixtures for the web app tests (filled in by the web app work)."""
