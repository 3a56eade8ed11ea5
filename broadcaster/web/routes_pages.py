"""HTML pages, our static files, the vendored livekit-client module, protocol constants."""

from __future__ import annotations

import json
from pathlib import Path

from aiohttp import web

from broadcaster import protocol
from broadcaster.config import PROJECT_ROOT
from broadcaster.web.errors import ApiError
from broadcaster.web.keys import VENDOR_JS, WEBINARS

STATIC = Path(__file__).parent / "static"
LIVEKIT_CLIENT_JS = (
    PROJECT_ROOT / ".tools" / "npm" / "node_modules" / "livekit-client" / "dist"
    / "livekit-client.esm.mjs"
)
JS = "text/javascript"
MAX_STATIC_PATH = 200
routes = web.RouteTableDef()


def _page(name: str) -> web.FileResponse:
    """Serve a page revalidated on each load, so an upgrade reaches browsers at once."""
    return web.FileResponse(STATIC / name, headers={"Cache-Control": "no-cache"})


@routes.get("/")
async def index(request: web.Request) -> web.FileResponse:
    """``GET /`` (anyone): the landing page."""
    return _page("index.html")


@routes.get("/host")
async def host_console(request: web.Request) -> web.FileResponse:
    """``GET /host`` (anyone): the console page; it shows nothing until the host key checks."""
    return _page("host.html")


@routes.get("/w/{room}")
async def viewer_page(request: web.Request) -> web.FileResponse:
    """``GET /w/{room}`` (anyone with the link): the viewer page; JSON 404 for no webinar."""
    request.app[WEBINARS].get(request.match_info["room"])
    return _page("viewer.html")


@routes.get("/w/{room}/present")
async def presenter_page(request: web.Request) -> web.FileResponse:
    """``GET /w/{room}/present`` (anyone): the presenter page; the join checks the code."""
    request.app[WEBINARS].get(request.match_info["room"])
    return _page("presenter.html")


@routes.get("/static/vendor/livekit-client.esm.mjs")
async def livekit_client(request: web.Request) -> web.FileResponse:
    """``GET /static/vendor/livekit-client.esm.mjs``: the npm build, served by us (CSP 'self')."""
    path = request.app[VENDOR_JS]
    if not path.is_file():
        raise ApiError(503, "livekit-client is not installed; run deploy/install.sh")
    return web.FileResponse(
        path, headers={"Content-Type": JS, "Cache-Control": "public, max-age=3600"}
    )


@routes.get("/static/js/protocol.js")
async def protocol_js(request: web.Request) -> web.Response:
    """broadcaster/protocol.py as an ES module: the pages and Python share one source."""
    names = [n for n in dir(protocol) if n.isupper() and isinstance(getattr(protocol, n), str)]
    lines = [f"export const {n} = {json.dumps(getattr(protocol, n))};" for n in sorted(names)]
    return web.Response(text="\n".join(lines) + "\n", content_type=JS,
                        headers={"Cache-Control": "no-cache"})


@routes.get("/static/{path:.+}")
async def static(request: web.Request) -> web.FileResponse:
    """``GET /static/{path}`` (anyone): our own files only.

    No directory listing, no way out of static/, and JSON 404s, also for names no file
    system takes (NUL bytes, overlong names).
    """
    name = request.match_info["path"]
    if "\x00" in name or len(name) > MAX_STATIC_PATH:
        raise ApiError(404, "not found")
    try:
        path = (STATIC / name).resolve()
        found = path.is_relative_to(STATIC.resolve()) and path.is_file()
    except (OSError, ValueError):
        found = False
    if not found:
        raise ApiError(404, "not found")
    content_type = JS if path.suffix in (".js", ".mjs") else None
    headers = {"Cache-Control": "no-cache"}
    if content_type:
        headers["Content-Type"] = content_type
    return web.FileResponse(path, headers=headers)
