"""Audience shards on a real three-node LiveKit cluster with Redis (issue 14).

The web app (its own, on the cluster's node 1) routes viewers to shard rooms that
LiveKit's own node selector spread over the nodes; the real bot (``python -m
broadcaster.bot`` with the local avatar service; HeyGen itself is the only stand-in)
publishes the avatar into the stage room and, encoded once, into every shard. What a
viewer would notice is asserted: the avatar's frames and voice arrive on every shard,
the audience count sums the shards, a full webinar says so (503), the host's end
reaches every shard, and when a shard's node is SIGKILLed its viewer, rejoining through
the join API as the page does (it notices the frozen picture, names the shard it lost,
gives a hanging connect 4 s), watches again within 10 s.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator

import pytest_asyncio

from broadcaster.livekit_cluster import Cluster
from broadcaster.netutil import free_port
from broadcaster.protocol import ROOM_STATE_ENDED
from tests.fixtures_bot import BotStage
from tests.fixtures_cluster import sharded_stage
from tests.fixtures_web import WebClient, serving
from tests.helpers.people import Viewer, until

SHARDS = 3
#: issue 14: a dead node's viewers watch again within 10 s (docs/scaling.md has the runs)
NODE_LOSS_BUDGET_S = 10.0
#: the viewer page's rules (stage_status.js FROZEN_MS, stage.js CONNECT_TIMEOUT_MS,
#: viewer.js's retry): a live avatar's picture frozen this long means the node is gone
FROZEN_S = 2.5
CONNECT_S = 4.0
RETRY_S = 1.0


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def sharded(cluster: Cluster, avatar_service: str, avatar_settings
                  ) -> AsyncIterator[tuple[WebClient, BotStage]]:
    """A web app and a bot on the cluster (node 1's URL), three shards of two viewers."""
    async with sharded_stage(cluster, avatar_settings, "Sharded webinar", shards=SHARDS,
                             capacity=2) as (web, bot):
        yield web, bot


async def _join(web: WebClient, bot: BotStage, identity: str, claim: str | None = None,
                lost: str | None = None) -> tuple[dict, Viewer]:
    body = {"claim": claim} if claim else {}
    if lost:
        body["lost"] = lost
    reply = await web.join(bot.room, identity, **body)
    assert reply.status == 200, reply.text
    viewer = Viewer(identity, bot.settings.bot_identity)
    try:
        await viewer.join(reply.data["url"], reply.data["token"], connect_timeout=CONNECT_S)
    except BaseException:
        await viewer.leave()
        raise
    return reply.data, viewer


async def _page_rejoins(web: WebClient, bot: BotStage,
                        viewers: dict[str, tuple[dict, Viewer]], shard: str, killed: float
                        ) -> tuple[float, float]:
    """What the viewer page does when its shard's node dies; return when it noticed and
    when it was watching again (5 fresh frames), in seconds after the kill."""
    data, viewer = viewers[shard]
    noticed = None  # LiveKit drops the page, or the live avatar's picture freezes
    while noticed is None and time.monotonic() - killed < NODE_LOSS_BUDGET_S:
        last = viewer.frames[-1][0] if viewer.frames else killed
        if not viewer.room.isconnected() or time.monotonic() - last >= FROZEN_S:
            noticed = time.monotonic() - killed
        await asyncio.sleep(0.05)
    assert noticed is not None, f"the viewer of {shard} never noticed its node was gone"
    while time.monotonic() - killed < NODE_LOSS_BUDGET_S + 5:
        await viewer.leave()  # the page joins again via the API, naming what it lost
        try:
            data, viewer = await _join(web, bot, data["identity"], data["claim"], lost=shard)
            viewers[shard] = (data, viewer)
            start = time.monotonic()
            while time.monotonic() - start < 3:
                fresh = [f for f in viewer.frames if f[0] > start]
                if len(fresh) >= 5:
                    return noticed, fresh[4][0] - killed
                await asyncio.sleep(0.05)
        except Exception as exc:  # a connect that hangs on the dead node gives up
            print(f"{shard}: rejoin at +{time.monotonic() - killed:.1f} s: {exc!r}"[:300])
            await asyncio.sleep(RETRY_S)
    raise AssertionError(f"the viewer of {shard} never watched again")


async def test_viewers_on_every_shard_see_the_avatar_and_a_node_loss_heals(
        sharded: tuple[WebClient, BotStage], cluster: Cluster) -> None:
    web, bot = sharded
    names = [f"{bot.room}--a{i}" for i in range(1, SHARDS + 1)]
    viewers: dict[str, tuple[dict, Viewer]] = {}
    try:
        # --- routing: the least-filled shard, so one viewer each; each gets the avatar -----
        for i in range(SHARDS):
            data, viewer = await _join(web, bot, f"shard-viewer-{i}")
            viewers[data["livekit_room"]] = (data, viewer)
        assert sorted(viewers) == names, "each viewer must get its own shard"
        for shard, (_, viewer) in viewers.items():
            await until(lambda v=viewer: len(v.frames) > 10 and v.audio, 20,
                        f"the avatar on {shard}", bot)
            t = time.monotonic()
            await asyncio.sleep(2.0)
            _, sizes, _ = viewer.distinct_fps(t, t + 2.0)
            fps = sum(1 for f in viewer.frames if t <= f[0] < t + 2.0) / 2.0
            assert sizes == {(bot.settings.video_width, bot.settings.video_height)}, sizes
            assert fps >= 15, f"{shard}: {fps:.1f} fps received"  # 25 published
            assert json.loads(viewer.room.metadata)["title"] == "Sharded webinar"
            print(f"{shard}: {fps:.1f} fps at {sizes}")
        homes = {s: await cluster.room_node(s) for s in names}
        assert None not in homes.values()
        nodes = {n.index for n in homes.values() if n is not None}
        print("shard -> node:", {s: n.index for s, n in homes.items() if n is not None})
        assert len(nodes) >= 2, f"LiveKit put every shard on node {nodes}"

        # --- the audience count sums the shards --------------------------------------------
        counts = (await web.call("GET", f"/api/webinars/{bot.room}/audience")).data
        assert counts["viewers"] == SHARDS and counts["shards"] == dict.fromkeys(names, 1), \
            counts

        # --- node loss: SIGKILL a shard's node (not node 1, the clients' entry point) ----
        # (nor the stage's node if it can be helped: its loss restarts the bot)
        stage_node = await cluster.room_node(bot.room)
        first = next((s for s in names if homes[s] not in (cluster.nodes[0], stage_node)),
                     None) or next(s for s in names if homes[s] is not cluster.nodes[0])
        node = homes[first]
        assert node is not None
        victims = [s for s in names if homes[s] is node]
        killed = time.monotonic()
        node.kill()
        backs = await asyncio.gather(*(_page_rejoins(web, bot, viewers, s, killed)
                                       for s in victims))
        for shard, (noticed, back) in zip(victims, backs, strict=True):
            data = viewers[shard][0]
            moved = await cluster.room_node(data["livekit_room"])
            print(f"node loss: viewer of {shard} noticed at +{noticed:.1f} s, watching "
                  f"again {back:.1f} s after SIGKILL on {data['livekit_room']} "
                  f"(node {moved.index if moved else '?'})")
            assert back < NODE_LOSS_BUDGET_S, f"the viewer of {shard} was back after {back} s"
            # on a live node: another shard, or this one re-homed by the bot's rejoin
            assert moved is not None and moved is not node and moved.alive

        # --- the host's end reaches every shard (room metadata) ---------------------------
        ended = await web.host("POST", f"/api/host/webinars/{bot.room}/end")
        assert ended.status == 200, ended.text
        await until(lambda: all(ROOM_STATE_ENDED in (v.room.metadata or "")
                                or not v.room.isconnected() for _, v in viewers.values()),
                    10, "every shard's viewer to see the end", bot)
    finally:
        for _, viewer in viewers.values():
            await viewer.leave()
        for n in cluster.nodes:
            if not n.alive:
                await cluster.restart(n)


async def test_a_full_webinar_says_so_and_a_reload_keeps_its_shard(cluster: Cluster,
                                                                   settings) -> None:
    """Two shards of one viewer: the third viewer gets 503 with the reason (not a 5xx
    crash, not a token into an overfull room); a viewer reloading keeps its seat."""
    n1 = cluster.nodes[0]
    s = settings.replace(livekit_url=n1.url, livekit_port=n1.settings.livekit_port,
                         web_port=free_port(), audience_shards=2, shard_capacity=1,
                         floor_reconcile_seconds=0.0, floor_guard=False,
                         audience_cache_seconds=60.0)  # the routed joins count, not LiveKit
    async with serving(s) as web:
        room = (await web.new_webinar("Small webinar"))["room"]
        a = await web.join(room, "early-a")
        b = await web.join(room, "early-b")
        assert (a.status, b.status) == (200, 200), (a.text, b.text)
        assert {a.data["livekit_room"], b.data["livekit_room"]} == {f"{room}--a1",
                                                                   f"{room}--a2"}
        assert a.data["room"] == room  # the page keeps using the webinar's name
        late = await web.join(room, "late-c")
        assert late.status == 503 and "full" in late.data["error"], late.text
        assert late.headers.get("Retry-After") == "60"
        # the page tries again later with the same identity: still "full", never "taken"
        # (a refused join held no claim; it once did, and the retry got 409 for good)
        retry = await web.join(room, "late-c")
        assert retry.status == 503 and "full" in retry.data["error"], retry.text
        again = await web.join(room, "early-a", claim=a.data["claim"])
        assert again.status == 200 and again.data["livekit_room"] == a.data["livekit_room"]
        # a page that lost its node's room, in a full webinar: not turned away (its seat)
        moved = await web.join(room, "early-a", claim=a.data["claim"],
                               lost=a.data["livekit_room"])
        assert moved.status == 200 and moved.data["livekit_room"] == a.data["livekit_room"]
        for lost in ("other--a1", f"{room}--a3", "x" * 5000, 7, ["a"]):  # not its rooms
            bad_lost = await web.join(room, "early-a", claim=a.data["claim"], lost=lost)
            assert bad_lost.status == 422 and "lost" in bad_lost.data["error"], \
                bad_lost.text
        shard_token = a.data["token"]  # questions from a shard are the webinar's questions
        asked = await web.call("POST", f"/api/webinars/{room}/questions",
                               {"text": "Can you hear me?"}, token=shard_token)
        assert asked.status == 201, asked.text
        bad = await web.host("POST", "/api/host/webinars", {"title": "x", "room": "x--a1"})
        assert bad.status == 422, bad.text


def test_shard_names_are_not_webinar_names() -> None:
    from broadcaster.shards import is_shard_name, shard_rooms, stage_of

    assert shard_rooms("talk", 2) == ["talk--a1", "talk--a2"]
    assert all(is_shard_name(n) for n in shard_rooms("talk-1", 3))
    assert not is_shard_name("talk-a1") and not is_shard_name("talk--a0")
    assert stage_of("talk--a2", 3) == "talk" and stage_of("talk--a4", 3) == "talk--a4"
    assert stage_of("talk", 3) == "talk"

