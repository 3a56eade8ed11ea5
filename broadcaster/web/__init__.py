"""The aiohttp web app: host console, presenter and viewer pages, and their JSON API."""

from broadcaster.web.app import create_app, serve

__all__ = ["create_app", "serve"]
