"""The stage room's LiveKit node dies: the bot stays up and the shards play on (issue 14).

A real three-node LiveKit cluster with Redis (tests/fixtures_cluster.py), the web app on
node 1 (the clients' entry point), the real bot with the local avatar service (HeyGen
itself is the only stand-in). The rooms are placed on purpose through LiveKit's own API
(``CreateRoom`` with a node ID): the stage room on node 2, audience shard a1 on node 1,
a2 and a3 both on node 3.

First node 3 is SIGKILLed: the viewers of both its shards, doing what the viewer page
does, are watching again within 10 s. Then node 2, the stage's, is SIGKILLed. What
people would notice is asserted:

- the viewers of shards on surviving nodes keep getting the avatar's picture and voice
  with no gap a viewer would see (the bot did not restart; its shards never stopped);
  those of a shard that was on node 2 too are watching again within 10 s;
- the presenter, doing what her page does (LiveKit's own reconnect; a rejoin through the
  join API when LiveKit drops her or the live avatar's picture froze for 2.5 s), sees
  the avatar in the stage room again within 10 s, at >= 15 distinct fps, and hears it,
  until the end of the watch;
- the bot is back in the stage room, on a live node, with the stage's metadata.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator

import pytest_asyncio
from livekit import api, rtc

from broadcaster.livekit_cluster import Cluster, Node
from broadcaster.web.shard_tally import PENDING_SECONDS
from tests.fixtures_bot import BotStage
from tests.fixtures_cluster import sharded_stage
from tests.fixtures_web import WebClient, connect
from tests.helpers.people import Viewer, until
from tests.test_shards import _page_rejoins

#: the issue's goal for shard viewers on surviving nodes: no visible interruption. A
#: frame gap under this is not seen as one (the republisher repeats frames every 80 ms)
SHARD_GAP_BUDGET_S = 0.5
#: the presenter is watching the avatar in the stage room again within this
PRESENTER_BUDGET_S = 10.0
#: ... at least this many distinct frames a second (25 sent; 18-22 arrive on this box)
PRESENTER_MIN_FPS = 15.0
#: issue 14: a dead node's viewers watch again within 10 s, also when two shards died
#: at once with every surviving shard full (a displaced viewer overfills a shard whose
#: node answers rather than wait for the bot to move its shard: 9.2-12.1 s before)
BOTH_SHARDS_BUDGET_S = 10.0
#: how long after the kill the shard viewers are watched
WATCH_S = 15.0
#: the presenter page's rules (stage_status.js FROZEN_MS, stage.js CONNECT_TIMEOUT_MS)
FROZEN_S = 2.5
CONNECT_S = 4.0
RETRY_S = 1.0


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def staged(cluster: Cluster, avatar_service: str, avatar_settings
                 ) -> AsyncIterator[tuple[WebClient, BotStage]]:
    """Stage on node 2, shard a1 on node 1, a2 and a3 on node 3; the bot in all of them."""
    n1, n2, n3 = cluster.nodes
    async with sharded_stage(cluster, avatar_settings, "Stage on node 2", shards=3,
                             capacity=2, rooms=(n2, n1, n3, n3), prefix="stage") as staged:
        yield staged


async def _probe(node1: Node, room: str, identity: str, note) -> None:
    s = node1.settings
    last = None
    async with api.LiveKitAPI(node1.http_url, s.livekit_api_key, s.livekit_api_secret) as lk:
        while True:
            t = time.monotonic()
            try:
                await asyncio.wait_for(lk.room.get_participant(api.RoomParticipantIdentity(
                    room=room, identity=identity)), 1.0)
                what = "ok"
            except Exception as exc:
                what = repr(exc)[:80]
            if what != last:
                note(f"API get_participant: {what} ({time.monotonic() - t:.2f} s)")
                last = what
            await asyncio.sleep(0.3)


async def _rejoin(web: WebClient, bot: BotStage, data: dict, body: dict, note) -> Viewer:
    """The presenter page's rejoin: a token from the join API (her claim), a connect
    limited to 4 s, again 1 s later until one works."""
    while True:
        again = await web.join(bot.room, data["identity"], "presenter",
                               claim=data["claim"], **body)
        assert again.status == 200, again.text
        presenter = Viewer(data["identity"], bot.settings.bot_identity)
        try:
            await presenter.join(again.data["url"], again.data["token"],
                                 connect_timeout=CONNECT_S)
            note("presenter's page: joined again")
            return presenter
        except Exception as exc:  # a connect to the dead node's room hangs
            note(f"presenter's page: join failed {exc!r}"[:120])
            await presenter.leave()
            await asyncio.sleep(RETRY_S)


def _gaps(times: list[float], t0: float, t1: float) -> float:
    """The longest time without anything arriving in [t0, t1]."""
    seen = [t0, *(t for t in times if t0 <= t <= t1), t1]
    return max(b - a for a, b in zip(seen, seen[1:], strict=False))


async def _viewers(web: WebClient, bot: BotStage, n: int, tag: str
                   ) -> list[dict[str, tuple[dict, Viewer]]]:
    """``n`` viewers joined through the API, watching; each as ``{its shard: (join
    answer, viewer)}``, the shape ``_page_rejoins`` updates when it moves one."""
    viewers: list[dict[str, tuple[dict, Viewer]]] = []
    for i in range(n):
        reply = await web.join(bot.room, f"{tag}-{i}")
        assert reply.status == 200, reply.text
        v = Viewer(f"{tag}-{i}", bot.settings.bot_identity)
        viewers.append({reply.data["livekit_room"]: (reply.data, v)})
        await v.join(reply.data["url"], reply.data["token"], connect_timeout=CONNECT_S)
    for box in viewers:
        for shard, (_, v) in box.items():
            await until(lambda w=v: len(w.frames) > 10 and w.audio, 20,
                        f"the avatar on {shard}", bot)
    return viewers


async def _leave_all(viewers: list[dict[str, tuple[dict, Viewer]]]) -> None:
    for box in viewers:
        for _, v in box.values():
            await v.leave()


async def test_a_page_naming_a_live_shard_in_a_full_webinar_keeps_its_seat(
        staged: tuple[WebClient, BotStage]) -> None:
    """Every shard full, the bot in each, every node alive: a page that says it lost its
    shard (a stall, a reload, a lie) is routed as before — back to its own seat — and a
    new page naming a lost shard is told the webinar is full. Nobody overfills a shard
    (the displaced routing spills over capacity only when LiveKit confirms the node is
    gone: docs/scaling.md)."""
    web, bot = staged
    names = [f"{bot.room}--a{i}" for i in (1, 2, 3)]
    rooms: list[rtc.Room] = []
    seats: dict[str, dict] = {}
    try:
        for i in range(3 * 2):  # 3 shards of 2
            reply = await web.join(bot.room, f"full-{i}")
            assert reply.status == 200, reply.text
            seats[reply.data["identity"]] = reply.data
            rooms.append(await connect(reply.data["url"], reply.data["token"]))
        assert sorted(d["livekit_room"] for d in seats.values()) == sorted(names * 2)
        for name in names:  # the bot is in every shard (the router prefers those)
            await until(lambda n=name: _has(rooms, n, bot.settings.bot_identity), 10,
                        f"the bot listed in {name}", bot)
        a, b = list(seats.values())[0], list(seats.values())[1]
        if a["livekit_room"] == b["livekit_room"]:
            b = next(d for d in seats.values() if d["livekit_room"] != a["livekit_room"])
        # its own shard, node alive: the page gets its seat back, not another shard
        again = await web.join(bot.room, a["identity"], claim=a["claim"],
                               lost=a["livekit_room"])
        assert again.status == 200, again.text
        assert again.data["livekit_room"] == a["livekit_room"], again.data
        rooms.append(await connect(again.data["url"], again.data["token"]))  # replaces it
        # another page's shard named as lost: ignored, its own seat
        other = await web.join(bot.room, b["identity"], claim=b["claim"],
                               lost=a["livekit_room"])
        assert other.status == 200 and other.data["livekit_room"] == b["livekit_room"], \
            other.text
        # a newcomer naming a lost shard is not let in over capacity
        late = await web.join(bot.room, "full-late", lost=a["livekit_room"])
        assert late.status == 503 and "full" in late.data["error"], late.text
        await asyncio.sleep(1.0)  # LiveKit's word, not only the routed joins
        counts = (await web.call("GET", f"/api/webinars/{bot.room}/audience")).data
        assert counts["shards"] == dict.fromkeys(names, 2), counts
    finally:
        for r in rooms:
            await r.disconnect()
        await asyncio.sleep(1.0)  # the next test's routing sees them gone


def _has(rooms: list[rtc.Room], shard: str, identity: str) -> bool:
    return any(r.name == shard and identity in {p.identity for p in
                                                r.remote_participants.values()}
               for r in rooms)


async def test_two_shards_on_a_killed_node_both_rejoin(
        staged: tuple[WebClient, BotStage], cluster: Cluster) -> None:
    """Node 3 holds shards a2 and a3: every viewer of both watches again (goal 10 s)."""
    web, bot = staged
    n3 = cluster.nodes[2]
    viewers: list[dict[str, tuple[dict, Viewer]]] = []
    try:
        viewers = await _viewers(web, bot, 3, "pair")
        names = [f"{bot.room}--a{i}" for i in (1, 2, 3)]
        assert sorted(next(iter(box)) for box in viewers) == names, viewers
        victims = [box for box in viewers if await cluster.room_node(next(iter(box))) is n3]
        assert len(victims) == 2, victims
        killed = time.monotonic()
        n3.kill()
        shards = [next(iter(box)) for box in victims]
        backs = await asyncio.gather(*(_page_rejoins(web, bot, box, shard, killed)
                                       for box, shard in zip(victims, shards, strict=True)))
        for box, shard, (noticed, back) in zip(victims, shards, backs, strict=True):
            now_in = box[shard][0]["livekit_room"]
            home = await cluster.room_node(now_in)
            print(f"two shards on the killed node: viewer of {shard} noticed at "
                  f"+{noticed:.1f} s, watching again {back:.1f} s after SIGKILL on {now_in} "
                  f"(node {home.index if home else '?'})")
            assert back < BOTH_SHARDS_BUDGET_S, f"the viewer of {shard} was back after {back} s"
            assert home is not None and home is not n3 and home.alive
    finally:
        await _leave_all(viewers)
        if not n3.alive:
            await cluster.restart(n3)
        # the displaced pages left before any listing showed them where they went: the
        # join API counts them there until PENDING_SECONDS (shard_tally) pass
        await asyncio.sleep(PENDING_SECONDS)


async def test_the_stage_node_dies_and_the_shards_play_on(
        staged: tuple[WebClient, BotStage], cluster: Cluster) -> None:
    web, bot = staged
    n1, n2 = cluster.nodes[:2]
    room = bot.room
    assert await cluster.room_node(room) is n2, "the stage room must be on node 2"
    viewers: list[dict[str, tuple[dict, Viewer]]] = []
    presenter: Viewer | None = None
    try:
        viewers = await _viewers(web, bot, 3, "watcher")
        homes = [await cluster.room_node(next(iter(box))) for box in viewers]
        print("shard -> node:", [(next(iter(box)), h.index if h else None)
                                 for box, h in zip(viewers, homes, strict=True)])
        survivors = [box for box, h in zip(viewers, homes, strict=True)
                     if h is not None and h is not n2]
        lost = [box for box in viewers if box not in survivors]  # on node 2 too
        assert survivors, "no shard on a surviving node to watch"
        body = {"code": bot.webinar["presenter_code"]}
        joined = await web.join(room, "presenter-p", "presenter", **body)
        assert joined.status == 200, joined.text
        presenter = await Viewer("presenter-p", bot.settings.bot_identity).join(
            joined.data["url"], joined.data["token"], connect_timeout=CONNECT_S)
        await until(lambda: len(presenter.frames) > 10 and presenter.audio, 20,
                    "the avatar at the presenter", bot)
        metadata = json.loads(presenter.room.metadata)
        assert metadata["title"] == "Stage on node 2"

        events: list[str] = []

        def note(what: str) -> None:
            events.append(f"+{time.monotonic() - killed:.2f} s {what}")

        for ev in ("reconnecting", "reconnected", "disconnected"):
            presenter.room.on(ev, lambda *_, ev=ev: note(f"presenter's LiveKit: {ev}"))
        presenter.room.on("participant_connected", lambda p: note(f"{p.identity} joined"))
        killed = time.monotonic()
        n2.kill()
        probe = asyncio.ensure_future(_probe(n1, room, bot.settings.bot_identity, note))
        rejoins = asyncio.gather(*(_page_rejoins(web, bot, box, next(iter(box)), killed)
                                   for box in lost))
        # --- the presenter's page (presenter.js, StageStatus): LiveKit's own reconnect;
        # when LiveKit drops her, or the live avatar's picture froze for FROZEN_S, she
        # joins again through the join API (4 s per connect, again after 1 s) --------------
        back = None
        while time.monotonic() - killed < WATCH_S:
            fresh = [f for f in presenter.frames if f.t > killed + 0.5]
            if back is None and len(fresh) >= 5:
                back = fresh[4].t - killed
            last = presenter.frames[-1].t if presenter.frames else 0.0
            bot_live = bot.settings.bot_identity in {
                p.identity for p in presenter.room.remote_participants.values()}
            frozen = bot_live and presenter.frames and time.monotonic() - last >= FROZEN_S
            if not presenter.room.isconnected() or frozen:
                note("presenter's page: " + ("frozen picture" if frozen else "dropped"))
                await presenter.leave()
                presenter = await _rejoin(web, bot, joined.data, body, note)
            await asyncio.sleep(0.05)
        for box, (_, again) in zip(lost, await rejoins, strict=True):
            print(f"stage node lost: viewer of {next(iter(box))} (node 2 too) watching "
                  f"again {again:.1f} s after SIGKILL")
            # its shard was lost with the stage (6.3 s once, 10.8 s in a CI run when it
            # waited for the bot to move its shard; now it goes where the bot is)
            assert again < BOTH_SHARDS_BUDGET_S, f"{next(iter(box))}: back after {again} s"
        for box in survivors:
            shard, (_, v) = next(iter(box.items()))
            video_gap = _gaps([f.t for f in v.frames], killed - 1, killed + WATCH_S)
            audio_gap = _gaps([b.t for b in v.audio], killed - 1, killed + WATCH_S)
            fps, sizes, _ = v.distinct_fps(killed, killed + WATCH_S)
            home = await cluster.room_node(shard)
            print(f"stage node lost: viewer of {shard} (node {home.index if home else '?'}):"
                  f" longest video gap {video_gap:.2f} s, audio gap {audio_gap:.2f} s, "
                  f"{fps:.1f} distinct fps over {WATCH_S:.0f} s at {sizes}")
            assert video_gap < SHARD_GAP_BUDGET_S, f"{shard}: no picture for {video_gap} s"
            assert audio_gap < SHARD_GAP_BUDGET_S, f"{shard}: no sound for {audio_gap} s"
            assert fps >= 15, f"{shard}: {fps:.1f} fps"
        probe.cancel()
        print("\n".join(events))
        print(f"stage node lost: the presenter watched the avatar again "
              f"{back if back is None else round(back, 2)} s after SIGKILL")
        assert bot.alive(), "the bot exited (it should have stayed up)\n" + bot.tail()
        back_in = bot.grep(f"stage room {room}: back in")
        assert back_in, bot.tail()
        print(f"stage node lost: the bot's log: {back_in[-1][-90:]}")
        moved = await cluster.room_node(room)
        assert moved is not None and moved is not n2 and moved.alive, moved
        # her return: the avatar's picture and voice at a rate she would call live (it
        # failed 4 of 5 runs when the bot, moving its media, unpublished its own new
        # tracks: the republisher took them for pipecat's; test_republisher_move.py)
        assert back is not None, "the presenter never watched the avatar again"
        assert back < PRESENTER_BUDGET_S, f"the presenter watched again after {back:.1f} s"
        end = killed + WATCH_S
        fps, sizes, _ = presenter.distinct_fps(killed + back, end)
        gap = _gaps([f.t for f in presenter.frames], killed + back, end)
        heard = presenter.blocks(killed + back, end)
        print(f"stage node lost: after her return the presenter got {fps:.1f} distinct fps "
              f"at {sizes}, longest video gap {gap:.2f} s, {len(heard)} audio blocks")
        assert fps >= PRESENTER_MIN_FPS, f"the presenter got {fps:.1f} fps after her return"
        assert gap < FROZEN_S, f"the presenter's picture froze again for {gap:.1f} s"
        assert heard and heard[-1].t > end - 1.0, "no avatar voice at the presenter"
        assert json.loads(presenter.room.metadata)["title"] == "Stage on node 2"
    finally:
        await _leave_all(viewers)
        if presenter is not None:
            await presenter.leave()
        if not n2.alive:
            await cluster.restart(n2)
