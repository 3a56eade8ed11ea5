"""Issue 11, finding 4: bad input never yields a 5xx, a traceback in the log, or a change.

Each case below answered 500 (and logged a ~110-line traceback) before the fix: a
5,000-digit number in a JSON field (Python's int digit limit), a lone surrogate in a
string, a non-UTF-8 webhook body, ``?after=²``, an avatar ``quality: []``, deep nesting,
and a client that aborts mid-upload. The web app and the avatar service both run for
real (the avatar service as its own process, with its log on disk).
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from broadcaster.config import WEBHOOK_PATH, Settings
from broadcaster.web.keys import STORE
from tests.fixtures_web import WebClient
from tests.test_web_api import snapshot

DIGITS = "7" * 5000
NESTED = "[" * 30_000 + "]" * 30_000


def assert_refused(status: int, data: Any, text: str) -> None:
    assert 400 <= status < 500, (status, text[:300])
    assert isinstance(data, dict), text[:300]


async def abort_mid_upload(host: str, port: int, path: str, headers: str = "") -> None:
    """Send the headers and part of a body, then reset the connection."""
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: 5000\r\n{headers}\r\n{{\"title\": \"half a bo".encode())
    await writer.drain()
    await asyncio.sleep(0.3)
    writer.transport.abort()
    await asyncio.sleep(0.3)


def new_lines(lines: list[str], since: int) -> list[str]:
    return lines[since:]


async def test_finding4_the_web_app_refuses_bad_input_without_a_5xx_or_a_traceback(
    web_client: WebClient, web_app: web.Application, loguru_lines: list[str],
) -> None:
    c = web_client
    w = await c.new_webinar("Hostile input")
    room = w["room"]
    viewer = (await c.join(room, "quinn")).data
    before = await snapshot(c, room)
    claims = dict(web_app[STORE].claims(room))
    mark = len(loguru_lines)
    join = f"/api/webinars/{room}/join"
    ask = f"/api/webinars/{room}/questions"
    raw_cases: list[tuple[str, str, bytes, dict[str, str]]] = [
        ("POST", join, f'{{"identity": {DIGITS}}}'.encode(), {}),
        ("POST", join, f'{{"identity": "ann", "name": {DIGITS}}}'.encode(), {}),
        ("POST", "/api/host/webinars", f'{{"title": {DIGITS}}}'.encode(), {"host": "1"}),
        ("POST", ask, f'{{"text": {DIGITS}}}'.encode(), {"token": viewer["token"]}),
        ("POST", join, b'{"identity": "ann", "role": "presenter", "code": "\\ud800"}', {}),
        ("POST", join, b'{"identity": "\\ud800"}', {}),
        ("POST", join, b'{"identity": "ann", "name": "\\udfff"}', {}),
        ("POST", join, b'{"identity": "ann", "claim": "\\ud800"}', {}),
        ("POST", ask, b'{"text": "why \\ud800?"}', {"token": viewer["token"]}),
        ("POST", "/api/host/webinars", b'{"title": "\\ud800"}', {"host": "1"}),
        ("POST", join, NESTED.encode(), {}),
        ("POST", "/api/host/webinars", NESTED.encode(), {"host": "1"}),
        ("POST", WEBHOOK_PATH, b"\xff\xfe\x00{not utf-8}", {"auth": "Bearer abc.def.ghi"}),
        ("POST", WEBHOOK_PATH, NESTED.encode(), {"auth": "Bearer abc.def.ghi"}),
    ]
    for method, path, raw, how in raw_cases:
        headers = {"Authorization": how["auth"]} if "auth" in how else None
        reply = await c.call(method, path, data=raw, host="host" in how,
                             token=how.get("token"), headers=headers)
        assert_refused(reply.status, reply.data, reply.text)
    for after in ("²", "٣", "1²", "\u0663\u0664"):
        reply = await c.host("GET", f"{ask}?after={after}")
        assert_refused(reply.status, reply.data, reply.text)
    settings = c.settings
    await abort_mid_upload("127.0.0.1", settings.web_port, "/api/host/webinars",
                           f"Authorization: Bearer {settings.host_key}\r\n")
    await abort_mid_upload("127.0.0.1", settings.web_port, join)

    assert (await c.call("GET", "/healthz")).status == 200
    assert await snapshot(c, room) == before
    assert web_app[STORE].claims(room).keys() == claims.keys()
    logged = new_lines(loguru_lines, mark)
    assert not [x for x in logged if "Traceback" in x or " ERROR " in x], \
        "\n".join(logged)[-3000:]


async def test_finding4_the_avatar_service_refuses_bad_input_without_a_5xx(
    avatar_service: str, avatar_settings: Settings, avatar_log: Path,
) -> None:
    base, s = avatar_service, avatar_settings
    key = {"X-API-KEY": s.avatar_api_key}
    good = {"mode": "LITE", "avatar_id": "local-presenter"}
    mark = len(avatar_log.read_bytes())
    bodies: list[bytes] = [
        json.dumps({**good, "video_settings": {"quality": []}}).encode(),
        json.dumps({**good, "video_settings": {"quality": {"a": 1}}}).encode(),
        json.dumps({**good, "video_settings": {"orientation": [1]}}).encode(),
        json.dumps({**good, "video_settings": {"encoding": {}}}).encode(),
        json.dumps({**good, "video_settings": []}).encode(),
        f'{{"mode": "LITE", "avatar_id": "local-presenter", "max_session_duration": {DIGITS}}}'
        .encode(),
        b'{"mode": "LITE", "avatar_id": "\\ud800"}',
        b'{"mode": "\\ud800", "avatar_id": "local-presenter"}',
        json.dumps({**good, "livekit_config": {"livekit_url": "ws://127.0.0.1:1",
                                               "livekit_room": "r",
                                               "livekit_client_token": "\ud800"}}).encode(
            "utf-8", "surrogatepass"),
        json.dumps({**good, "avatar_persona": {"voice_id": ["x"]}}).encode(),
        NESTED.encode(),
        b"\xff\xfe not utf-8",
    ]
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
        async def sessions() -> int:
            async with http.get(f"{base}/sessions", headers=key) as resp:
                return len((await resp.json())["data"]["sessions"])

        count = await sessions()
        for raw in bodies:
            for path in ("/sessions/token", "/sessions/stop"):
                async with http.post(f"{base}{path}", data=raw,
                                     headers={**key, "Content-Type": "application/json"}) as r:
                    text = await r.text()
                    assert r.content_type == "application/json", text[:200]
                    assert_refused(r.status, json.loads(text), text)
        # a token whose start would have joined a foreign (or dead) server is refused,
        # and a start/stop with junk never 5xxs either
        for headers in ({"Authorization": "Bearer \u00ff\u00fe"}, {"Authorization": "Basic x"},
                        {"Authorization": "Bearer " + "x" * 5000}):
            async with http.post(f"{base}/sessions/start", headers=headers) as r:
                assert_refused(r.status, await r.json(), "")
        port = int(base.split(":")[2].split("/")[0])
        await abort_mid_upload("127.0.0.1", port, "/v1/sessions/token",
                               f"X-API-KEY: {s.avatar_api_key}\r\n")
        async with http.get(base.removesuffix("/v1") + "/healthz") as r:
            assert r.status == 200
        assert await sessions() == count
    log = avatar_log.read_bytes()[mark:].decode(errors="replace")
    assert "Traceback" not in log and "ERROR" not in log, log[-3000:]


async def raw_status(port: int, request: bytes) -> tuple[int, bytes]:
    """Send ``request`` as is (bytes no client library would send); status and body."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        length = int(next((line.split(b":", 1)[1] for line in head.split(b"\r\n")
                           if line.lower().startswith(b"content-length:")), b"0"))
        body = await asyncio.wait_for(reader.readexactly(length), 10)
        return int(head.split(b" ", 2)[1]), body
    finally:
        writer.close()


async def test_finding4_undecodable_header_bytes_are_refused_not_crashed_on(
    web_client: WebClient, avatar_service: str, avatar_settings: Settings, avatar_log: Path,
    loguru_lines: list[str],
) -> None:
    """Header values arrive with undecodable bytes as lone surrogates; comparing them with
    a secret must not raise (constant-time compare of bytes, not of str)."""
    web_port = web_client.settings.web_port
    avatar_port = int(avatar_service.split(":")[2].split("/")[0])
    mark, amark = len(loguru_lines), len(avatar_log.read_bytes())
    junk = b"Bearer \xff\xfe\x80caf\xe9"
    cases = [
        (web_port, b"GET /api/host/webinars HTTP/1.1\r\nHost: x\r\nAuthorization: " + junk),
        (web_port, b"GET /metrics HTTP/1.1\r\nHost: x\r\nAuthorization: " + junk),
        (avatar_port, b"GET /v1/sessions HTTP/1.1\r\nHost: x\r\nX-API-KEY: \xff\xfe"),
        (avatar_port, b"POST /v1/sessions/stop HTTP/1.1\r\nHost: x\r\nAuthorization: " + junk
         + b"\r\nX-API-KEY: \xe9"),
        (avatar_port, b"GET /v1/ws/some-session?token=%FF%FE%C3%A9 HTTP/1.1\r\nHost: x"),
    ]
    for port, head in cases:
        status, body = await raw_status(port, head + b"\r\nContent-Length: 0\r\n\r\n")
        assert 400 <= status < 500, (head, status, body[:200])
        assert isinstance(json.loads(body), dict)
    assert not [x for x in loguru_lines[mark:] if "Traceback" in x or " ERROR " in x]
    log = avatar_log.read_bytes()[amark:].decode(errors="replace")
    assert "Traceback" not in log and "| ERROR" not in log, log[-2000:]


async def test_finding4_odd_paths_are_404s_and_write_no_line_of_their_own(
    web_client: WebClient, loguru_lines: list[str],
) -> None:
    """A NUL or an overlong name under /static/ (500 before), and a path whose decoded
    %0a would start a forged line in the (access) log."""
    mark = len(loguru_lines)
    for path in ("/static/%00", "/static/a%00b.js", "/static/" + "a" * 5000,
                 "/nope%0a2026-01-01 INFO forged: the host key is hunter2",
                 "/static/x%0d%0aFORGED"):
        reply = await web_client.call("GET", path)
        assert reply.status == 404 and reply.data and reply.data["error"], (path, reply.text)
    logged = loguru_lines[mark:]
    assert not [x for x in logged if "Traceback" in x or " ERROR " in x], logged
    assert not [x for x in logged if "\nFORGED" in x or "\n2026-01-01 INFO forged" in x
                or "\r" in x], logged


async def test_finding4_forged_webhooks_cannot_flood_the_log(
    web_client: WebClient, loguru_lines: list[str],
) -> None:
    """Anyone can post a forged webhook; the refusal is logged once per 10 s, not each."""
    mark = len(loguru_lines)
    for i in range(100):
        reply = await web_client.call("POST", WEBHOOK_PATH, data=b'{"event": "x"}',
                                      headers={"Authorization": f"Bearer forged.{i}.sig"})
        assert reply.status == 401
    refused = [x for x in loguru_lines[mark:] if "webhook refused" in x]
    assert len(refused) <= 1, refused[:5]
