"""Recordings in the host console's API: listed and downloaded by the host only.

The session's real web app on the real livekit-server; the files are laid out as the
recorder leaves them (tests/test_bot_recording.py makes real ones), plus what must never
be served: a link out of the folder, a file of another webinar, a secret next door.
Hypothesis makes up file names (traversal, encodings, separators) and keys.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest_asyncio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from yarl import URL

from broadcaster.recordings import recording_dir
from tests.fixtures_web import WebClient

FUZZ = settings(max_examples=60, deadline=None, derandomize=True,
                suppress_health_check=list(HealthCheck))
MP4 = "20261130T050000Z.mp4"
LIVE = "20261130T061500Z-1.mp4.part"
SECRET = b"the host's other webinar: private"


@dataclasses.dataclass
class Files:
    c: WebClient
    room: str
    folder: Path
    viewer: str
    presenter: str
    video: bytes


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def files(web_client: WebClient) -> Files:
    w = await web_client.new_webinar("Recorded")
    other = await web_client.new_webinar("Another")
    room = w["room"]
    s = web_client.settings
    folder = recording_dir(s.recordings_dir, room)
    folder.mkdir(parents=True, exist_ok=True)
    video = os.urandom(200_000)

    def private(path: Path, data: bytes) -> None:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)

    private(folder / MP4, video)
    private(folder / "20261130T050000Z.vtt", b"WEBVTT\n\n00:00:01.000 --> 00:00:02.000\nhi\n")
    private(folder / "20261130T050000Z.json", json.dumps({"duration_s": 12.5}).encode())
    private(folder / LIVE, b"\0" * 1000)
    private(folder / "notes.txt", SECRET)
    (folder / "20261130T070000Z.mp4").symlink_to("/etc/passwd")
    (folder / "20261130T080000Z.mp4").mkdir(exist_ok=True)
    theirs = recording_dir(s.recordings_dir, other["room"])
    theirs.mkdir(parents=True, exist_ok=True)
    private(theirs / MP4, SECRET)
    private(Path(s.recordings_dir) / "secret.json", SECRET)
    viewer = (await web_client.join(room, "rec-viewer")).data["token"]
    presenter = (await web_client.join(room, "rec-pres", "presenter",
                                       code=w["presenter_code"])).data["token"]
    return Files(web_client, room, folder, viewer, presenter, video)


async def get(f: Files, path: str, token: str | None) -> tuple[int, bytes, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    async with f.c.http.get(URL(f.c.base + path, encoded=True), headers=headers) as r:
        body = await r.read()
        assert r.status < 500, (path, r.status, body[:200])
        assert SECRET not in body and b"root:" not in body, path
        return r.status, body, r.headers


async def test_the_host_lists_and_downloads_a_webinars_recordings(files: Files) -> None:
    key = files.c.settings.host_key
    status, body, _ = await get(files, f"/api/host/webinars/{files.room}/recordings", key)
    assert status == 200
    listed = json.loads(body)["recordings"]
    assert listed == [
        {"file": MP4, "bytes": len(files.video), "state": "complete",
         "subtitles": "20261130T050000Z.vtt", "duration_s": 12.5},
        {"file": LIVE, "bytes": 1000, "state": "recording", "subtitles": None,
         "duration_s": None},
    ]
    status, body, headers = await get(files, f"/api/host/webinars/{files.room}/recordings/{MP4}",
                                      key)
    assert status == 200 and body == files.video
    assert headers["Content-Type"] == "video/mp4"
    assert headers["Content-Disposition"].startswith("attachment;")
    status, body, headers = await get(
        files, f"/api/host/webinars/{files.room}/recordings/20261130T050000Z.vtt", key)
    assert status == 200 and body.startswith(b"WEBVTT") and headers["Content-Type"] == "text/vtt"
    # serving changes nothing on disk: still the owner's only
    assert (files.folder / MP4).stat().st_mode & 0o777 == 0o600


async def test_a_link_a_folder_or_another_file_is_never_served(files: Files) -> None:
    key = files.c.settings.host_key
    base = f"/api/host/webinars/{files.room}/recordings/"
    for name, expected in (("20261130T070000Z.mp4", 404), ("20261130T080000Z.mp4", 404),
                           ("notes.txt", 422), ("..%2Fsecret.json", 422),
                           ("%2E%2E%2F..%2Fsecret.json", 422), ("20261130T999999Z.mp4", 404)):
        status, _, _ = await get(files, base + name, key)
        assert status == expected, name


@FUZZ
@given(who=st.sampled_from(["none", "viewer", "presenter", "forged", "empty", "almost"]),
       what=st.sampled_from(["", f"/{MP4}", f"/{LIVE}", "/20261130T050000Z.json"]))
async def test_only_the_host_key_opens_them(files: Files, who: str, what: str) -> None:
    key = files.c.settings.host_key
    token = {"none": None, "viewer": files.viewer, "presenter": files.presenter,
             "forged": "x" * len(key), "empty": "", "almost": key[:-1] + "?"}[who]
    status, body, _ = await get(files, f"/api/host/webinars/{files.room}/recordings{what}",
                                token)
    assert status == 401 and files.video not in body
    assert json.loads(body)["error"]


@FUZZ
@given(name=st.one_of(
    st.text(max_size=60),
    st.builds(lambda a, b: a + b, st.sampled_from(["../", "..%2F", "%2e%2e/", "./", "/",
                                                   "..\\", "%00", "~/"]),
              st.sampled_from(["secret.json", MP4, "etc/passwd", "..", ""])),
), room=st.sampled_from(["self", "other", "dots", "junk"]))
async def test_no_name_climbs_out(files: Files, name: str, room: str) -> None:
    key = files.c.settings.host_key
    r = {"self": files.room, "other": "no-such-webinar", "dots": "..", "junk": "%2e%2e"}[room]
    path = quote(name.encode("utf-8", "surrogatepass"), safe="%/")
    status, body, _ = await get(files, f"/api/host/webinars/{r}/recordings/{path}", key)
    if status == 200:  # only ever a file of this webinar's own folder
        assert body in (files.video, b"\0" * 1000) or body.startswith((b"WEBVTT", b"{"))
    else:
        assert status in (400, 404, 405, 422), (name, status)
