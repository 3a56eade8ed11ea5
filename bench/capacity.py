"""Capacity: how many receive-only viewers one livekit-server carries, avatar vs plain.

The whole stack runs as ``broadcaster up`` (livekit-server, the local avatar service,
the web app and the demo room's bot relaying the avatar). Go viewers
(bench/loadviewers, server-sdk-go, RTP read without decoding) join through the web
app's join API like viewer pages and are added in steps (25, 50, 100, ... 400) until
more than 5 % of them get < 24 fps or lose > 1 % of their video packets. At each step
the viewers measure for ``HOLD`` seconds while this process reads the CPU of the SFU,
the bot, the avatar service, the web app and the load client from /proc over the same
window.

Baseline, same run, same server: the bot is stopped and a plain LiveKit publisher
(bench/plain_publisher.py: the same 1280x720 25 fps VP8 encoding at the bitrate the
avatar reached, an audio track that Opus codes continuously as the bot's does, the
avatar renderer's idle pictures, no avatar session, no pipeline) takes its place in
the room under the bot's identity; the same ramp follows. A third ramp
(``baseline_svc``) repeats it with the publisher sending VP9 with three spatial layers
(L3T1, the weak-link bench's pick) at the same total bitrate: what layers cost the SFU.

Everything shares one 2-core machine, so the ramp ends when the *box* is full (SFU +
load client + bot), not the SFU alone: the figure that carries over to a real node is
the SFU's CPU per viewer (slope of SFU cores over viewers) and viewers per SFU core.

Run: ``.venv/bin/python -m bench capacity`` (``--quick``: 25/50/100 viewers only).
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np

from bench import procstat
from bench.harness import RESULTS, machine, now_iso, pyplot, stop_process, up_stack, write_result
from bench.loadtool import LoadViewers, source_addrs
from bench.ports import with_fresh_ports
from bench.provenance import provenance

STEPS = (50, 100, 150, 200, 250, 300, 350, 400)
QUICK_STEPS = (25, 50, 100)
HOLD_S, SETTLE_S, RAMP_PER_S = 15, 5, 25
MIN_FPS, MAX_LOSS, QUANTILE = 24.0, 0.01, 0.05
#: the layered encoding the weak-link bench found to keep weak viewers at >= 15 fps
SVC_ARGS = ["--codec", "VP9", "--scalability-mode", "L3T1"]


async def _host(http: aiohttp.ClientSession, base: str, key: str, path: str) -> Any:
    async with http.post(f"{base}/api/host/{path}", json={},
                         headers={"Authorization": f"Bearer {key}"}) as r:
        data = await r.json()
        if r.status != 200:
            raise RuntimeError(f"POST {path}: HTTP {r.status} {data}")
        return data


async def ramp(name: str, web: str, room: str, publisher: str, parts: dict[str, int],
               steps: tuple[int, ...], state: Path) -> dict[str, Any]:
    """One ramp of load viewers; each step's viewer figures + the parts' CPU."""
    out: list[dict[str, Any]] = []
    marks: dict[str, Any] = {}

    def on_event(ev: dict[str, Any]) -> None:
        if ev["type"] == "window_start":
            marks["cpu"] = procstat.read(watched)
            marks["box"] = procstat.box_busy()
        elif ev["type"] == "step":
            cores = procstat.cores(marks["cpu"], procstat.read(watched))
            box = procstat.box_cores(marks["box"], procstat.box_busy())
            pv = ev.pop("per_viewer", [])
            layers = [v["video"]["height"] for v in pv if v.get("video")]
            ours = sum(v for v in cores.values() if v is not None)
            out.append({**ev, "cpu_cores": cores, "box_cores": box,
                        "other_cores": round(max(box - ours, 0.0), 3),  # not ours: the box's
                        # other work (other people's jobs skew a step; see docs/scaling.md)
                        "heights": sorted(set(layers)),
                        "fps_per_viewer": [round(v["video"]["fps"], 2) if v.get("video") else 0
                                           for v in pv]})
            print(f"{name}: {ev['viewers']} viewers fps q5 {ev['fps_at_quantile']:.2f} "
                  f"loss q95 {100 * ev['loss_at_quantile']:.2f} % "
                  f"sfu {cores.get('sfu')} box {box} others {max(box - ours, 0):.2f}"
                  + (" SATURATED" if ev["saturated"]
                                                         else ""), flush=True)

    lv = LoadViewers(["-web", web, "-room", room, "-from", publisher, "-prefix", f"cap-{name}",
                      "-quality", "high",  # as a page showing the video at 720p
                      "-steps", ",".join(map(str, steps)), "-ramp", str(RAMP_PER_S),
                      "-settle", f"{SETTLE_S}s", "-hold", f"{HOLD_S}s",
                      "-stop-fps", str(MIN_FPS), "-stop-loss", str(MAX_LOSS),
                      "-stop-quantile", str(QUANTILE), "-source-addrs", source_addrs()],
                     on_event, log=state / f"loadviewers-{name}.log")
    watched = dict(parts)

    async def add_self() -> None:  # the load client's own CPU, once it runs
        while lv.pid is None:
            await asyncio.sleep(0.05)
        watched["loadviewers"] = lv.pid

    adder = asyncio.create_task(add_self())
    final = await lv.run()
    adder.cancel()
    return summarize(out, final)


def summarize(steps: list[dict[str, Any]], final: dict[str, Any]) -> dict[str, Any]:
    ok = [s for s in steps if not s["saturated"]]
    best = ok[-1] if ok else None
    sfu = [(s["viewers"], s["cpu_cores"].get("sfu")) for s in steps]
    pts = [(n, c) for n, c in sfu if c is not None]
    slope = intercept = None
    if len(pts) >= 2:
        xs, ys = np.array([p[0] for p in pts], float), np.array([p[1] for p in pts], float)
        fit_n = [s["viewers"] for s in ok] or list(xs)
        mask = np.isin(xs, fit_n) if len(fit_n) >= 2 else np.ones_like(xs, bool)
        slope, intercept = (float(v) for v in np.polyfit(xs[mask], ys[mask], 1))
    sfu_best = best["cpu_cores"].get("sfu") if best else None

    def mean_part(part: str) -> float | None:
        vals = [s["cpu_cores"].get(part) for s in steps if s["cpu_cores"].get(part) is not None]
        return round(float(np.mean(vals)), 4) if vals else None

    return {
        "steps": steps,
        "stopped": final.get("stopped"),
        "max_viewers_ok": best["viewers"] if best else 0,
        "saturated_at": next((s["viewers"] for s in steps if s["saturated"]), None),
        "sfu_cores_at_max": sfu_best,
        "viewers_per_sfu_core": round(best["viewers"] / sfu_best, 1)
        if best and sfu_best else None,
        "sfu_millicores_per_viewer": round(1000 * slope, 3) if slope is not None else None,
        "sfu_idle_cores": round(intercept, 4) if intercept is not None else None,
        "marginal_viewers_per_sfu_core": round(1 / slope) if slope and slope > 0 else None,
        "publisher_cores_mean": mean_part("bot") if mean_part("bot") is not None
        else mean_part("publisher"),
        "avatar_service_cores_mean": mean_part("avatar"),
        "web_cores_mean": mean_part("web"),
        "kbps_per_viewer_p50": best["kbps"]["p50"] if best else None,
        "video_pps_p50": best["pps"]["p50"] if best else None,
        "audio_kbps_p50": best["audio_kbps"]["p50"] if best else None,
    }


async def session(quick: bool) -> dict[str, Any]:
    from bench.e2e import wait_bot_live

    steps = QUICK_STEPS if quick else STEPS
    async with up_stack(start_bot=True) as stack, aiohttp.ClientSession() as http:
        s = stack.settings
        state = Path(s.state_dir)
        web = f"http://127.0.0.1:{s.web_port}"
        await wait_bot_live(stack, http, 120)
        await asyncio.sleep(5)  # the avatar session settles (first keyframes, pacing)
        parts = procstat.classify(procstat.descendants(stack.proc.pid))
        for need in ("sfu", "bot", "avatar", "web"):
            if need not in parts:
                raise RuntimeError(f"no {need} process under `broadcaster up`: {parts}")
        print(f"processes: {parts}", flush=True)
        avatar = await ramp("avatar", web, s.demo_room, s.bot_identity, parts, steps, state)

        # baseline: the plain publisher takes the bot's place in the same room
        await _host(http, web, s.host_key, f"webinars/{s.demo_room}/bot/stop")
        gone = time.monotonic() + 30
        while procstat.cpu_seconds(parts["bot"]) is not None and time.monotonic() < gone:
            await asyncio.sleep(0.2)
        await asyncio.sleep(3)  # the avatar session ends with the bot
        # the same video bitrate as the avatar's at the viewers (the idle pictures alone
        # would reach ~1.4 Mbps: no first-generation encode to smooth them)
        kbps = avatar["steps"][0]["kbps"]["p50"]
        bitrate = int(round(kbps, -1) * 1000)
        phases = {"avatar": avatar}
        for name, extra in (("baseline", []), ("baseline_svc", SVC_ARGS)):
            phases[name] = await plain_ramp(name, s, web, parts, steps, state, bitrate, extra)
    return {**phases, "steps_planned": list(steps), "baseline_max_bitrate": bitrate}


async def plain_ramp(name: str, s: Any, web: str, parts: dict[str, int],
                     steps: tuple[int, ...], state: Path, bitrate: int,
                     extra: list[str]) -> dict[str, Any]:
    """The ramp again with the plain publisher in the bot's place (same room, identity)."""
    from broadcaster.roles import Role, mint_token

    token = mint_token(s, Role.BOT, s.demo_room, s.bot_identity)
    log = open(state / f"{name}_publisher.log", "wb")  # noqa: SIM115 - closed below
    pub = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.plain_publisher", "--url", s.effective_livekit_url,
        "--token", token, "--max-bitrate", str(bitrate), *extra,
        cwd=str(Path(__file__).resolve().parents[1]), stdout=log, stderr=log,
        env={**os.environ, **s.child_env()})
    try:
        await asyncio.sleep(6)
        base_parts = {"sfu": parts["sfu"], "publisher": pub.pid, "web": parts["web"],
                      "avatar": parts["avatar"]}
        return await ramp(name, web, s.demo_room, s.bot_identity, base_parts, steps, state)
    finally:
        await stop_process(pub)
        log.close()
        await asyncio.sleep(2)


def run(quick: bool = False) -> dict[str, Any]:
    res = asyncio.run(with_fresh_ports(lambda: session(quick)))
    a, b = res["avatar"], res["baseline"]
    ratio = None
    if a["viewers_per_sfu_core"] and b["viewers_per_sfu_core"]:
        ratio = round(a["viewers_per_sfu_core"] / b["viewers_per_sfu_core"], 3)
    result = {
        "bench": "capacity",
        "what": (f"receive-only Go viewers joining through the web app, ramped until > "
                 f"{QUANTILE:.0%} of them get < {MIN_FPS:g} fps or > {MAX_LOSS:.0%} loss; "
                 "avatar relayed by the bot vs a plain publisher of the same encoding, "
                 "one 2-core box"),
        "when": now_iso(),
        "quick": quick,
        "criteria": {"min_fps": MIN_FPS, "max_loss": MAX_LOSS, "quantile": QUANTILE,
                     "hold_s": HOLD_S, "settle_s": SETTLE_S, "ramp_per_s": RAMP_PER_S},
        **res,
        "ratio_viewers_per_core_vs_baseline": ratio,
        "ratio_mcore_per_viewer_vs_baseline": round(
            a["sfu_millicores_per_viewer"] / b["sfu_millicores_per_viewer"], 3)
        if a["sfu_millicores_per_viewer"] and b["sfu_millicores_per_viewer"] else None,
        "machine": machine(),
        **provenance(),
    }
    write_result("capacity", result)
    plot(result)
    return result


def plot(result: dict[str, Any]) -> None:
    plt = pyplot()
    if plt is None:
        return
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
    for key, color in (("avatar", "tab:blue"), ("baseline", "tab:gray"),
                       ("baseline_svc", "tab:green")):
        if key not in result:
            continue
        steps = result[key]["steps"]
        n = [s["viewers"] for s in steps]
        ax1.plot(n, [s["fps_at_quantile"] for s in steps], "o-", color=color,
                 label=f"{key}: fps of the 5th-percentile viewer")
        ax1.plot(n, [s["fps"]["p50"] for s in steps], "x--", color=color, alpha=0.6,
                 label=f"{key}: median fps")
        ax2.plot(n, [s["cpu_cores"].get("sfu") for s in steps], "o-", color=color,
                 label=f"{key}: livekit-server")
        pub = "bot" if key == "avatar" else "publisher"
        ax2.plot(n, [s["cpu_cores"].get(pub) for s in steps], "s:", color=color,
                 label=f"{key}: {pub}")
        ax2.plot(n, [s["cpu_cores"].get("loadviewers") for s in steps], "^:", color=color,
                 alpha=0.5, label=f"{key}: load client")
        ax2.plot(n, [s["box_cores"] for s in steps], "-", color=color, alpha=0.3,
                 label=f"{key}: whole box")
    ax1.axhline(MIN_FPS, color="red", lw=0.8, ls="--")
    ax1.set(xlabel="viewers", ylabel="fps", title="Frames per second at the viewers",
            ylim=(0, 27))
    ax1.legend(fontsize=7)
    ax2.set(xlabel="viewers", ylabel="cores", title="CPU (cores) over each 15 s window")
    ax2.legend(fontsize=7)
    fig.suptitle(f"Capacity on one 2-core box (commit {result.get('commit')})")
    fig.tight_layout()
    fig.savefig(RESULTS / "capacity.png", dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    run(quick="--quick" in sys.argv)
