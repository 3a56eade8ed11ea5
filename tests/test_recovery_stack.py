"""The whole ``broadcaster up`` under watch: a Chromium viewer across a livekit-server
restart, a web app crash, then SIGTERM with an answer in flight (issue 15).

One real stack for the module, started as a newcomer starts it (``broadcaster up``: its
supervisor, livekit-server, the local avatar service, the web app and the demo room's
real bot). No mocks.

1. A viewer page stays open in Chromium while livekit-server is SIGKILLed (the
   supervisor starts it again after 1 s). The page must show its "Reconnecting…" banner,
   rejoin through the web app on its own (no reload) and show the live avatar (the
   picture moving, ``#stage[data-avatar='live']``) within 10 s of the kill (issue 15's
   goal); the banner within 2.5 s.
2. The web app is SIGKILLed, then SIGTERMed, under a watching SDK viewer: its bot goes
   with it (the supervisor ends the orphan; a SIGTERMed web app stops it), and the
   restarted web app starts the bot again by itself (broadcaster/web/bot_control.py
   ``resume``); the live avatar is back at the viewer within ``WEB_BUDGET_S``.
3. A viewer page, the presenter page and the host console stay open in Chromium while
   the bot, then the web app, is SIGKILLed: the pages' pictures move again without a
   reload (the longest time with no frame presented, within budget), and the host
   console says "Reconnecting to the server…" meanwhile, then hides a question typed
   after the restart.
4. livekit-server is sent SIGTERM, then SIGINT, straight (an operator's ``kill``): its
   first signal only drains, so the supervisor must end the drain; it must be gone within
   5 s and the SDK viewer's frames back (broadcaster/livekit_drain.py).
5. The avatar is asked a question and, while it says the answer (its words arrive as
   interim captions), ``up`` gets SIGTERM: it exits 0, the avatar session is stopped by
   the bot itself, and not one process of the tree (walked in /proc before) is left.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from livekit import rtc
from loguru import logger

from bench import procstat
from bench.e2e import wait_bot_live
from bench.faults import Audience, wait_live
from bench.servers import Stack, up_stack
from broadcaster.protocol import CAPTION_FINAL_ATTR, CAPTION_SPEAKER_ATTR, CAPTION_TOPIC
from broadcaster.room_connect import connect_room
from tests.helpers.browser import chromium, join_page, needs_chromium, open_page, screenshot_dir
from tests.helpers.page_media import FRAME_TIMES_JS, longest_no_frame, watch_until_back
from tests.helpers.page_media import changes as page_changes

pytestmark = [pytest.mark.timeout(240)]

LIVEKIT_GOAL_S = 10.0
#: the "Reconnecting…" banner comes this soon after the kill. livekit-client tries to
#: resume at 0, 0.3, 1.5, 4.2, 9.0 s and emits ``Reconnecting`` only when a resume fails
#: against the restarted server: the page showed the banner 5.2-9.3 s after the kill and
#: rejoined only then (live again 7.5-11.5 s; 11.2 s on 2026-11-30 with the bot's
#: StageKeeper). It now takes the SDK's ``SignalReconnecting`` as the drop.
BANNER_S = 2.5
#: the web app's crash costs its bot (the supervisor ends the orphan); a restarted bot is
#: live in 3-5 s (bench/faults.py, goal 6 s): the web app's restart adds under a second
WEB_BUDGET_S = 8.0

#: records, every 100 ms, what the viewer sees: the stage's avatar state and the banner
RECORDER = """() => {
  window.__notReloaded = true;
  window.__marks = [];
  setInterval(() => {
    const banner = document.querySelector('.reconnect-banner');
    window.__marks.push({t: Date.now(),
                         avatar: document.querySelector('#stage').dataset.avatar,
                         banner: Boolean(banner && !banner.hidden)});
  }, 100);
}"""


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def stack() -> AsyncIterator[Stack]:
    async with up_stack() as running, aiohttp.ClientSession() as http:
        await wait_bot_live(running, http, 180)
        yield running


def web_url(stack: Stack) -> str:
    return f"http://{stack.settings.web_host}:{stack.settings.web_port}"


def part(stack: Stack, name: str) -> int:
    found = procstat.classify(procstat.descendants(stack.proc.pid))
    assert name in found, f"no {name} under `broadcaster up`: {found}\n{stack.tail()}"
    return found[name]


@needs_chromium
@pytest.mark.browser
async def test_a_viewer_page_rejoins_by_itself_after_livekit_server_restarts(
        stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> None:
    room = stack.settings.demo_room
    problems: list[str] = []
    async with chromium(tmp_path_factory.mktemp("chromium-lk-restart")) as browser:
        page = await open_page(browser, f"{web_url(stack)}/w/{room}", problems,
                               console_errors=False)  # a dropped server logs errors
        await page.fill("#join-name", "Rita Rejoin")
        await page.click("#join-button")
        await page.wait_for_selector("#stage[data-avatar='live']", timeout=60000)
        await page.evaluate(RECORDER)
        await asyncio.sleep(1.0)
        sfu = part(stack, "sfu")
        t0 = time.time() * 1000
        os.kill(sfu, signal.SIGKILL)
        marks: list[dict[str, Any]] = []
        deadline = time.monotonic() + 30
        live_at = None
        while time.monotonic() < deadline and live_at is None:
            await asyncio.sleep(0.25)
            marks = [m for m in await page.evaluate("window.__marks") if m["t"] > t0]
            away = next((m["t"] for m in marks if m["avatar"] != "live"), None)
            if away is not None:
                live_at = next((m["t"] for m in marks if m["t"] > away
                                and m["avatar"] == "live"), None)
        await page.screenshot(path=str(screenshot_dir() / "stage-after-livekit-restart.png"))
        banner = next((m["t"] for m in marks if m["banner"]), None)
        away = next((m["t"] for m in marks if m["avatar"] != "live"), None)
        fmt = lambda t: None if t is None else round((t - t0) / 1000, 2)  # noqa: E731
        logger.info(f"livekit-server killed under a Chromium viewer: slate after {fmt(away)} s, "
                    f"banner after {fmt(banner)} s, live avatar back after {fmt(live_at)} s")
        print(f"\nlivekit-server restart at a Chromium viewer: slate {fmt(away)} s, "
              f"banner {fmt(banner)} s, live again {fmt(live_at)} s (goal {LIVEKIT_GOAL_S} s)")
        assert sfu != part(stack, "sfu"), "the supervisor started a new livekit-server"
        assert await page.evaluate("window.__notReloaded === true"), "the page was reloaded"
        assert banner is not None, "no 'Reconnecting…' banner while the server was gone"
        assert banner - t0 <= BANNER_S * 1000, f"the banner came {fmt(banner)} s after"
        assert away is not None and away - t0 <= 2000 + 500, f"slate after {fmt(away)} s"
        assert live_at is not None, f"no live avatar again in 30 s:\n{stack.tail()}"
        assert (live_at - t0) / 1000 <= LIVEKIT_GOAL_S, f"live again after {fmt(live_at)} s"
        final = (await page.evaluate("window.__marks"))[-1]
        assert final["avatar"] == "live" and not final["banner"]
    assert not [p for p in problems if "pageerror" in p], problems


class CaptionWatch:
    """A viewer subscribed to nothing that keeps the avatar's caption lines as they come."""

    def __init__(self) -> None:
        self.room = rtc.Room()
        self.lines: list[tuple[float, bool, str]] = []  # (time, final, text), avatar only
        self._tasks: set[asyncio.Task[None]] = set()

    async def join(self, url: str, token: str) -> None:
        def on_stream(reader: rtc.TextStreamReader, _sender: str) -> None:
            task = asyncio.create_task(self._read(reader))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

        self.room.register_text_stream_handler(CAPTION_TOPIC, on_stream)
        await connect_room(self.room, url, token, seconds=20,
                           options=rtc.RoomOptions(auto_subscribe=False))

    async def _read(self, reader: rtc.TextStreamReader) -> None:
        text = await reader.read_all()
        attrs = reader.info.attributes or {}
        if attrs.get(CAPTION_SPEAKER_ATTR) == "avatar":
            self.lines.append((time.monotonic(), attrs.get(CAPTION_FINAL_ATTR) == "true", text))


def starttime(pid: int) -> int | None:
    """The process's start time in clock ticks (tells a reused pid apart), or None."""
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
async def test_a_web_app_crash_brings_the_bot_back_without_the_host(
        stack: Stack, sig: signal.Signals) -> None:
    """SIGKILL to the web app: the supervisor ends its orphaned bot and restarts the web
    app, which must start the bot again by itself (nobody is at the host console).
    SIGTERM (an operator, a redeploy): the web app stops its bot and exits 0, the
    supervisor restarts it, and the bot must come back the same way (it used not to: a
    clean stop forgot the bots, and the stage stayed on its slate until a host came)."""
    s = stack.settings
    async with aiohttp.ClientSession() as http:
        await wait_bot_live(stack, http, 60)  # after the restart test, too
        viewer = Audience(web_url(stack), s.demo_room, s.bot_identity,
                          identity=f"viewer-{sig.name.lower()}")
        await viewer.join(http)
        keeper = asyncio.create_task(viewer.keep(http))
        try:
            await wait_live(viewer, 30)
            old_bot = part(stack, "bot")
            t0 = time.monotonic()
            os.kill(part(stack, "web"), sig)
            while viewer.watcher.live_after(t0) is None and time.monotonic() < t0 + 30:
                await asyncio.sleep(0.1)
            back = viewer.watcher.live_after(t0)
        finally:
            keeper.cancel()
            await asyncio.gather(keeper, return_exceptions=True)
            await viewer.watcher.leave()
    logger.info(f"web app sent {sig.name}: live avatar back at the viewer after {back} s")
    assert back is not None, f"the avatar never came back:\n{stack.tail(60)}"
    assert part(stack, "bot") != old_bot
    assert back <= WEB_BUDGET_S, f"{back:.1f} s"


#: when the host console shows "Reconnecting to the server…" (Date.now() values)
SERVER_BANNER_JS = """() => {
  window.__serverDown = [];
  setInterval(() => {
    if (!document.querySelector('#server-state').hidden) window.__serverDown.push(Date.now());
  }, 100);
}"""

#: the bot's crash: a restarted bot is live in 3-4 s at an SDK viewer (docs/recovery.md,
#: goal 6 s); the page adds its own subscribe and first decoded frame
BOT_BUDGET_S = 6.0
#: what a page adds to the SDK viewer's budgets (its subscribe and first key frame:
#: ~1.4 s; up to 5.4 s for the bot and 8.5 s for the web app on a busy box)
PAGE_EXTRA_S = 2.0


async def ask_as_viewer(http: aiohttp.ClientSession, web: str, room: str, identity: str,
                        text: str) -> str:
    """Join as a viewer through the web app and type ``text`` as a question; its id."""
    async with http.post(f"{web}/api/webinars/{room}/join",
                         json={"identity": identity, "role": "viewer"}) as r:
        joined = await r.json()
        assert r.status == 200, joined
    async with http.post(f"{web}/api/webinars/{room}/questions", json={"text": text},
                         headers={"Authorization": f"Bearer {joined['token']}"}) as r:
        asked = await r.json()
        assert r.status == 201, asked
    return str(asked["id"])


@needs_chromium
@pytest.mark.browser
async def test_the_pages_carry_on_across_a_bot_and_a_web_app_crash(
        stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> None:
    """A viewer page, the presenter page and the host console stay open in Chromium
    while the bot, then the web app (which takes its bot along), is SIGKILLed and the
    supervisor (or the web app's launcher) starts it again. Without a reload: the viewer
    and the presenter see the avatar's picture moving again within the budget (measured:
    the longest time the page presented no frame), and the host console, still signed
    in, lists a question typed after the restart and hides it."""
    s, room, web = stack.settings, stack.settings.demo_room, web_url(stack)
    host_api = {"Authorization": f"Bearer {s.host_key}"}
    problems: list[str] = []
    async with aiohttp.ClientSession() as http, \
            chromium(tmp_path_factory.mktemp("chromium-pages-crash")) as browser:
        await wait_bot_live(stack, http, 60)  # after the tests before
        async with http.get(f"{web}/api/host/webinars/{room}", headers=host_api) as r:
            webinar = await r.json()
        viewer = await join_page(browser, f"{web}/w/{room}", "Vera Viewer", problems,
                                 ready="#stage[data-avatar='live']")
        presenter = await join_page(browser, webinar["presenter_url"], "Pat Presenter",
                                    problems, ready="#stage[data-avatar='live']")
        host = await open_page(browser, f"{web}/host#key={s.host_key}", problems,
                               console_errors=False)  # the fetches that fail meanwhile
        await host.wait_for_selector("body[data-auth='yes']", timeout=10000)
        await host.click(f"#webinars .w-item[data-room='{room}']")
        for page in (viewer, presenter, host):
            await page.evaluate(FRAME_TIMES_JS)
        await host.evaluate(SERVER_BANNER_JS)
        figures: dict[str, float] = {}
        for name in ("bot", "web"):
            await asyncio.sleep(1.0)
            t0 = time.time() * 1000
            killed = time.monotonic()
            os.kill(part(stack, name), signal.SIGKILL)
            back, seen = await watch_until_back(viewer, killed, 30)
            assert back is not None, f"{name}: {page_changes(seen)}\n{stack.tail(60)}"
            figures[f"{name}_back"] = back
            figures[f"{name}_no_frame"] = await longest_no_frame(viewer, t0)
            await presenter.wait_for_function(  # the presenter's stage moves again, too
                "() => document.querySelector('#stage').dataset.avatar === 'live' && "
                "window.__frameAt.length && Date.now() - window.__frameAt.at(-1) < 500",
                timeout=5000)
            figures[f"{name}_presenter_no_frame"] = await longest_no_frame(presenter, t0)
        # meanwhile the console said it was reconnecting (it showed a stale list, silently)
        said = [t for t in await host.evaluate("window.__serverDown") if t >= t0]
        figures["host_reconnecting_after"] = (said[0] - t0) / 1000 if said else -1
        await host.wait_for_selector("#server-state", state="hidden", timeout=5000)
        # the host console after the web app's restart: still signed in, it lists a
        # question typed now and hides it, without a reload
        qid = await ask_as_viewer(http, web, room, "late-lou", "Is the recording shared?")
        item = f"#host-questions li[data-id='{qid}']"
        await host.click(f"{item} button:has-text('Hide')", timeout=10000)
        await host.wait_for_selector(f"{item}[data-state='hidden']", timeout=10000)
        async with http.get(f"{web}/api/host/webinars/{room}/qa", headers=host_api) as r:
            states = {str(q["id"]): q["state"] for q in (await r.json())["questions"]}
        logger.info(f"Chromium pages across crashes: {figures}")
        print(f"\npages across crashes: {figures}")
        for page in (viewer, presenter, host):
            assert await page.evaluate("window.__beforeTheKill === true"), "a page reloaded"
        assert states.get(qid) == "hidden", states
        assert said, f"the host console never said it was reconnecting: {figures}"
        sound = [await p.evaluate("document.querySelector('#stage').dataset.audio")
                 for p in (viewer, presenter)]
        assert sound == ["on", "on"], f"a page lost its sound (viewer, presenter): {sound}"
        assert figures["bot_no_frame"] <= BOT_BUDGET_S + PAGE_EXTRA_S, figures
        assert figures["web_no_frame"] <= WEB_BUDGET_S + PAGE_EXTRA_S, figures
        assert figures["web_presenter_no_frame"] <= WEB_BUDGET_S + PAGE_EXTRA_S, figures
    # livekit-client's own play() of a re-attached track, interrupted by the next one
    # (an AbortError nobody awaits): harmless, and not ours to catch
    assert not [p for p in problems if "pageerror" in p and "interrupted by a new load" not in p], \
        problems

#: an outside SIGTERM/SIGINT to livekit-server under ``up`` must end it this soon. Its own
#: first signal only drains (waits for every participant to leave, forever under a live
#: webinar); the supervisor reads the drain in its log and gives the second signal
DRAIN_EXIT_S = 5.0


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
async def test_an_outside_signal_to_livekit_server_ends_it_and_viewers_come_back(
        stack: Stack, sig: signal.Signals) -> None:
    """An operator's ``kill -TERM`` (or Ctrl-C's SIGINT) straight to livekit-server under
    a live webinar: it must exit within DRAIN_EXIT_S, the supervisor restart it, and an
    SDK viewer see the live avatar again as after a SIGKILL (LIVEKIT_GOAL_S)."""
    s = stack.settings
    async with aiohttp.ClientSession() as http:
        await wait_bot_live(stack, http, 90)
        viewer = Audience(web_url(stack), s.demo_room, s.bot_identity,
                          identity=f"viewer-lk-{sig.name.lower()}")
        await viewer.join(http)
        keeper = asyncio.create_task(viewer.keep(http))
        gone_after = back = gap = None
        live = False
        try:
            await wait_live(viewer, 60)
            sfu = part(stack, "sfu")
            t0 = time.monotonic()
            os.kill(sfu, sig)
            while time.monotonic() < t0 + 30:
                if gone_after is None and _gone(sfu):
                    gone_after = time.monotonic() - t0
                if (gone_after is not None and viewer.watcher.live_now()
                        and time.monotonic() > t0 + gone_after + 1.5):
                    break  # frames again, and not just the last ones before the exit
                if gone_after is None and time.monotonic() > t0 + DRAIN_EXIT_S + 1:
                    break  # still draining: no need to wait the rest out
                await asyncio.sleep(0.05)
            gap, back = _longest_gap_end(viewer, t0)
            live = viewer.watcher.live_now()
        finally:
            keeper.cancel()
            await asyncio.gather(keeper, return_exceptions=True)
            await viewer.watcher.leave()
    logger.info(f"livekit-server sent {sig.name} under a viewer: gone after {gone_after} s, "
                f"frames again after {back} s, longest gap without a frame {gap} s")
    print(f"\nlivekit-server {sig.name}: gone {gone_after} s, frames again {back} s, "
          f"longest gap {gap} s")
    assert gone_after is not None, f"livekit-server still running {DRAIN_EXIT_S + 1:.0f} s " \
        f"after {sig.name} (draining):\n{stack.tail(30)}"
    assert gone_after <= DRAIN_EXIT_S, f"{gone_after:.1f} s"
    assert part(stack, "sfu") != sfu, "the supervisor started a new livekit-server"
    assert live, f"no live avatar at the viewer:\n{stack.tail(30)}"
    assert back is not None and back <= LIVEKIT_GOAL_S, f"frames again after {back} s"


async def test_sigterm_with_an_answer_in_flight_leaves_no_process_and_no_session(
        stack: Stack) -> None:
    s, room, web = stack.settings, stack.settings.demo_room, web_url(stack)
    host = {"Authorization": f"Bearer {s.host_key}"}
    async with aiohttp.ClientSession() as http:
        await wait_bot_live(stack, http, 60)  # after the restart test, too
        async with http.post(f"{web}/api/webinars/{room}/join",
                             json={"identity": "cora", "role": "viewer"}) as r:
            joined = await r.json()
            assert r.status == 200, joined
        watch = CaptionWatch()
        await watch.join(joined["url"], joined["token"])
        async with http.post(f"{web}/api/webinars/{room}/questions",
                             json={"text": "What is on the agenda today?"},
                             headers={"Authorization": f"Bearer {joined['token']}"}) as r:
            qid = (await r.json())["id"]
            assert r.status == 201
        async with http.post(f"{web}/api/host/webinars/{room}/questions/{qid}/ask", json={},
                             headers=host) as r:
            assert r.status == 200, await r.text()
        deadline = time.monotonic() + 30
        while not any(not final for _, final, _ in watch.lines):  # the avatar is talking
            assert time.monotonic() < deadline, f"no answer began:\n{stack.tail()}"
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)
    started = re.findall(r"avatar session (\S+) started", "\n".join(stack.grep("started")))
    assert started, stack.tail()
    tree = {pid: starttime(pid) for pid in procstat.descendants(stack.proc.pid)}
    names = procstat.classify(list(tree))
    assert {"sfu", "avatar", "web", "bot"} <= set(names), names
    t0 = time.monotonic()
    stack.proc.send_signal(signal.SIGTERM)
    code = await asyncio.wait_for(stack.proc.wait(), 60)
    took = time.monotonic() - t0
    await asyncio.sleep(0.5)
    left = [pid for pid, st in tree.items() if st is not None and starttime(pid) == st]
    logger.info(f"SIGTERM to `up` mid-answer: exit {code} after {took:.1f} s; "
                f"{len(tree)} processes before, {len(left)} left")
    await watch.room.disconnect()
    assert code == 0, stack.tail(80)
    assert not left, [(p, procstat.argv(p)) for p in left]
    # the answer was finished or cut cleanly: the viewer's last avatar line is a final
    # line (not words left hanging), and it is in the webinar's captions on disk
    assert watch.lines and watch.lines[-1][1], f"left hanging: {watch.lines[-3:]}"
    disk = Path(s.state_dir) / "sessions" / room / "captions.jsonl"
    kept = [json.loads(x) for x in disk.read_text().splitlines()] if disk.exists() else []
    assert watch.lines[-1][2] in [k["text"] for k in kept if k["speaker"] == "avatar"], kept
    assert stack.grep(rf"avatar session {re.escape(started[-1])} stopped: stopped by client"), \
        stack.tail(80)
    assert stack.grep(r"bot for room \S+ stopped \(exit 0\)"), stack.tail(80)
    assert not stack.grep(r"ignored SIGTERM"), stack.tail(80)
    assert took < 15, f"shutdown took {took:.1f} s"


def _gone(pid: int) -> bool:
    """Whether ``pid`` ended (a zombie counts: the supervisor has not reaped it yet)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return True


def _longest_gap_end(viewer: Audience, t0: float) -> tuple[float | None, float | None]:
    """The longest time without a frame since ``t0`` and when it ended (s after ``t0``).

    A viewer that rejoined numbers its tracks from 0 again, so ``live_after`` cannot tell
    the new track from the old one: the end of the gap is when the picture came back.
    """
    ts = [t0, *(s.t for s in viewer.watcher.seen if s.t >= t0)]
    if len(ts) < 2:
        return None, None
    gap, end = max((b - a, b) for a, b in zip(ts, ts[1:], strict=False))
    return round(gap, 2), round(end - t0, 2)
