"""Issue 11, findings 5 and 9: limits per source address, claims that expire, timeouts for
idle and slow connections, private files, no secret link in the log, ``/metrics`` and
DNS rebinding, clean question text. Each app here is a real web app on the session's
real livekit-server, with the default limits unless the test says otherwise."""

from __future__ import annotations

import asyncio
import os
import stat
import time
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from broadcaster.config import WEBHOOK_PATH, Settings
from broadcaster.netutil import free_port, wait_http_ok
from broadcaster.roles import Role, mint_token
from broadcaster.web.keys import STORE
from tests.fixtures_web import WebClient, serving, unique_room


def fresh(livekit: Settings, tmp_path: Path, **overrides: object) -> Settings:
    return livekit.replace(state_dir=str(tmp_path), web_port=free_port(), **overrides)


async def test_finding5_joins_are_limited_per_address_with_room_for_an_office(
    livekit: Settings, tmp_path: Path,
) -> None:
    async with serving(fresh(livekit, tmp_path)) as c:
        w = await c.new_webinar("Join storm")
        room = w["room"]
        statuses = []
        retry = []
        for i in range(150):
            reply = await c.join(room, f"guest-{i}")
            statuses.append(reply.status)
            if reply.status == 429:
                retry.append(int(reply.headers["Retry-After"]))
                assert "join" in reply.data["error"], reply.text
        ok = statuses.count(200)
        assert ok >= 50, statuses  # an office of 50 behind one NAT all get in
        assert 429 in statuses, f"{ok} joins from one address in a burst, none refused"
        assert set(statuses) == {200, 429}
        assert ok <= c.settings.join_burst + 5, ok
        assert retry and all(1 <= r <= 60 for r in retry)
        assert len(c.store().claims(room)) == ok  # nothing stored for a refused join
        # X-Forwarded-For from an untrusted peer changes nothing
        reply = await c.join(room, "spoofed", headers={"X-Forwarded-For": "198.51.100.7"})
        assert reply.status == 429, reply.text


async def test_finding5_forwarded_addresses_count_only_behind_a_trusted_proxy(
    livekit: Settings, tmp_path: Path,
) -> None:
    s = fresh(livekit, tmp_path, trusted_proxies="127.0.0.1/32, ::1")
    async with serving(s) as c:
        room = (await c.new_webinar("Behind a proxy"))["room"]
        burst = s.join_burst
        # many people, each behind the proxy with their own address: nobody is refused
        for i in range(burst + 20):
            reply = await c.join(room, f"far-{i}", headers={
                "X-Forwarded-For": f"198.18.{i // 250}.{i % 250 + 1}"})
            assert reply.status == 200, (i, reply.text)
        # one of them hammering is limited on their own address
        codes = [(await c.join(room, f"near-{i}", headers={
            "X-Forwarded-For": "192.0.2.44"})).status for i in range(burst + 10)]
        assert codes.count(429) >= 5, codes
        # the proxy appends the peer it saw: a client-supplied left-most entry is ignored
        codes = [(await c.join(room, f"liar-{i}", headers={
            "X-Forwarded-For": f"10.9.{i}.1, 192.0.2.44"})).status for i in range(5)]
        assert codes == [429] * 5, codes


async def test_finding5_fresh_identities_cannot_flood_questions(
    livekit: Settings, tmp_path: Path,
) -> None:
    s = fresh(livekit, tmp_path)
    async with serving(s) as c:
        room = (await c.new_webinar("Question flood"))["room"]
        tokens = [mint_token(s, Role.VIEWER, room, f"asker-{i}") for i in range(60)]
        started = time.monotonic()
        codes = [(await c.call("POST", f"/api/webinars/{room}/questions", {"text": f"q {i}?"},
                               token=t)).status for i, t in enumerate(tokens)]
        took = time.monotonic() - started
        stored = (await c.host("GET", f"/api/webinars/{room}/questions")).data["questions"]
        assert 429 in codes, f"60 questions from 60 identities on one address in {took:.2f} s"
        assert len(stored) == codes.count(201) <= s.question_burst + 2


async def test_finding5_claims_expire_and_are_purged(
    livekit: Settings, tmp_path: Path,
) -> None:
    s = fresh(livekit, tmp_path, identity_claim_seconds=1)
    async with serving(s) as c:
        room = (await c.new_webinar("Claims expire"))["room"]
        for i in range(5):
            assert (await c.join(room, f"once-{i}")).status == 200
        store = c.store()
        assert len(store.claims(room)) == 5

        async def purged() -> bool:
            return store.claims(room) == {}

        deadline = time.monotonic() + 15
        while not await purged():
            assert time.monotonic() < deadline, store.claims(room)
            await asyncio.sleep(0.2)
        # and the identity is free again
        assert (await c.join(room, "once-0")).status == 200


# ------------------------------------------------------------------ finding 9
async def test_finding9_files_with_codes_questions_or_captions_are_private(
    web_client: WebClient, web_app: web.Application, livekit: Settings, tmp_path: Path,
) -> None:
    from broadcaster.bot.captions import CaptionPublisher

    room = (await web_client.new_webinar("Private files"))["room"]
    viewer = (await web_client.join(room, "priv")).data
    assert (await web_client.call("POST", f"/api/webinars/{room}/questions",
                                  {"text": "secret plans?"}, token=viewer["token"])).status == 201
    db = Path(livekit.state_dir) / "broadcaster.db"
    for path in (db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")):
        if path.exists():
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, (path, oct(path.stat().st_mode))
    s = livekit.replace(state_dir=str(tmp_path))
    pub = CaptionPublisher.for_session(s, "cap-room", None)
    await pub.publish("the avatar said this", speaker="avatar", final=True, segment="1",
                      source="test")
    assert pub.log_path is not None and pub.log_path.exists()
    assert stat.S_IMODE(pub.log_path.stat().st_mode) == 0o600
    # a database made by an earlier version (0644) is tightened on start
    old = livekit.replace(state_dir=str(tmp_path / "old"), web_port=free_port())
    Path(old.state_dir).mkdir()
    Path(old.db_path).touch(mode=0o644)
    os.chmod(old.db_path, 0o644)
    async with serving(old):
        assert stat.S_IMODE(Path(old.db_path).stat().st_mode) == 0o600


async def test_finding9_the_presenter_link_never_reaches_the_log(
    livekit: Settings, tmp_path: Path, loguru_lines: list[str],
) -> None:
    from broadcaster.web import serve

    s = fresh(livekit, tmp_path, demo_room=unique_room("demo"))
    mark = len(loguru_lines)
    task = asyncio.create_task(serve(s))
    try:
        await wait_http_ok(f"http://127.0.0.1:{s.web_port}/healthz", timeout=10)
        async with aiohttp.ClientSession() as http:
            c = WebClient(f"http://127.0.0.1:{s.web_port}", http, s)
            w = (await c.host("GET", f"/api/host/webinars/{s.demo_room}")).data
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    logged = "\n".join(loguru_lines[mark:])
    assert s.demo_room in logged  # the demo was announced...
    assert w["presenter_code"] not in logged  # ...without its invite code


async def test_finding9_metrics_check_the_host_header(web_client: WebClient) -> None:
    port = web_client.settings.web_port
    for host in ("evil.example", f"evil.example:{port}", "127.0.0.1.nip.io", "localhost.evil"):
        reply = await web_client.call("GET", "/metrics", headers={"Host": host})
        assert reply.status == 401, (host, reply.status)
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", "127.0.0.1", f"[::1]:{port}"):
        reply = await web_client.call("GET", "/metrics", headers={"Host": host})
        assert reply.status == 200, (host, reply.status)
    ok = await web_client.call("GET", "/metrics", headers={"Host": "evil.example"}, host=True)
    assert ok.status == 200  # the host key works from anywhere


async def test_finding9_questions_lose_control_and_bidi_characters(
    web_client: WebClient, web_app: web.Application,
) -> None:
    room = (await web_client.new_webinar("Clean text"))["room"]
    viewer = (await web_client.join(room, "bidi")).data
    path = f"/api/webinars/{room}/questions"
    dirty = "Is\x00 this\x1b[31m safe\u202e? \u2066txt.exe\u2069 \x07\x7f\x85 ok"
    reply = await web_client.call("POST", path, {"text": dirty}, token=viewer["token"])
    assert reply.status in (201, 422), reply.text
    stored = web_app[STORE].questions(room)
    for q in stored:
        assert not any(ch in q.text for ch in "\x00\x1b\x07\x7f\x85\u202e\u2066\u2069"), q.text
    if reply.status == 201:
        assert reply.data["text"] == stored[-1].text and "safe" in stored[-1].text
    reply = await web_client.call("POST", path, {"text": "\u202e\u2066\x00\x1b"},
                                  token=viewer["token"])
    assert reply.status == 422, reply.text  # nothing left to ask


async def _closed_within(host: str, port: int, seconds: float, send: bytes = b"",
                         trickle: bytes = b"") -> float:
    """Open a connection, send ``send``, then ``trickle`` a byte a second; the time until
    the server closes it (or ``seconds`` + 8 when it does not)."""
    reader, writer = await asyncio.open_connection(host, port)
    t0 = time.monotonic()
    writer.write(send)
    await writer.drain()
    try:
        for byte in trickle or b"\0" * 0:
            writer.write(bytes([byte]))
            await writer.drain()
            try:
                if await asyncio.wait_for(reader.read(1024), 1.0) == b"":
                    return time.monotonic() - t0
            except TimeoutError:
                pass
        while time.monotonic() - t0 < seconds + 8:
            try:
                data = await asyncio.wait_for(reader.read(65536), 0.5)
            except TimeoutError:
                continue
            if data == b"":
                return time.monotonic() - t0
        return seconds + 8
    except (ConnectionResetError, BrokenPipeError):
        return time.monotonic() - t0
    finally:
        writer.close()


async def test_finding9_idle_and_slow_connections_time_out(
    livekit: Settings, avatar_settings: Settings, tmp_path: Path,
) -> None:
    from broadcaster.avatar.app import serve as serve_avatar
    from broadcaster.web import serve as serve_web

    web = fresh(livekit, tmp_path, demo_room="", http_idle_timeout_seconds=2.0,
                http_body_timeout_seconds=2.0)
    avatar = avatar_settings.replace(avatar_port=free_port(), http_idle_timeout_seconds=2.0,
                                     http_body_timeout_seconds=2.0)
    tasks = [asyncio.create_task(serve_web(web)), asyncio.create_task(serve_avatar(avatar))]
    try:
        await wait_http_ok(f"http://127.0.0.1:{web.web_port}/healthz", timeout=10)
        await wait_http_ok(f"http://127.0.0.1:{avatar.avatar_port}/healthz", timeout=10)
        # an endpoint that reads a body: the webhook (any bearer), the avatar's token
        reads = {web.web_port: f"POST {WEBHOOK_PATH} HTTP/1.1\r\nAuthorization: Bearer x\r\n",
                 avatar.avatar_port: "POST /v1/sessions/token HTTP/1.1\r\n"
                                     f"X-API-KEY: {avatar.avatar_api_key}\r\n"}
        for port, head in reads.items():
            idle, headers, body = await asyncio.gather(
                _closed_within("127.0.0.1", port, 2.0),
                _closed_within("127.0.0.1", port, 2.0, b"GET /healthz HTTP/1.1\r\nHo",
                               trickle=b"st: x\r\nX-A: bbbbbbbbbbbbbbbbbbbbbbbbb"),
                _closed_within("127.0.0.1", port, 2.0,
                               f"{head}Host: x\r\nContent-Length: 100\r\n\r\n{{".encode(),
                               trickle=b"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"),
            )
            assert idle <= 4.0, ("idle", port, idle)
            assert headers <= 4.5, ("slow headers", port, headers)
            assert body <= 6.5, ("slow body", port, body)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
