"""Host API: a webinar's recordings, listed and downloaded (host key only).

Under /api/host/, so ``auth.host_guard`` answers 401 to anyone without the host key
(viewers' and presenters' LiveKit tokens included). A file is served only when its name
is one the recorder gives (``broadcaster.recordings.RECORDING_NAME``: no separators, no
dots to climb with) and it is a regular file in the webinar's own folder, not a link.
"""

from __future__ import annotations

import asyncio
import json
import os
import stat
from pathlib import Path
from typing import Any

from aiohttp import web

from broadcaster.recordings import RECORDING_NAME, recording_dir, safe_name
from broadcaster.web.errors import invalid, not_found
from broadcaster.web.keys import SETTINGS, WEBINARS

routes = web.RouteTableDef()

CONTENT_TYPES = {".mp4": "video/mp4", ".part": "video/mp4", ".vtt": "text/vtt",
                 ".json": "application/json"}


def _folder(request: web.Request) -> tuple[str, Path]:
    room = request.match_info["room"]
    request.app[WEBINARS].get(room)  # 422 malformed, 404 unknown
    return room, recording_dir(request.app[SETTINGS].recordings_dir, room)


def _regular(path: Path) -> os.stat_result | None:
    try:
        st = path.lstat()
    except OSError:
        return None
    return st if stat.S_ISREG(st.st_mode) else None


def scan(folder: Path) -> list[dict[str, Any]]:
    """Return the recordings in ``folder``, oldest first, with their sidecars."""
    out = []
    try:
        names = sorted(os.listdir(folder))
    except OSError:
        return []
    for name in names:
        if not RECORDING_NAME.match(name) or not name.endswith((".mp4", ".mp4.part")):
            continue
        st = _regular(folder / name)
        if st is None:
            continue
        stem = name.split(".", 1)[0]
        item: dict[str, Any] = {"file": name, "bytes": st.st_size,
                                "state": "recording" if name.endswith(".part") else "complete",
                                "subtitles": None, "duration_s": None}
        if _regular(folder / f"{stem}.vtt"):
            item["subtitles"] = f"{stem}.vtt"
        if _regular(info := folder / f"{stem}.json"):
            try:
                item["duration_s"] = json.loads(info.read_text()).get("duration_s")
            except (OSError, ValueError, AttributeError):
                pass
        out.append(item)
    return out


@routes.get("/api/host/webinars/{room}/recordings")
async def list_recordings(request: web.Request) -> web.Response:
    """List the webinar's recordings (the one being written too) and their captions."""
    room, folder = _folder(request)
    return web.json_response({"room": room, "recordings": await asyncio.to_thread(scan, folder)})


@routes.get("/api/host/webinars/{room}/recordings/{name}")
async def download(request: web.Request) -> web.StreamResponse:
    """One recording or sidecar file, as an attachment."""
    room, folder = _folder(request)
    name = request.match_info["name"]
    if not RECORDING_NAME.match(name):
        raise invalid("not a recording's file name")
    path = folder / name
    if await asyncio.to_thread(_regular, path) is None:
        raise not_found(f"no recording {name!r}")
    kind = CONTENT_TYPES[Path(name).suffix]
    return web.FileResponse(path, headers={
        "Content-Type": kind,
        "Content-Disposition": f'attachment; filename="{safe_name(room)}-{name}"',
        "Cache-Control": "no-store",
    })
