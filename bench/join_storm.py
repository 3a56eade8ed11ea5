"""1,000 viewer joins within 10 s through the join API and LiveKit (issue 14, item 5).

A three-node LiveKit cluster with Redis (broadcaster.livekit_cluster), the web app on
node 1 with audience shards on, and a webinar with a presenter whom the host demoted:
her old token still grants publishing. Then the Go load viewers (bench/loadviewers) join
``VIEWERS`` viewers at ``RAMP`` per second, each the way a page does: ``POST .../join``
from one of 200 loopback addresses (the per-address join limit sees a crowd), then
LiveKit's signalling and a WebRTC peer connection to its shard, on whichever node
LiveKit placed that shard. Meanwhile, measured:

- every join: the API's answer (no error, its time) and the LiveKit connect;
- the floor guard: the demoted presenter comes back with her stale token again and
  again and publishes; how long LiveKit lets her (bench.reconcile_storm's probe);
- the audience count (``GET .../audience``, what the host's console shows) every 0.5 s:
  it must reach the crowd; it comes from the join API's routing and LiveKit's listings,
  not webhooks (LiveKit does send a participant webhook per viewer, hidden or not; the
  events livekit-server dropped from its full queue are counted);
- CPU of the web app and of each livekit-server node.

Media: there is no bot here (no publisher), so the viewers join and connect but
receive nothing: 1,000 real media viewers do not fit on this 2-core box beside the SFU
(bench/capacity.py: the box saturates at ~400 viewers of the 720p avatar; those
figures are the media measurement). Run: ``.venv/bin/python -m bench join_storm
[--quick]`` (quick: 200 viewers at 100/s).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.figures import RESULTS, machine, now_iso, pyplot, summary, write_result  # noqa: E402
from bench.loadtool import LoadViewers, source_addrs  # noqa: E402
from bench.reconcile_storm import _cpu_seconds, _probe, storm_webinar  # noqa: E402
from bench.servers import fresh_settings, stop_process  # noqa: E402
from broadcaster import livekit_cluster  # noqa: E402
from broadcaster.shards import shard_rooms  # noqa: E402

NAME = "join_storm"
VIEWERS = 1000
RAMP = 110.0          # joins started per second (1,000 in ~9 s)
SHARDS = 4
CAPACITY = 300        # 4 x 300 seats for 1,000 viewers
GOAL_S = 10.0
SETTLE_S = 2.0


async def storm(n: int, ramp: float) -> dict[str, Any]:
    import aiohttp
    from livekit import api

    base_s = fresh_settings(demo_room="", join_burst=2 * n, join_rate_per_minute=60.0 * n,
                            audience_shards=SHARDS, shard_capacity=CAPACITY,
                            floor_guard=True, floor_reconcile_seconds=2.0,
                            audience_cache_seconds=2.0)
    workdir = Path(base_s.state_dir) / "cluster"
    async with livekit_cluster.running(base_s, workdir, nodes=3) as cluster:
        n1 = cluster.nodes[0]
        s = base_s.replace(livekit_url=n1.url, livekit_port=n1.settings.livekit_port)
        env = {**os.environ, **s.child_env(), "PYTHONUNBUFFERED": "1"}
        web_log = open(workdir / "web.log", "wb")  # noqa: SIM115
        web = subprocess.Popen([sys.executable, "-m", "broadcaster", "serve", "web"], cwd=ROOT,
                               env=env, stdout=web_log, stderr=subprocess.STDOUT)
        base = f"http://127.0.0.1:{s.web_port}"
        host = {"Authorization": f"Bearer {s.host_key}"}
        lk = api.LiveKitAPI(n1.http_url, s.livekit_api_key, s.livekit_api_secret)
        try:
            from broadcaster.netutil import wait_http_ok

            await wait_http_ok(base + "/healthz", timeout=30)
            stale = await storm_webinar(base, host)
            async with aiohttp.ClientSession(base) as http:
                # the shards opened 2.5 s apart, as the bot opens them (LiveKit refreshes
                # node stats every 2 s): each placement sees the last (no bot here)
                for shard in shard_rooms("storm", SHARDS):
                    await lk.room.create_room(api.CreateRoomRequest(
                        name=shard, empty_timeout=600, departure_timeout=600))
                    await asyncio.sleep(2.5)
                homes: dict[str, int | None] = {}
                for shard in shard_rooms("storm", SHARDS):
                    home = await cluster.room_node(shard)
                    homes[shard] = home.index if home else None
                pids = {"web": web.pid, **{f"node{x.index}": x.proc.pid for x in cluster.nodes}}
                cpu0 = {k: _cpu_seconds(p) for k, p in pids.items()}
                counts: list[tuple[float, int]] = []
                probes: list[dict[str, Any]] = []
                t0 = time.time()
                viewers = LoadViewers([
                    "-web", base, "-room", "storm", "-n", str(n), "-ramp", str(ramp),
                    "-concurrency", "128", "-settle", f"{SETTLE_S}s", "-hold", "3s",
                    "-prefix", "storm", "-source-addrs", source_addrs(200)],
                    log=workdir / "loadviewers.log")
                run = asyncio.create_task(viewers.run(timeout=180))

                async def count() -> None:
                    while not run.done():
                        with contextlib.suppress(Exception):
                            async with http.get("/api/webinars/storm/audience") as r:
                                counts.append((time.time() - t0, (await r.json())["viewers"]))
                        await asyncio.sleep(0.5)

                async def probe() -> None:
                    while not run.done():
                        took = await _probe(s, lk, "storm", stale)
                        probes.append({"at_s": round(time.time() - t0, 2), "seconds": took})

                helpers = [asyncio.create_task(count()), asyncio.create_task(probe())]
                final = await run
                for h in helpers:
                    h.cancel()
                await asyncio.gather(*helpers, return_exceptions=True)
                cpu = {k: round(_cpu_seconds(p) - cpu0[k], 2) for k, p in pids.items()}
                async with http.get("/api/webinars/storm/audience") as r:
                    after = await r.json()
        finally:
            await lk.aclose()
            await stop_process(web)
            web_log.close()
        lost: dict[str, int] = {}  # webhook events livekit-server dropped, by event
        for node in cluster.nodes:
            for line in node.log_path.read_text(errors="replace").splitlines():
                if "dropped webhook" in line and (m := re.search(r'"event": "(\w+)"', line)):
                    lost[m[1]] = lost.get(m[1], 0) + 1
    window = next(e for e in viewers.events if e.get("type") == "window_start")
    joined_s = window["t"] - SETTLE_S - t0
    per = (final.get("last") or {}).get("per_viewer") or []
    errors = [p["error"] for p in per if p.get("error")]
    fixed = [p["seconds"] for p in probes if p["seconds"] is not None]
    return {
        "viewers": n, "ramp_per_s": ramp, "shards": SHARDS, "shard_capacity": CAPACITY,
        "nodes": len(cluster.nodes),
        "all_joined_and_connected_s": round(joined_s, 2),
        "joins_per_second": round(n / joined_s, 1),
        "errors": len(errors), "error_samples": sorted(set(errors))[:5],
        "join_api_ms": summary(p["join_api_ms"] for p in per if p.get("join_api_ms")),
        "connect_ms": summary(p["connect_ms"] for p in per if p.get("connect_ms")),
        "shard_nodes": homes, "audience_polls": counts,
        "audience_peak": max((c[1] for c in counts), default=0),
        "audience_after_leaving": after,
        "floor_probes": probes, "stale_token_publish_s": summary(fixed),
        "stale_token_never_demoted": sum(p["seconds"] is None for p in probes),
        "webhooks_dropped": lost, "cpu_seconds": cpu,
    }


def plot(result: dict[str, Any], path: Path) -> None:
    plt = pyplot()
    if plt is None:
        return
    fig, (a, b) = plt.subplots(1, 2, figsize=(12, 4.2), dpi=100)
    xs = [c[0] for c in result["audience_polls"]]
    ys = [c[1] for c in result["audience_polls"]]
    a.plot(xs, ys, "-o", ms=3, label="audience count (GET /audience, all shards)")
    a.axvline(result["all_joined_and_connected_s"], color="tab:green", ls="--",
              label=f"all {result['viewers']} joined + connected "
                    f"({result['all_joined_and_connected_s']:.1f} s)")
    a.axvline(GOAL_S, color="tab:red", ls=":", label=f"goal {GOAL_S:g} s")
    pr = [(p["at_s"], p["seconds"]) for p in result["floor_probes"] if p["seconds"] is not None]
    if pr:
        a2 = a.twinx()
        a2.plot([p[0] for p in pr], [p[1] for p in pr], "s", color="tab:purple", ms=5,
                label="stale presenter token: could publish for (s)")
        a2.set_ylabel("stale token publishing (s)")
        a2.legend(fontsize=7, loc="lower right")
    a.set_xlabel("seconds since the storm began")
    a.set_ylabel("viewers counted")
    a.legend(fontsize=7, loc="upper left")
    a.set_title(f"{result['viewers']} joins through the API on a 3-node cluster")
    api_ms = result["join_api_ms"]
    con_ms = result["connect_ms"]
    labels = ["join API", "LiveKit connect"]
    for k, (q, color) in enumerate((("p50", "tab:blue"), ("p95", "tab:orange"),
                                    ("max", "tab:red"))):
        b.bar([i - 0.2 + 0.2 * k for i in range(2)], [api_ms.get(q, 0), con_ms.get(q, 0)],
              width=0.2, color=color, label=q)
    b.legend(fontsize=8)
    b.set_xticks([0, 1], labels)
    b.set_ylabel("ms (p50 / p95 / max)")
    b.set_title(f"per viewer; errors: {result['errors']}")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def run(quick: bool = False) -> dict[str, Any]:
    n, ramp = (200, 100.0) if quick else (VIEWERS, RAMP)
    r = asyncio.run(storm(n, ramp))
    result = {
        "bench": NAME,
        "what": f"{n} viewers join at {ramp:g}/s through the web app's join API (200 "
                "source addresses) and LiveKit (Go load viewers: signalling + a WebRTC "
                f"peer connection each) into {SHARDS} audience shards on a 3-node cluster "
                "with Redis; a demoted presenter's stale token probes the floor guard; "
                "no publisher (media capacity: bench/capacity.py)",
        "quick": quick, **r,
        "pass": (r["errors"] == 0 and r["all_joined_and_connected_s"] <= GOAL_S
                 and r["audience_peak"] == n
                 and r["stale_token_never_demoted"] == 0),
        "machine": machine(), "when": now_iso(),
    }
    write_result(NAME, result)
    plot(result, RESULTS / f"{NAME}.png")
    return result


if __name__ == "__main__":
    out = run(quick="--quick" in sys.argv)
    print(json.dumps({k: out[k] for k in (
        "viewers", "all_joined_and_connected_s", "joins_per_second", "errors", "error_samples",
        "join_api_ms", "connect_ms", "audience_peak", "shard_nodes", "stale_token_publish_s",
        "stale_token_never_demoted", "webhooks_dropped", "cpu_seconds", "pass")}))
