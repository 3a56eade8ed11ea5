"""No response, page or log line carries the LiveKit API secret (or the host key)."""

from __future__ import annotations

from pathlib import Path

from broadcaster.web.routes_pages import STATIC
from tests.fixtures_web import WebClient


async def test_nothing_leaks_the_secrets(web_client: WebClient, loguru_lines: list[str],
                                         livekit_log: Path):
    s = web_client.settings
    secrets = [s.livekit_api_secret, s.host_key]
    assert all(len(x) >= 16 for x in secrets)
    # a tour of every page, asset and endpoint, good and bad requests alike
    w = await web_client.new_webinar("Leak check")
    room = w["room"]
    joined = (await web_client.join(room, "lee")).data
    pres = (await web_client.join(room, "pres", "presenter", code=w["presenter_code"])).data
    await web_client.call("POST", f"/api/webinars/{room}/questions", {"text": "hi"},
                          token=joined["token"])
    paths = ["/", "/host", f"/w/{room}", f"/w/{room}/present?code={w['presenter_code']}",
             "/healthz", "/static/vendor/livekit-client.esm.mjs", "/static/js/protocol.js",
             f"/api/webinars/{room}", f"/api/webinars/{room}/audience", "/nope",
             f"/api/webinars/{room}/questions"]
    paths += ["/static/" + str(p.relative_to(STATIC)) for p in STATIC.rglob("*") if p.is_file()]
    for path in paths:
        await web_client.call("GET", path)
    await web_client.call("GET", f"/api/webinars/{room}/questions", token=pres["token"])
    for path in ["/api/host/webinars", f"/api/host/webinars/{room}",
                 f"/api/host/webinars/{room}/participants", f"/api/host/webinars/{room}/bot"]:
        await web_client.host("GET", path)
        await web_client.call("GET", path)  # 401
    await web_client.host("POST", f"/api/host/webinars/{room}/token")
    await web_client.call("POST", f"/api/webinars/{room}/join", data=b"{bad json")
    await web_client.host("POST", f"/api/host/webinars/{room}/end")

    # WebClient.call already failed on any answer holding a secret; check the count too
    assert len(web_client.seen) > 30
    for text in web_client.seen:
        assert not any(x in text for x in secrets)
    log = "\n".join(loguru_lines)
    assert "webinar" in log and not any(x in log for x in secrets)
    assert w["presenter_code"] not in log  # query strings stay out of the access log
    server_log = livekit_log.read_text(errors="replace")
    assert server_log and s.livekit_api_secret not in server_log
