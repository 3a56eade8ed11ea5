"""Failed host-key attempts are limited per source address (a known limit closed): after
``host_key_failure_burst`` wrong keys an address gets 429 with a JSON reason and
``Retry-After`` for every host route, the right key included (no oracle), while the host
on another address is not slowed; no key, right or wrong, reaches a log line. A real web
app on the session's real livekit-server."""

from __future__ import annotations

import secrets
from pathlib import Path

from broadcaster.config import Settings
from broadcaster.netutil import free_port
from tests.fixtures_web import serving


async def test_wrong_host_keys_are_limited_per_address_and_never_logged(
    livekit: Settings, tmp_path: Path, loguru_lines: list[str],
) -> None:
    s = livekit.replace(state_dir=str(tmp_path), web_port=free_port(),
                        trusted_proxies="127.0.0.1/32, ::1")
    mark = len(loguru_lines)
    attacker = {"X-Forwarded-For": "192.0.2.66"}
    async with serving(s) as c:
        room = (await c.new_webinar("Key guessing"))["room"]
        guesses = [secrets.token_urlsafe(24) for _ in range(3 * s.host_key_failure_burst)]
        codes, retry = [], []
        for guess in guesses:
            reply = await c.call("GET", "/api/host/webinars", headers={
                **attacker, "Authorization": f"Bearer {guess}"})
            codes.append(reply.status)
            assert reply.data.get("error"), reply.text  # JSON with a reason, 401 or 429
            if reply.status == 429:
                retry.append(int(reply.headers["Retry-After"]))
                assert "host key" in reply.data["error"], reply.text
        assert set(codes) == {401, 429}, codes
        assert codes.index(429) <= s.host_key_failure_burst, codes
        assert codes.count(401) <= s.host_key_failure_burst + 1, codes
        assert retry and all(1 <= r <= 120 for r in retry), retry
        # no oracle: the right key from the limited address is refused as well
        reply = await c.call("GET", "/api/host/webinars", headers={
            **attacker, "Authorization": f"Bearer {s.host_key}"})
        assert reply.status == 429, reply.text
        # the host elsewhere is not slowed: every request with the key goes through
        for i in range(3 * s.host_key_failure_burst):
            reply = await c.call("GET", f"/api/host/webinars/{room}", host=True, headers={
                "X-Forwarded-For": "198.51.100.9"})
            assert reply.status == 200, (i, reply.text)
        # and someone else who mistypes once on another address gets a plain 401
        reply = await c.call("GET", "/api/host/webinars", headers={
            "X-Forwarded-For": "203.0.113.5", "Authorization": "Bearer almost-right-key-1234"})
        assert reply.status == 401, reply.text
    logged = "\n".join(loguru_lines[mark:])
    assert "192.0.2.66" in logged  # the limited address is named...
    for key in [*guesses, s.host_key, "almost-right-key-1234"]:
        assert key not in logged  # ...never a key
