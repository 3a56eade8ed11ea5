"""Node loss: a LiveKit node holding audience shards is SIGKILLed (issue 14, item 4).

A three-node LiveKit cluster with Redis (broadcaster.livekit_cluster), the web app and
the real bot with audience shards on it (the local avatar service, HeyGen's stand-in, on
its own livekit-server as in the tests). The rooms are placed through LiveKit's own API
(``CreateRoom`` with a node ID): the stage room and shard a1 on node 1 (the clients'
entry point, never killed), a2 on node 2, a3 on node 3. Then, per round:

1. ``VIEWERS`` Go load viewers (bench/loadviewers, receive-only, RTP without decoding)
   join through the join API, spread over the shards by the API's routing, with
   ``-rejoin``: they do what the viewer page does when its node dies (LiveKit drops
   them, or the picture is frozen for 2.5 s: leave, join again through the API naming
   the room lost, 4 s per connect, 1 s between tries);
2. once every viewer receives frames, ``BEFORE_S`` seconds measure everyone's frame rate;
3. the node holding the most shards among those that are neither node 1 nor the stage's
   is SIGKILLed; for ``WATCH_S`` seconds: when each of its viewers noticed, joined again
   and was watching again (5 complete frames, as the tests count), where it went, and
   the viewers on the surviving nodes' frame rate and longest gap between frames;
4. the viewers leave, the node is restarted (empty: LiveKit moved its rooms on the
   bot's rejoin), and the bot is back in every shard before the next round.

The baseline is the same viewers' ``BEFORE_S`` seconds before the kill. Goal: every
viewer of the lost node watching again within 10 s; none lost; the others keep their
frame rate. Run: ``.venv/bin/python -m bench node_loss [--quick]`` (quick: 2 rounds of
18 viewers; full: 3 rounds of 36).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.figures import RESULTS, machine, now_iso, pyplot, summary, write_result  # noqa: E402
from bench.loadtool import LoadViewers, source_addrs  # noqa: E402
from bench.servers import child, fresh_settings, livekit_server, stop_process  # noqa: E402
from broadcaster import livekit_cluster  # noqa: E402
from broadcaster.config import Settings  # noqa: E402
from broadcaster.shards import shard_rooms  # noqa: E402

NAME = "node_loss"
ROOM = "nodeloss"
SHARDS = 3
CAPACITY = 250       # the default: the lost node's viewers fit on the others
GOAL_S = 10.0        # issue 14: watching again within 10 s
BEFORE_S = 8.0       # everyone's frame rate before the kill (the baseline)
AFTER_S = 10.0       # ... and the survivors' in the same length after it
WATCH_S = 20.0       # how long the lost node's viewers are waited for
#: survivors "kept their frame rate": median fps after >= this share of before, no gap
#: a viewer would see (1 s), and none of them rejoined
KEEP_SHARE = 0.9
KEEP_GAP_MS = 1000.0


def _fps(ticks: list[dict[str, Any]], i: int, t0: float, t1: float) -> float | None:
    """Viewer ``i``'s complete frames per second between the ticks nearest t0 and t1."""
    inside = [t for t in ticks if t0 <= t["t"] <= t1 and i < len(t["frames"])]
    if len(inside) < 2:
        return None
    a, b = inside[0], inside[-1]
    return (b["frames"][i] - a["frames"][i]) / (b["t"] - a["t"])


def analyse(events: list[dict[str, Any]], killed_at: float, victim_rooms: set[str]
            ) -> dict[str, Any]:
    """One round's figures from the load viewers' tick and rejoin lines."""
    ticks = [e for e in events if e.get("type") == "tick"]
    before = [t for t in ticks if t["t"] <= killed_at]
    if not before:
        raise RuntimeError("no tick before the kill")
    rooms = before[-1]["rooms"]
    victims = [i for i, r in enumerate(rooms) if r in victim_rooms]
    others = [i for i in range(len(rooms)) if i not in victims]
    rejoins = [e for e in events if e.get("type") == "rejoin" and e["noticed"] >= killed_at - 0.5]
    final = next((e for e in events if e.get("type") == "final"), {})
    unfinished = {e["id"] for e in final.get("rejoins_unfinished") or []}
    per: list[dict[str, Any]] = []
    for i in victims:
        ev = next((e for e in rejoins if e["id"] == i), None)
        row: dict[str, Any] = {"id": i, "lost": rooms[i]}
        if ev is None or not ev.get("done"):
            row["never"] = True
            row["unfinished"] = i in unfinished
        else:
            row.update(noticed_s=round(ev["noticed"] - killed_at, 2),
                       connected_s=round(ev["connected"] - killed_at, 2),
                       first_frame_s=round(ev["first_frame"] - killed_at, 2),
                       watching_s=round(ev["watching"] - killed_at, 2),
                       joins=ev["joins"], room=ev["room"], reason=ev["reason"],
                       errors=ev.get("errors") or [])
        per.append(row)
    back = [r for r in per if not r.get("never")]
    moved: dict[str, int] = {}
    for r in back:
        moved[r["room"]] = moved.get(r["room"], 0) + 1
    t_end = killed_at + AFTER_S
    fb = [f for i in others if (f := _fps(ticks, i, killed_at - BEFORE_S, killed_at)) is not None]
    fa = [f for i in others if (f := _fps(ticks, i, killed_at, t_end)) is not None]
    gaps = [t["gap_ms"][i] for t in ticks if killed_at < t["t"] <= t_end
            for i in others if i < len(t["gap_ms"])]
    vb = [f for i in victims if (f := _fps(ticks, i, killed_at - BEFORE_S, killed_at))
          is not None]
    survivors = {
        "viewers": len(others),
        "fps_before": summary(fb), "fps_after": summary(fa),
        "max_gap_ms": round(max(gaps, default=0.0), 1),
        "rejoined": sorted({e["id"] for e in rejoins if e["id"] in others}),
    }
    kept = bool(others) and bool(fb) and bool(fa) and (
        summary(fa)["p50"] >= KEEP_SHARE * summary(fb)["p50"]
        and survivors["max_gap_ms"] < KEEP_GAP_MS and not survivors["rejoined"])
    return {
        "viewers": len(rooms), "viewers_on_lost_node": len(victims),
        "lost_node_viewers_fps_before": summary(vb),
        "watching_again_s": summary(r["watching_s"] for r in back),
        "first_frame_s": summary(r["first_frame_s"] for r in back),
        "noticed_s": summary(r["noticed_s"] for r in back),
        "joins": summary(r["joins"] for r in back),
        "never_back": [r["id"] for r in per if r.get("never")],
        "moved_to": moved, "per_viewer": per,
        "survivors": survivors, "survivors_kept_rate": kept,
    }


class Bench:
    """The cluster, the web app and the bot, kept across rounds."""

    def __init__(self, cluster: livekit_cluster.Cluster, s: Settings, base: str,
                 bot_log: Path, workdir: Path) -> None:
        self.cluster, self.s, self.base = cluster, s, base
        self.bot_log, self.workdir = bot_log, workdir

    def publishing(self, shard: str) -> int:
        """How often the bot said it publishes into ``shard`` (each join says it once)."""
        text = self.bot_log.read_text(errors="replace")
        return text.count(f"shard {shard}: publishing")

    async def homes(self) -> dict[str, livekit_cluster.Node | None]:
        return {r: await self.cluster.room_node(r) for r in (ROOM, *shard_rooms(ROOM, SHARDS))}

    async def one_round(self, k: int, n: int) -> dict[str, Any]:
        homes = await self.homes()
        stage = homes[ROOM]
        shards = shard_rooms(ROOM, SHARDS)
        placement = {r: h.index if h else None for r, h in homes.items()}
        # Node is a dataclass (not hashable): by index; node 1 is the clients' entry point
        by_index = {node.index: [s for s in shards if placement[s] == node.index]
                    for node in self.cluster.nodes[1:] if node is not stage}
        by_index = {i: rooms for i, rooms in by_index.items() if rooms}
        if not by_index:
            return {"round": k, "skipped": "no shard on a node other than node 1 and the "
                    f"stage's: {placement}"}
        pick = max(by_index, key=lambda i: len(by_index[i]))
        victim = self.cluster.nodes[pick - 1]
        held = {victim.index: by_index[pick]}
        viewers = LoadViewers([
            "-web", self.base, "-room", ROOM, "-n", str(n), "-ramp", "10",
            "-concurrency", "16", "-settle", "1s", "-hold", "3600s", "-rejoin",
            "-tick", "250ms", "-prefix", f"nl{k}", "-source-addrs", source_addrs(n)],
            log=self.workdir / f"loadviewers-{k}.log")
        run = asyncio.create_task(viewers.run(timeout=900))
        try:
            await self._all_receiving(viewers, n, run)
            await asyncio.sleep(BEFORE_S)
            before_publishing = {s: self.publishing(s) for s in held[victim.index]}
            killed_at = time.time()
            victim.kill()
            rehomed = asyncio.create_task(self._rehomed(killed_at, before_publishing))
            await self._watch(viewers, killed_at, set(held[victim.index]))
        finally:
            if viewers.proc and viewers.proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    viewers.proc.send_signal(signal.SIGTERM)
            with contextlib.suppress(Exception):
                await run
        figures = analyse(viewers.events, killed_at, set(held[victim.index]))
        await self.cluster.restart(victim)
        back = await rehomed
        await asyncio.sleep(3.0)  # node stats refresh every 2 s: the next placement sees all
        return {"round": k, "killed_node": victim.index, "placement": placement,
                "lost_shards": held[victim.index], "bot_published_again_s": back, **figures}

    async def _all_receiving(self, viewers: LoadViewers, n: int, run: asyncio.Task) -> None:
        """Until every viewer's frame count grows over one second (60 s at most)."""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if run.done():
                await run
                raise RuntimeError("the load viewers ended early")
            ticks = [e for e in viewers.events if e.get("type") == "tick"]
            if len(ticks) >= 5 and len(ticks[-1]["frames"]) == n:
                a, b = ticks[-5], ticks[-1]
                if len(a["frames"]) == n and all(y > x for x, y in zip(a["frames"],
                                                                         b["frames"],
                                                                         strict=True)):
                    return
            await asyncio.sleep(0.25)
        raise TimeoutError("not every viewer received frames within 60 s")

    async def _watch(self, viewers: LoadViewers, killed_at: float, lost: set[str]) -> None:
        """WATCH_S after the kill (at least AFTER_S, less once every viewer of the lost
        node is watching again)."""
        while (t := time.time() - killed_at) < WATCH_S:
            ticks = [e for e in viewers.events if e.get("type") == "tick"]
            before = [e for e in ticks if e["t"] <= killed_at]
            victims = {i for i, r in enumerate(before[-1]["rooms"]) if r in lost} if before \
                else set()
            done = {e["id"] for e in viewers.events
                    if e.get("type") == "rejoin" and e["noticed"] >= killed_at - 0.5}
            if t >= AFTER_S + 0.5 and victims <= done:
                return
            await asyncio.sleep(0.25)

    async def _rehomed(self, killed_at: float, before: dict[str, int]
                       ) -> dict[str, float | None]:
        """Seconds after the kill until the bot published again into each shard it lost
        (its rejoin, which re-homes the room once LiveKit counts the node gone)."""
        back: dict[str, float | None] = dict.fromkeys(before)
        while (t := time.time() - killed_at) < 60:
            for shard, count in before.items():
                if back[shard] is None and self.publishing(shard) > count:
                    back[shard] = round(t, 2)
            if None not in back.values():
                break
            await asyncio.sleep(0.25)
        if None in back.values():
            raise TimeoutError(f"the bot did not publish again into {back} within 60 s")
        return back


async def bench(rounds: int, n: int) -> dict[str, Any]:
    import aiohttp
    from livekit import api

    from broadcaster.netutil import free_port, wait_http_ok

    s = fresh_settings(demo_room="", audience_shards=SHARDS, shard_capacity=CAPACITY,
                       join_burst=20 * n, join_rate_per_minute=600.0 * n,
                       floor_guard=False, floor_reconcile_seconds=0.0,
                       audience_cache_seconds=0.5)
    state = Path(s.state_dir)
    results: list[dict[str, Any]] = []
    # the avatar service (HeyGen's stand-in) has its own LiveKit, as HeyGen has
    async with livekit_server(s) as s_avatar:
        avatar = child("broadcaster.avatar", [], s_avatar, state / "avatar.log")
        web = bot = None
        try:
            await wait_http_ok(f"http://{s.avatar_host}:{s.avatar_port}/healthz", timeout=60)
            async with livekit_cluster.running(s, state / "cluster", nodes=3) as cluster:
                n1, n2, n3 = cluster.nodes
                sc = s.replace(livekit_url=n1.url, livekit_port=n1.settings.livekit_port)
                async with api.LiveKitAPI(n1.http_url, s.livekit_api_key,
                                          s.livekit_api_secret) as lk:
                    for room, node in ((ROOM, n1), (f"{ROOM}--a1", n1),
                                       (f"{ROOM}--a2", n2), (f"{ROOM}--a3", n3)):
                        await lk.room.create_room(api.CreateRoomRequest(
                            name=room, node_id=node.node_id, empty_timeout=600))
                web = child("broadcaster", ["serve", "web"], sc, state / "web.log")
                base = f"http://127.0.0.1:{sc.web_port}"
                await wait_http_ok(base + "/healthz", timeout=30)
                async with aiohttp.ClientSession(base) as http, http.post(
                        "/api/host/webinars", json={"title": "Node loss", "room": ROOM},
                        headers={"Authorization": f"Bearer {sc.host_key}"}) as r:
                    if r.status != 201:
                        raise RuntimeError(f"webinar: {r.status} {await r.text()}")
                bot_log = state / "bot.log"
                bot = child("broadcaster.bot", ["--room", ROOM],
                            sc.replace(bot_metrics_port=free_port()), bot_log)
                b = Bench(cluster, sc, base, bot_log, state)
                deadline = time.monotonic() + 90
                while not all(b.publishing(x) for x in shard_rooms(ROOM, SHARDS)):
                    if bot.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError("the bot is not in every shard:\n"
                                           + bot_log.read_text(errors="replace")[-3000:])
                    await asyncio.sleep(0.5)
                await asyncio.sleep(3.0)
                for k in range(1, rounds + 1):
                    r = await b.one_round(k, n)
                    print(json.dumps({x: r.get(x) for x in (
                        "round", "killed_node", "viewers_on_lost_node", "watching_again_s",
                        "never_back", "survivors_kept_rate", "skipped")}), flush=True)
                    results.append(r)
                bot_alive = bot.poll() is None  # the stage was never lost: no restart
        finally:
            for proc in (bot, web, avatar):
                if proc is not None:
                    await stop_process(proc)
    return {"rounds": results, "bot_alive_at_end": bot_alive}


def plot(result: dict[str, Any], path: Path) -> None:
    plt = pyplot()
    if plt is None:
        return
    rounds = [r for r in result["rounds"] if not r.get("skipped")]
    fig, (a, b) = plt.subplots(1, 2, figsize=(12, 4.2), dpi=100)
    for r in rounds:
        xs = [row["watching_s"] for row in r["per_viewer"] if not row.get("never")]
        a.plot(xs, [r["round"]] * len(xs), "o", alpha=0.6, ms=6,
               label=f"round {r['round']}: node {r['killed_node']}, "
                     f"{r['viewers_on_lost_node']} viewers")
        nev = len(r["never_back"])
        if nev:
            a.plot([WATCH_S], [r["round"]], "x", color="tab:red", ms=10,
                   label=f"never back: {nev}")
    a.axvline(GOAL_S, color="tab:red", ls=":", label=f"goal {GOAL_S:g} s")
    a.set_xlim(0, max(WATCH_S, GOAL_S) + 1)
    a.set_yticks([r["round"] for r in rounds])
    a.set_xlabel("seconds after SIGKILL until watching again (5 complete frames)")
    a.set_ylabel("round")
    a.legend(fontsize=7, loc="upper right")
    a.set_title("viewers of the killed node (Go viewers rejoining as the page does)")
    xs = list(range(len(rounds)))
    b.bar([x - 0.2 for x in xs], [r["survivors"]["fps_before"].get("p50", 0) for r in rounds],
          width=0.4, label=f"{BEFORE_S:g} s before the kill (baseline)")
    b.bar([x + 0.2 for x in xs], [r["survivors"]["fps_after"].get("p50", 0) for r in rounds],
          width=0.4, label=f"{AFTER_S:g} s after")
    for x, r in zip(xs, rounds, strict=True):
        b.annotate(f"min {r['survivors']['fps_after'].get('min', 0):.1f}\n"
                   f"gap {r['survivors']['max_gap_ms']:.0f} ms",
                   (x + 0.2, r["survivors"]["fps_after"].get("p50", 0)),
                   ha="center", va="bottom", fontsize=7)
    b.set_xticks(xs, [f"round {r['round']}\n({r['survivors']['viewers']} viewers)"
                      for r in rounds])
    b.set_ylabel("complete frames/s, median viewer")
    b.set_ylim(0, 32)
    b.legend(fontsize=7, loc="lower right")
    b.set_title("viewers on the surviving nodes")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def run(quick: bool = False) -> dict[str, Any]:
    rounds, n = (2, 18) if quick else (3, 36)
    r = asyncio.run(bench(rounds, n))
    done = [x for x in r["rounds"] if not x.get("skipped")]
    worst = max((x["watching_again_s"].get("max", 0) for x in done), default=None)
    result = {
        "bench": NAME,
        "what": f"{n} receive-only Go viewers (rejoining through the join API as the viewer "
                f"page does) over {SHARDS} audience shards of the real bot on a 3-node "
                "LiveKit cluster with Redis; per round the node holding the most shards "
                "(not node 1, not the stage's) is SIGKILLed, then restarted",
        "quick": quick, "viewers": n, "goal_s": GOAL_S, **r,
        "worst_watching_again_s": worst,
        "pass": bool(done) and all(
            not x["never_back"] and x["watching_again_s"].get("max", 1e9) <= GOAL_S
            and x["survivors_kept_rate"] for x in done),
        "machine": machine(), "when": now_iso(),
    }
    write_result(NAME, result)
    plot(result, RESULTS / f"{NAME}.png")
    return result


if __name__ == "__main__":
    out = run(quick="--quick" in sys.argv)
    print(json.dumps({k: out[k] for k in ("viewers", "worst_watching_again_s", "pass")}))
