"""A viewer behind a 500 kbit/s link, with and without layers.

One 720p25 publisher with the bot's encoding (``bench.plain_publisher``: the avatar
renderer's talking pictures, the settings' bitrate, every frame numbered) and two
libwebrtc viewers (``bench.frame_recorder``: the ``livekit`` SDK, which sends REMB
like a browser, so livekit-server's default congestion control sizes their streams):
a normal one on the host, and a weak one inside a network namespace whose veth carries
``tc tbf rate 500kbit`` (bench/netns.py). livekit-server listens on the veth's host
address and offers only that as its ICE candidate, so the weak viewer's media really
crosses the limit. Per mode (one layer, VP8 simulcast, VP9 SVC with and without
temporal layers) the viewers settle for
``SETTLE_S`` and then count distinct decoded frames for ``HOLD_S``, with the picture
size they get (the layer the SFU picked for them).

Needs root for the namespace; without it the bench writes why and measures nothing.
Run: ``.venv/bin/python -m bench weak_link`` (``--quick``: shorter windows).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from bench import netns
from bench.harness import (
    RESULTS,
    fresh_settings,
    machine,
    now_iso,
    pyplot,
    stop_process,
    write_result,
)
from bench.ports import recent_server_logs, with_fresh_ports
from bench.provenance import provenance
from broadcaster import livekit_server as lks

ROOT = Path(__file__).resolve().parents[1]
MODES: dict[str, list[str]] = {
    "vp8_single": [],
    "vp8_simulcast": ["--simulcast"],
    "vp9_svc": ["--codec", "VP9", "--scalability-mode", "L3T3_KEY"],
    "vp9_svc_l3t1": ["--codec", "VP9", "--scalability-mode", "L3T1"],
    "h264_simulcast": ["--codec", "H264", "--simulcast"],
}
RATE_KBIT = 500
SETTLE_S, HOLD_S = 15.0, 15.0
MIN_WEAK_FPS = 15.0


def server_extra(link: netns.Link) -> dict[str, Any]:
    """livekit.yaml keys so clients inside the namespace can reach the server: it
    listens on the veth's host address and gathers ICE candidates there only. (With
    ``node_ip`` set, livekit-server rewrites every host candidate to that address, so
    a candidate whose socket is the loopback one would be offered as the veth address
    and fail: hence the IP filter, and no loopback candidate.) Host-side clients reach
    the veth address as a local one. No ICE/TCP: with the IP filter, livekit-server
    v1.13.5 often fails to start with its RTC TCP port "already in use" (by itself),
    and UDP is what is measured."""
    return {"bind_addresses": ["127.0.0.1", link.host_ip],
            "rtc": {"node_ip": link.host_ip, "ips": {"includes": [f"{link.host_ip}/32"]},
                    "enable_loopback_candidate": False, "use_external_ip": False,
                    "tcp_port": 0}}


async def _recorder(argv_prefix: list[str], url: str, token: str, seconds: float,
                    settle: float, out: Path, log: Path) -> dict[str, Any]:
    with open(log, "wb") as fh:
        proc = await asyncio.create_subprocess_exec(
            *argv_prefix, sys.executable, "-m", "bench.frame_recorder", "--url", url,
            "--token", token, "--seconds", str(seconds), "--settle", str(settle),
            "--from", "pub", "--out", str(out), cwd=str(ROOT), stdout=fh, stderr=fh)
        try:
            await asyncio.wait_for(proc.wait(), seconds + 60)
        finally:
            await stop_process(proc)
    try:
        return json.loads(out.read_text())
    except (OSError, json.JSONDecodeError):
        return {"error": f"no result; see {log}"}


async def one(mode: str, link: netns.Link, s: Any, state: Path, settle: float,
              hold: float) -> dict[str, Any]:
    from broadcaster.roles import Role, mint_token

    room = f"weak-{mode.replace('_', '-')}-{time.monotonic_ns() % 10**6}"
    url = s.effective_livekit_url
    log = open(state / f"pub-{mode}.log", "ab")  # noqa: SIM115 - closed below
    pub = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.plain_publisher", "--url", url,
        "--token", mint_token(s, Role.BOT, room, "pub"), "--state", "speaking", *MODES[mode],
        cwd=str(ROOT), stdout=log, stderr=log, env={**os.environ, **s.child_env()})
    seconds = settle + hold
    try:
        await asyncio.sleep(2.0)
        tc0 = netns.tc_stats(link)
        normal, weak = await asyncio.gather(
            _recorder([], url, mint_token(s, Role.VIEWER, room, "normal"), seconds, settle,
                      state / f"normal-{mode}.json", state / f"normal-{mode}.log"),
            _recorder(link.exec(), url, mint_token(s, Role.VIEWER, room, "weak"), seconds,
                      settle, state / f"weak-{mode}.json", state / f"weak-{mode}.log"))
        tc1 = netns.tc_stats(link)
    finally:
        await stop_process(pub)
        log.close()
    tc = {k: tc1.get(k, 0) - tc0.get(k, 0) for k in tc1}
    link_kbps = tc.get("bytes", 0) * 8 / 1000 / max(seconds, 1e-6)
    return {"normal": normal, "weak": weak, "tc": tc, "weak_link_kbps": round(link_kbps, 1),
            "weak_ok": bool((weak.get("fps") or 0) >= MIN_WEAK_FPS
                            and (weak.get("height") or 720) < 720),
            "normal_720p": normal.get("height") == 720 and (normal.get("fps") or 0) >= 24}


async def session(quick: bool) -> dict[str, Any]:
    settle, hold = (10.0, 8.0) if quick else (SETTLE_S, HOLD_S)
    results: dict[str, Any] = {}
    with netns.weak_link(RATE_KBIT) as link:
        base = fresh_settings()
        s = dataclasses.replace(base, livekit_url=f"ws://{link.host_ip}:{base.livekit_port}")
        async with lks.running(s, Path(s.state_dir) / "livekit.log",
                               extra=server_extra(link)) as ready:
            for mode in MODES:
                results[mode] = await one(mode, link, ready, Path(s.state_dir), settle, hold)
                r = results[mode]
                print(mode, "normal", {k: r["normal"].get(k) for k in ("fps", "size")},
                      "weak", {k: r["weak"].get(k) for k in ("fps", "size", "sizes")},
                      "link kbps", r["weak_link_kbps"], flush=True)
    return {"modes": results, "settle_s": settle, "hold_s": hold,
            "link": {"rate_kbit": RATE_KBIT, "qdisc": "tbf burst 16kbit latency 200ms"}}


def run(quick: bool = False) -> dict[str, Any]:
    reason = netns.unavailable()
    result: dict[str, Any] = {
        "bench": "weak_link",
        "what": f"a viewer behind a {RATE_KBIT} kbit/s tbf link vs a normal viewer, one 720p25 "
                "publisher with one layer / simulcast / SVC",
        "when": now_iso(), "quick": quick, "machine": machine(), **provenance(),
    }
    if reason:
        result["skipped"] = reason
        print(f"weak_link skipped: {reason}")
    else:
        result.update(asyncio.run(with_fresh_ports(lambda: session(quick),
                                                       logs=recent_server_logs)))
    write_result("weak_link", result)
    if not reason:
        plot(result)
    return result


def plot(result: dict[str, Any]) -> None:
    plt = pyplot()
    if plt is None:
        return
    modes = result["modes"]
    names = list(modes)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    x = range(len(names))
    for off, who, color in ((-0.2, "normal", "tab:blue"), (0.2, "weak", "tab:red")):
        fps = [modes[n][who].get("fps") or 0 for n in names]
        ax1.bar([i + off for i in x], fps, 0.4, color=color, label=f"{who} viewer")
        for i, n in enumerate(names):
            h = modes[n][who].get("height")
            ax1.text(i + off, fps[i], f"{h}p" if h else "–", ha="center", va="bottom",
                     fontsize=8)
    for n in names:
        ch = modes[n]["weak"].get("size_changes") or []
        ax2.step([c["t"] for c in ch] + [result["settle_s"] + result["hold_s"]],
                 [c["height"] for c in ch] + [ch[-1]["height"] if ch else 0], where="post",
                 label=n)
    ax1.axhline(MIN_WEAK_FPS, color="red", lw=0.8, ls="--")
    ax1.set_xticks(list(x), names)
    ax1.tick_params(axis="x", labelsize=7, rotation=12)
    ax1.set(ylabel="fps (label: height received)", title="Frames per second")
    ax1.legend(fontsize=8)
    ax2.set(xlabel="seconds since the weak viewer's first frame", ylabel="height received",
            title=f"Weak viewer's layer ({result['link']['rate_kbit']} kbit/s tbf)",
            yticks=[180, 360, 540, 720])
    ax2.legend(fontsize=8)
    ax2.legend(fontsize=8)
    fig.suptitle(f"Weak-link viewer (commit {result.get('commit')})")
    fig.tight_layout()
    fig.savefig(RESULTS / "weak_link.png", dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    run(quick="--quick" in sys.argv)
