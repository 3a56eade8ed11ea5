"""Property-based fuzzing of every JSON endpoint of the web app (issue 11).

For any body, path segment or header hypothesis makes up: never a 5xx, a JSON
``{"error"}`` on every refusal, nothing stored on a refusal (webinars, questions,
claims, bans counted in the app's own store), no traceback in the log, and the app
still answers. The session's real app on the real livekit-server.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any
from urllib.parse import quote

import pytest
import pytest_asyncio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from yarl import URL

from broadcaster.config import WEBHOOK_PATH
from broadcaster.roles import Role, mint_token
from broadcaster.web.keys import STORE
from tests.fixtures_web import WebClient
from tests.helpers.fuzz import SEGMENTS, bodies

FUZZ = settings(max_examples=40, deadline=None, derandomize=True,
                suppress_health_check=list(HealthCheck))


@dataclasses.dataclass
class Target:
    c: WebClient
    app: Any
    room: str
    viewer: str
    presenter: str
    log_mark: int


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def target(web_client: WebClient, web_app: Any, loguru_lines: list[str]) -> Target:
    w = await web_client.new_webinar("Fuzzed")
    room = w["room"]
    viewer = (await web_client.join(room, "fuzz-viewer")).data["token"]
    pres = (await web_client.join(room, "fuzz-pres", "presenter",
                                  code=w["presenter_code"])).data["token"]
    return Target(web_client, web_app, room, viewer, pres, len(loguru_lines))


def counts(t: Target) -> tuple[int, ...]:
    """Everything a refused request must leave alone, straight from the store."""
    store = t.app[STORE]
    db = store._db  # one read-only look at every table
    return tuple(db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
                 for table in ("webinars", "questions", "identity_claims", "bans")) + (
        hash(json.dumps([dataclasses.astuple(w) for w in store.webinars()])),)


async def send(t: Target, method: str, path: str, raw: bytes | None = None,
               headers: dict[str, str] | None = None) -> tuple[int, Any]:
    """One request; the answer's status and JSON (asserted JSON when it is an error)."""
    hdrs = {"Content-Type": "application/json", **(headers or {})}
    url = URL(t.c.base + path, encoded=True)
    async with t.c.http.request(method, url, data=raw, headers=hdrs) as resp:
        text = await resp.text(errors="replace")
        t.c.check(text)
        assert resp.status < 500, (method, path, raw[:200] if raw else raw, resp.status, text)
        data = None
        if resp.status >= 400:
            assert resp.content_type == "application/json", text[:200]
            data = json.loads(text)
            assert isinstance(data, dict) and data.get("error"), text[:200]
        return resp.status, data


async def refused_changes_nothing(t: Target, method: str, path: str, raw: bytes | None,
                                  headers: dict[str, str] | None = None) -> int:
    before = counts(t)
    status, _ = await send(t, method, path, raw, headers)
    if status >= 400:
        assert counts(t) == before, (method, path, raw)
    return status


def seg(s: str) -> str:
    return quote(s.encode("utf-8", "surrogatepass"), safe="")


def host(t: Target) -> dict[str, str]:
    return {"Authorization": f"Bearer {t.c.settings.host_key}"}


@FUZZ
@given(raw=bodies(["identity", "name", "role", "code", "claim"]))
async def test_join(target: Target, raw: bytes) -> None:
    await refused_changes_nothing(target, "POST", f"/api/webinars/{target.room}/join", raw)


@FUZZ
@given(raw=bodies(["text"]), who=st.sampled_from(["viewer", "presenter", "none", "junk"]))
async def test_ask(target: Target, raw: bytes, who: str) -> None:
    token = {"viewer": target.viewer, "presenter": target.presenter, "none": None,
             "junk": "x.y.z"}[who]
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    await refused_changes_nothing(target, "POST", f"/api/webinars/{target.room}/questions",
                                  raw, headers)


@FUZZ
@given(after=st.one_of(st.text(max_size=30), st.sampled_from(["²", "-0", "0x1", "1" * 40])),
       who=st.sampled_from(["host", "presenter", "viewer"]))
async def test_read_questions(target: Target, after: str, who: str) -> None:
    token = {"host": target.c.settings.host_key, "presenter": target.presenter,
             "viewer": target.viewer}[who]
    await send(target, "GET", f"/api/webinars/{target.room}/questions?after={seg(after)}",
               headers={"Authorization": f"Bearer {token}"})


@FUZZ
@given(room=SEGMENTS, tail=st.sampled_from(["", "/audience", "/join", "/questions"]),
       method=st.sampled_from(["GET", "POST"]))
async def test_public_paths(target: Target, room: str, tail: str, method: str) -> None:
    await refused_changes_nothing(target, method, f"/api/webinars/{seg(room)}{tail}", b"{}")


@FUZZ
@given(raw=bodies(["title", "room"]))
async def test_create_webinar(target: Target, raw: bytes) -> None:
    await refused_changes_nothing(target, "POST", "/api/host/webinars", raw, host(target))


@FUZZ
@given(identity=SEGMENTS, action=st.sampled_from(["promote", "demote", "remove"]),
       raw=bodies([]))
async def test_participant_actions(target: Target, identity: str, action: str,
                                   raw: bytes) -> None:
    path = f"/api/host/webinars/{target.room}/participants/{seg(identity)}/{action}"
    await refused_changes_nothing(target, "POST", path, raw, host(target))


@FUZZ
@given(action=st.sampled_from(["end", "token", "bot/start", "bot/stop", "presenter-code"]),
       raw=bodies([]))
async def test_webinar_actions_refuse_any_body(target: Target, action: str,
                                               raw: bytes) -> None:
    """These take no body; anything but nothing (or ``{}``) is refused, and changes nothing
    (the valid empty body would end the webinar under test, so it is left out)."""
    stripped = raw.strip()
    if stripped in (b"", b"{}"):
        return
    status = await refused_changes_nothing(target, "POST",
                                           f"/api/host/webinars/{target.room}/{action}", raw,
                                           host(target))
    if stripped.startswith(b"{") and stripped.endswith(b"}") and status < 400:
        pytest.fail(f"{action} accepted the body {raw[:80]!r}")


@FUZZ
@given(identity=SEGMENTS, method=st.sampled_from(["GET", "DELETE", "POST"]))
async def test_bans(target: Target, identity: str, method: str) -> None:
    await refused_changes_nothing(target, method,
                                  f"/api/host/webinars/{target.room}/bans/{seg(identity)}",
                                  None, host(target))
    await send(target, "GET", f"/api/host/webinars/{target.room}/bans", None, host(target))


@FUZZ
@given(raw=bodies(["event", "id", "room", "participant", "track", "createdAt"]),
       auth=st.one_of(st.none(), st.text(st.characters(min_codepoint=32, max_codepoint=255,
                                                       exclude_characters="\x7f"),
                                         max_size=60),
                      st.just("Bearer eyJhbGciOiJub25lIn0.e30.")))
async def test_webhook(target: Target, raw: bytes, auth: str | None) -> None:
    headers = {"Authorization": auth} if auth is not None else {}
    status = await refused_changes_nothing(target, "POST", WEBHOOK_PATH, raw, headers)
    assert status in (400, 401, 408, 413, 422), status  # nothing unsigned is ever accepted


@FUZZ
@given(hosthdr=st.text(st.characters(min_codepoint=33, max_codepoint=126), max_size=40),
       forwarded=st.one_of(st.none(), st.text(st.characters(min_codepoint=32,
                                                             max_codepoint=126), max_size=40)))
async def test_metrics_headers(target: Target, hosthdr: str, forwarded: str | None) -> None:
    headers = {"Host": hosthdr or "x"}
    if forwarded is not None:
        headers["X-Forwarded-For"] = forwarded
    await send(target, "GET", "/metrics", None, headers)


@FUZZ
@given(segment=SEGMENTS, where=st.sampled_from(["/static/{}", "/static/js/{}", "/w/{}",
                                                 "/w/{}/present", "/api/webinars/{}",
                                                 "/api/host/webinars/{}", "/{}"]))
async def test_pages_and_static_paths(target: Target, segment: str, where: str) -> None:
    await send(target, "GET", where.format(seg(segment)), headers=host(target))


async def test_after_all_that_the_app_answers_and_logged_no_traceback(
    target: Target, loguru_lines: list[str],
) -> None:
    status, _ = await send(target, "GET", "/healthz")
    assert status == 200
    fresh = mint_token(target.c.settings, Role.VIEWER, target.room, "after-fuzz")
    ok = await target.c.call("POST", f"/api/webinars/{target.room}/questions",
                             {"text": "still there?"}, token=fresh)
    assert ok.status == 201, ok.text
    logged = loguru_lines[target.log_mark:]
    assert not [x for x in logged if "Traceback" in x or " ERROR " in x], \
        "\n".join(logged)[-3000:]
