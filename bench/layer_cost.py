"""What video layers cost to encode: one 720p25 publisher, whole-process CPU, per mode.

Modes, each a ``bench.plain_publisher`` child (the bot's encoding from the settings,
the avatar renderer's talking pictures, a silent audio track) publishing into a real
livekit-server, with one Go viewer per layer (bench/loadviewers, each asking the SFU
for its layer: what arrives, at which size, fps and bitrate):

- ``vp8_single``: one 1280x720 VP8 layer (the bot's default today);
- ``vp8_simulcast``: the SDK's three VP8 layers 1280x720 / 640x360 / 320x180
  (``video_simulcast``), the publisher encodes all three (no dynacast);
- ``vp9_svc`` / ``av1_svc``: one VP9 / AV1 stream with three spatial and three
  temporal layers (``scalability_mode="L3T3_KEY"``), which the SFU can thin per viewer.

Every mode runs ``ROUNDS`` times, modes interleaved so machine noise hits them alike;
the publisher's CPU (utime + stime from /proc) is read over a window after a warm-up.
For the encode-once question (audience shards), the same pictures are also encoded
with PyAV's libvpx VP8 at each layer's size (``pyav_vp8_*``: ms per frame in this
process, realtime settings), i.e. what each layer costs when encoded once and fanned out.

Run: ``.venv/bin/python -m bench layer_cost`` (``--quick``: 1 round, shorter windows).
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from bench import procstat
from bench.harness import (
    RESULTS,
    fresh_settings,
    livekit_server,
    machine,
    now_iso,
    pyplot,
    stop_process,
    write_result,
)
from bench.loadtool import LoadViewers
from bench.ports import recent_server_logs, with_fresh_ports
from bench.provenance import provenance

ROOT = Path(__file__).resolve().parents[1]
#: mode -> plain_publisher arguments
MODES: dict[str, list[str]] = {
    "vp8_single": [],
    "vp8_simulcast": ["--simulcast"],
    "vp9_svc": ["--codec", "VP9", "--scalability-mode", "L3T3_KEY"],
    "vp9_svc_l3t1": ["--codec", "VP9", "--scalability-mode", "L3T1"],
    "av1_svc": ["--codec", "AV1", "--scalability-mode", "L3T3_KEY"],
    "h264_simulcast": ["--codec", "H264", "--simulcast"],
}
WARMUP_S, WINDOW_S, ROUNDS = 6.0, 12.0, 3
LAYERS = ((1280, 720), (640, 360), (320, 180))


async def one(mode: str, window: float, settings: Any, state: Path) -> dict[str, Any]:
    """One publisher in ``mode``; one Go viewer per layer it offers (asking the SFU for
    that layer), so each layer's size, fps and bitrate are seen; the publisher's CPU
    over the viewers' window."""
    from broadcaster.roles import Role, mint_token

    s = settings
    room = f"layers-{mode.replace('_', '-')}-{time.monotonic_ns() % 10**6}"
    log = open(state / f"pub-{mode}.log", "ab")  # noqa: SIM115 - closed below
    pub = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.plain_publisher", "--url", s.effective_livekit_url,
        "--token", mint_token(s, Role.BOT, room, "pub"), "--state", "speaking",
        *MODES[mode], cwd=str(ROOT), stdout=log, stderr=log,
        env={**os.environ, **s.child_env()})
    qualities = ("high",) if mode == "vp8_single" else ("high", "medium", "low")
    marks: dict[str, Any] = {"viewers": {}}

    def on_event(quality: str) -> Any:
        def handle(ev: dict[str, Any]) -> None:
            if ev["type"] == "window_start" and quality == "high":
                marks["a"] = procstat.read({"pub": pub.pid})
            elif ev["type"] == "step":
                if quality == "high":
                    marks["cores"] = procstat.cores(marks["a"],
                                                    procstat.read({"pub": pub.pid}))["pub"]
                marks["viewers"][quality] = ev["per_viewer"][0]
        return handle

    viewers = [LoadViewers(["-livekit-url", s.effective_livekit_url, "-quality", q,
                            "-token", mint_token(s, Role.VIEWER, room, f"viewer-{q}"), "-n", "1",
                            "-settle", f"{WARMUP_S}s", "-hold", f"{window}s", "-from", "pub"],
                           on_event(q), log=state / f"viewer-{mode}-{q}.log")
               for q in qualities]
    try:
        await asyncio.sleep(1.0)
        await asyncio.gather(*(lv.run(timeout=120) for lv in viewers))
    finally:
        await stop_process(pub)
        log.close()
    layers = {}
    for q, v in marks["viewers"].items():
        video = v.get("video") or {}
        layers[q] = {"fps": video.get("fps"), "kbps": video.get("kbps"),
                     "size": [video.get("width"), video.get("height")],
                     "loss": video.get("loss")}
    codec = (marks["viewers"].get("high") or {}).get("codec")
    return {"cores": marks.get("cores"), "layers": layers, "codec": codec}


def pyav_layer_costs(frames: int = 150) -> dict[str, float]:
    """ms per frame to encode the talking pictures at each layer size with libvpx VP8."""
    import av

    from bench.plain_publisher import render_pool

    pool = render_pool(1280, 720, 25, "speaking")
    out: dict[str, float] = {}
    for w, h in LAYERS:
        enc = av.CodecContext.create("libvpx", "w")
        enc.width, enc.height, enc.pix_fmt = w, h, "yuv420p"
        enc.time_base = Fraction(1, 25)
        enc.framerate = Fraction(25, 1)
        enc.bit_rate = {720: 1_700_000, 360: 500_000, 180: 150_000}[h]
        enc.options = {"deadline": "realtime", "cpu-used": "8", "lag-in-frames": "0",
                       "threads": "1"}
        pics = []
        for buf in pool[:50]:
            f = av.VideoFrame.from_ndarray(
                np.frombuffer(buf, np.uint8).reshape(720 * 3 // 2, 1280), format="yuv420p")
            pics.append(f.reformat(w, h) if (w, h) != (1280, 720) else f)
        for i in range(10):  # warm-up
            enc.encode(pics[i % len(pics)])
        t0 = time.process_time()
        for i in range(frames):
            pic = pics[i % len(pics)]
            pic.pts = i + 10
            enc.encode(pic)
        out[f"pyav_vp8_{h}p"] = round((time.process_time() - t0) / frames * 1000, 3)
    return out


async def session(quick: bool) -> dict[str, Any]:
    rounds = 1 if quick else ROUNDS
    window = 8.0 if quick else WINDOW_S
    runs: dict[str, list[dict[str, Any]]] = {m: [] for m in MODES}
    async with livekit_server(fresh_settings()) as s:
        state = Path(s.state_dir)
        for r in range(rounds):
            order = list(MODES) if r % 2 == 0 else list(reversed(MODES))
            for mode in order:
                res = await one(mode, window, s, state)
                print(f"round {r + 1} {mode}: {res}", flush=True)
                runs[mode].append(res)
    return {"runs": runs, "rounds": rounds, "window_s": window}


def run(quick: bool = False) -> dict[str, Any]:
    res = asyncio.run(with_fresh_ports(lambda: session(quick), logs=recent_server_logs))
    modes: dict[str, Any] = {}
    for mode, runs in res["runs"].items():
        cores = [r["cores"] for r in runs if r["cores"] is not None]
        modes[mode] = {
            "cores_median": round(float(np.median(cores)), 4) if cores else None,
            "ms_per_frame": round(float(np.median(cores)) * 1000 / 25, 2) if cores else None,
            "layers": runs[-1]["layers"] if runs else None,
            "codec": runs[-1]["codec"] if runs else None,
            "runs": runs,
        }
    single = modes["vp8_single"]["cores_median"]
    for m in modes.values():
        m["ratio_vs_single"] = (round(m["cores_median"] / single, 3)
                                if single and m["cores_median"] else None)
    result = {
        "bench": "layer_cost",
        "what": "publisher process CPU for 720p25 with layers (simulcast / SVC) vs one layer, "
                "plus libvpx per-layer encode cost (PyAV) for encode-once fan-out",
        "when": now_iso(), "quick": quick, "rounds": res["rounds"],
        "window_s": res["window_s"], "modes": modes, "pyav": pyav_layer_costs(),
        "machine": machine(), **provenance(),
    }
    write_result("layer_cost", result)
    plot(result)
    return result


def plot(result: dict[str, Any]) -> None:
    plt = pyplot()
    if plt is None:
        return
    modes = result["modes"]
    names = list(modes)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    vals = [modes[n]["cores_median"] or 0 for n in names]
    ax1.bar(names, vals, color=["tab:gray", "tab:blue", "tab:green", "tab:purple"][:len(names)])
    for i, v in enumerate(vals):
        ax1.text(i, v, f"{v:.2f}", ha="center", va="bottom")
    ax1.set(ylabel="cores (publisher process)", title="Publishing 720p25 with layers")
    ax1.tick_params(axis="x", labelsize=8)
    py = result["pyav"]
    ax2.bar(list(py), list(py.values()), color="tab:orange")
    for i, v in enumerate(py.values()):
        ax2.text(i, v, f"{v:.2f}", ha="center", va="bottom")
    ax2.set(ylabel="ms per frame", title="libvpx VP8 encode per layer (PyAV, realtime)")
    fig.suptitle(f"Layer encode cost (commit {result.get('commit')})")
    fig.tight_layout()
    fig.savefig(RESULTS / "layer_cost.png", dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    run(quick="--quick" in sys.argv)
