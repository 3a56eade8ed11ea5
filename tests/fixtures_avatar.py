"""Fixtures for the local avatar service tests."""
