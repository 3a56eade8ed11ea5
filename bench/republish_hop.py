"""CPU per 1280x720 frame of the hop from the avatar's decoded frame to LiveKit capture.

Two paths, measured in the same process, interleaved in blocks so machine noise
hits both alike:

(a) pipecat 1.14's own path: the HeyGen client converts the decoded I420
    ``rtc.VideoFrame`` to RGB24 and copies it into ``bytes`` (``ImageRawFrame``), the
    service rebuilds an ``OutputImageRawFrame``, the output transport's media sender
    runs its resize check in an executor (no resize: sizes match) and
    ``LiveKitOutputTransport._convert_pipecat_video_to_livekit`` (through
    ``broadcaster.sdk_internals``) wraps it as an RGB24
    ``rtc.VideoFrame`` that ``VideoSource.capture_frame`` converts back to I420.
(b) ours: ``I420AvatarFrame.wrap(decoded)`` then ``LiveKitRepublisher.offer_video``
    (pacing, frame metadata stamp, ``capture_frame`` of the I420 frame as is).

Both capture into an unpublished ``rtc.VideoSource`` so no encoder runs (encoding
is the same for both and is measured by bench/republish_cpu.py). The SDK's own copy
of each decoded picture into Python (common to both paths) is reported apart.

Each configuration runs in a child process, because glibc malloc settings cannot be
undone: ``default`` (glibc defaults), ``mallopt`` (``tune_malloc()`` at run time, what
the republisher does) and ``env`` (``MALLOC_MMAP_THRESHOLD_``/``MALLOC_TRIM_THRESHOLD_``
in the environment). Minor page faults per frame come from ``getrusage``.

The in-process loop above turns out not to page-fault even with glibc defaults
(glibc's dynamic mmap threshold adapts to a tight loop). A real receiving process
does: so a second, *live* part runs each path in a child that subscribes to a real
720p25 VP8 stream from a real livekit-server (started here on free ports), with and
without malloc tuning, plus a decode-only baseline, and reports CPU and page faults
per received frame over a fixed duration.

Run: ``.venv/bin/python bench/republish_hop.py [--frames 600] [--quick] [--no-live]``. Writes
``bench/results/republish_hop.json`` and ``bench/results/republish_hop.png``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import resource
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.provenance import provenance  # noqa: E402

RESULTS = ROOT / "bench" / "results"
W, H = 1280, 720
TARGET_MS = 0.25
BLOCK = 50
CONFIGS = ("default", "mallopt", "env")
MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": "16777216", "MALLOC_TRIM_THRESHOLD_": "67108864"}


# ------------------------------------------------------------------------------ child
async def _measure(frames: int, config: str) -> dict[str, Any]:
    import numpy as np
    from livekit import rtc
    from pipecat.frames.frames import ImageRawFrame, OutputImageRawFrame

    from broadcaster.bot.republisher import LiveKitRepublisher, RepublishEncoding, tune_malloc
    from broadcaster.frames import I420AvatarFrame
    from broadcaster.sdk_internals import pipecat_livekit_video_frame

    if config == "mallopt":
        tune_malloc()
    loop = asyncio.get_running_loop()
    executor = ThreadPoolExecutor(max_workers=1)  # pipecat's MediaSender has its own too
    rng = np.random.default_rng(1)
    pool = []
    for _ in range(8):  # a few distinct "decoded" pictures, like a decoder's output
        buf = rng.integers(16, 235, W * H * 3 // 2, dtype=np.uint8)
        pool.append(rtc.VideoFrame(W, H, rtc.VideoBufferType.I420, bytearray(buf.data)))

    pipecat_source = rtc.VideoSource(W, H)
    ours_source = rtc.VideoSource(W, H)
    rep = LiveKitRepublisher(
        room=lambda: None, encoding=RepublishEncoding(W, H, fps=1e6), malloc_tuning=False
    )
    rep.bind_sources(ours_source)
    steps = {"convert_rgb": 0, "bytes_copy": 0, "frames": 0, "executor": 0, "capture_rgb": 0}

    def no_resize(frame: OutputImageRawFrame) -> OutputImageRawFrame:
        return frame  # MediaSender._draw_image.resize_frame when size == video_out size

    async def pipecat_hop(decoded: rtc.VideoFrame) -> None:
        t0 = time.process_time_ns()
        rgb = decoded.convert(rtc.VideoBufferType.RGB24)  # HeyGenClient._process_video_frames
        t1 = time.process_time_ns()
        image = ImageRawFrame(image=bytes(rgb.data), size=(W, H), format="RGB")
        t2 = time.process_time_ns()
        frame = OutputImageRawFrame(image=image.image, size=image.size, format=image.format)
        t3 = time.process_time_ns()
        frame = await loop.run_in_executor(executor, no_resize, frame)
        t4 = time.process_time_ns()
        lk = pipecat_livekit_video_frame(frame)
        pipecat_source.capture_frame(lk)  # LiveKitTransportClient.publish_video
        t5 = time.process_time_ns()
        steps["convert_rgb"] += t1 - t0
        steps["bytes_copy"] += t2 - t1
        steps["frames"] += t3 - t2
        steps["executor"] += t4 - t3
        steps["capture_rgb"] += t5 - t4

    async def ours_hop(decoded: rtc.VideoFrame) -> None:
        rep.offer_video(I420AvatarFrame.wrap(decoded))

    def sdk_delivery(decoded: rtc.VideoFrame) -> None:
        # what VideoFrame._from_owned_info does with each decoded picture (both paths)
        bytearray(decoded.data)

    async def block(fn: Any, n: int, k0: int) -> tuple[int, int]:
        f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        t0 = time.process_time_ns()
        for k in range(n):
            r = fn(pool[(k0 + k) % len(pool)])
            if r is not None:
                await r
        t1 = time.process_time_ns()
        return t1 - t0, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0

    # warm-up (allocator, caches, executor thread)
    await block(pipecat_hop, 60, 0)
    await block(ours_hop, 60, 0)
    await block(sdk_delivery, 60, 0)
    for key in steps:
        steps[key] = 0

    totals = {"pipecat": [0, 0], "ours": [0, 0], "sdk_delivery": [0, 0]}
    done = 0
    while done < frames:
        n = min(BLOCK, frames - done)
        for name, fn in (("pipecat", pipecat_hop), ("ours", ours_hop),
                         ("sdk_delivery", sdk_delivery)):
            cpu, faults = await block(fn, n, done)
            totals[name][0] += cpu
            totals[name][1] += faults
        done += n
    executor.shutdown()
    assert rep.stats.frames_published >= frames, rep.stats  # every frame really captured

    def per_frame(name: str) -> dict[str, float]:
        cpu, faults = totals[name]
        return {"ms": cpu / frames / 1e6, "minflt": faults / frames}

    return {
        "config": config,
        "frames": frames,
        "pipecat": per_frame("pipecat"),
        "ours": per_frame("ours"),
        "sdk_delivery": per_frame("sdk_delivery"),
        "pipecat_steps_ms": {k: v / frames / 1e6 for k, v in steps.items()},
    }


def _child(frames: int, config: str) -> None:
    print(json.dumps(asyncio.run(_measure(frames, config))))


# ------------------------------------------------------------------------------ live part
LIVE_PATHS = ("decode_only", "pipecat", "ours")
LIVE_MALLOC = ("default", "mallopt")


@contextlib.asynccontextmanager
async def livekit_server() -> AsyncIterator[Any]:
    """A throwaway livekit-server on free loopback ports; yields its Settings."""
    import tempfile

    from broadcaster import livekit_server as lks
    from broadcaster.config import Settings
    from broadcaster.netutil import free_port

    state = Path(tempfile.mkdtemp(prefix="bench-lk-"))
    s = Settings.load(
        env={}, state_dir=str(state), livekit_port=free_port(),
        livekit_rtc_tcp_port=free_port(), livekit_rtc_udp_port=free_port(),
    )
    async with lks.running(s, state / "livekit.log") as ready:
        yield ready


async def _live_publish(url: str, token: str, seconds: float) -> None:
    """Publish a moving 720p25 I420 picture, VP8 1.7 Mbps, one layer."""
    import numpy as np
    from livekit import rtc

    from broadcaster.bot.republisher import RepublishEncoding

    room = rtc.Room()
    await room.connect(url, token)
    source = rtc.VideoSource(W, H)
    track = rtc.LocalVideoTrack.create_video_track("avatar", source)
    options = RepublishEncoding(W, H, 25, simulcast=False).video_options()
    await room.local_participant.publish_track(track, options)
    yuv = np.full(W * H * 3 // 2, 128, np.uint8)
    y = yuv[: W * H].reshape(H, W)
    ramp = (np.arange(W) // 5 % 256).astype(np.uint8)
    t0 = time.monotonic()
    i = 0
    while time.monotonic() - t0 < seconds:
        y[:] = ramp
        x = (i * 8) % (W - 40)
        y[:, x : x + 40] = 250
        source.capture_frame(rtc.VideoFrame(W, H, rtc.VideoBufferType.I420, bytearray(yuv.data)))
        i += 1
        await asyncio.sleep(max(0.0, t0 + i / 25 - time.monotonic()))
    await room.local_participant.unpublish_track(track.sid)
    await room.disconnect()
    await source.aclose()


async def _live_receive(url: str, token: str, path: str, malloc: str, seconds: float
                        ) -> dict[str, Any]:
    """Subscribe, run ``path`` on every decoded frame; CPU and minor faults per frame.

    One process per path: glibc's dynamic mmap threshold depends on the whole
    allocation history, so paths sharing a process would change each other's faults.
    """
    from livekit import rtc
    from pipecat.frames.frames import ImageRawFrame, OutputImageRawFrame

    from broadcaster.bot.republisher import LiveKitRepublisher, RepublishEncoding, tune_malloc
    from broadcaster.frames import I420AvatarFrame
    from broadcaster.sdk_internals import pipecat_livekit_video_frame

    if malloc == "mallopt":
        tune_malloc()
    room = rtc.Room()
    subscribed: asyncio.Future[rtc.Track] = asyncio.get_running_loop().create_future()
    room.on("track_subscribed",
            lambda t, *_: subscribed.done() or subscribed.set_result(t))
    await room.connect(url, token)
    track = await asyncio.wait_for(subscribed, 20)
    sink = rtc.VideoSource(W, H)
    rep = LiveKitRepublisher(room=lambda: None, encoding=RepublishEncoding(W, H, 25),
                             malloc_tuning=False)
    rep.bind_sources(rtc.VideoSource(W, H))

    def pipecat(decoded: rtc.VideoFrame, _ts: int) -> None:
        rgb = decoded.convert(rtc.VideoBufferType.RGB24)
        image = ImageRawFrame(image=bytes(rgb.data), size=(W, H), format="RGB")
        frame = OutputImageRawFrame(image=image.image, size=image.size, format="RGB")
        lk = pipecat_livekit_video_frame(frame)
        sink.capture_frame(lk)

    def ours(decoded: rtc.VideoFrame, ts: int) -> None:
        rep.offer_video(I420AvatarFrame.wrap(decoded, ts))

    hop = {"decode_only": lambda *_: None, "pipecat": pipecat, "ours": ours}[path]
    marks: list[tuple[float, int, int]] = []
    count = 0

    def mark() -> tuple[float, int, int]:
        return time.process_time(), resource.getrusage(resource.RUSAGE_SELF).ru_minflt, count

    stream = rtc.VideoStream(track)

    async def consume() -> None:
        nonlocal count
        async for event in stream:
            hop(event.frame, event.timestamp_us)
            count += 1
            if count == 50:  # two seconds of warm-up
                marks.append(mark())

    task = asyncio.create_task(consume())
    await asyncio.sleep(seconds)
    end = mark()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await stream.aclose()
    await room.disconnect()
    for source in (sink, rep.video_source):
        if source is not None:
            await source.aclose()
    if not marks:
        raise RuntimeError(f"only {count} frames received")
    (c0, f0, n0), (c1, f1, n1) = marks[0], end
    n = n1 - n0
    return {"frames": n, "cpu_ms": (c1 - c0) / n * 1e3, "minflt": (f1 - f0) / n}


async def _live(seconds: float) -> dict[str, Any]:
    from broadcaster.roles import Role, mint_token

    runs: dict[str, dict[str, Any]] = {}
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    env["LOGURU_LEVEL"] = "WARNING"
    async with livekit_server() as s:
        for malloc in LIVE_MALLOC:
            for path in LIVE_PATHS:
                room = f"hop-{malloc}-{path}".replace("_", "-")
                pub = await asyncio.create_subprocess_exec(
                    sys.executable, __file__, "--live-publish", s.effective_livekit_url,
                    mint_token(s, Role.BOT, room, "avatar"), str(seconds + 4), env=env,
                    cwd=ROOT,
                )
                recv = await asyncio.create_subprocess_exec(
                    sys.executable, __file__, "--live-receive", s.effective_livekit_url,
                    mint_token(s, Role.BOT, room, "bot"), path, malloc, str(seconds), env=env,
                    cwd=ROOT, stdout=asyncio.subprocess.PIPE,
                )
                out, _ = await recv.communicate()
                await pub.wait()
                runs[f"{malloc}/{path}"] = json.loads(out.decode().strip().splitlines()[-1])
    summary: dict[str, Any] = {}
    for malloc in LIVE_MALLOC:
        base = runs[f"{malloc}/decode_only"]
        for path in ("pipecat", "ours"):
            r = runs[f"{malloc}/{path}"]
            summary[f"{malloc}/{path}"] = {
                "hop_cpu_ms": r["cpu_ms"] - base["cpu_ms"],
                "hop_minflt": r["minflt"] - base["minflt"],
            }
    return {"seconds": seconds, "runs": runs, "hop_over_decode_only": summary}


# ------------------------------------------------------------------------------ parent
def _run_child(frames: int, config: str) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    if config == "env":
        env.update(MALLOC_ENV)
    env["LOGURU_LEVEL"] = "WARNING"
    out = subprocess.run(
        [sys.executable, __file__, "--child", config, "--frames", str(frames)],
        env=env, cwd=ROOT, capture_output=True, text=True, check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def _plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    live = (result.get("live") or {}).get("runs")
    fig, axes = plt.subplots(1, 2 if live else 1, figsize=(13 if live else 8, 4.8))
    ax = axes[0] if live else axes
    configs = [c for c in CONFIGS if c in result["configs"]]
    xs = list(range(len(configs)))
    width = 0.38
    pipecat = [result["configs"][c]["pipecat"]["ms"] for c in configs]
    ours = [result["configs"][c]["ours"]["ms"] for c in configs]
    b1 = ax.bar([x - width / 2 for x in xs], pipecat, width, label="pipecat 1.14 RGB path",
                color="#c0504d")
    b2 = ax.bar([x + width / 2 for x in xs], ours, width, label="ours: I420 frame -> capture",
                color="#4f81bd")
    ax.bar_label(b1, fmt="%.3f")
    ax.bar_label(b2, fmt="%.3f")
    ax.axhline(TARGET_MS, color="k", ls="--", lw=1, label=f"target {TARGET_MS} ms")
    ax.set_xticks(xs, [f"malloc: {c}" for c in configs])
    ax.set_ylabel("CPU ms per 1280x720 frame")
    ax.set_title(f"Hop in a loop, {result['frames']} frames/path: "
                 f"{result['ratio']:.1f}x less CPU")
    ax.set_ylim(0, max(pipecat) * 1.35)
    ax.legend(loc="upper center", fontsize=8, ncols=3)
    if live:
        ax2 = axes[1]
        names = [f"{m}/{p}" for m in LIVE_MALLOC for p in LIVE_PATHS]
        cpu = [live[n]["cpu_ms"] for n in names]
        faults = [live[n]["minflt"] for n in names]
        colors = ["#999999", "#c0504d", "#4f81bd"] * len(LIVE_MALLOC)
        bars = ax2.bar(range(len(names)), cpu, color=colors)
        ax2.set_ylim(0, max(cpu) * 1.2)
        ax2.bar_label(bars, labels=[f"{c:.2f} ms\n{f:.0f} pf" for c, f in zip(cpu, faults,
                                                                           strict=True)],
                      fontsize=8)
        ax2.set_xticks(range(len(names)), [n.replace("/", "\n") for n in names], fontsize=8)
        ax2.set_ylabel("process CPU ms per received frame (VP8 decode included)")
        ax2.set_title("Live receiver: decode + hop, and minor page faults (pf) per frame")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def run(quick: bool = False, frames: int | None = None, live: bool = True) -> dict[str, Any]:
    """Measure all configurations; write JSON + PNG; return the result."""
    n = frames or (200 if quick else 600)
    configs = {c: _run_child(n, c) for c in CONFIGS}
    live_result: dict[str, Any] | None = None
    if live:
        from broadcaster.livekit_server import MissingBinary

        try:
            live_result = asyncio.run(_live(6.0 if quick else 12.0))
        except MissingBinary as e:
            live_result = {"skipped": str(e)}
    head = configs["mallopt"]
    result = {
        "bench": "republish_hop",
        "what": "CPU ms per 1280x720 frame, decoded I420 rtc.VideoFrame -> LiveKit capture",
        "frames": n,
        "target_ms": TARGET_MS,
        "pipecat_ms": head["pipecat"]["ms"],
        "ours_ms": head["ours"]["ms"],
        "ratio": head["pipecat"]["ms"] / head["ours"]["ms"],
        "pass": head["ours"]["ms"] <= TARGET_MS,
        "configs": configs,
        "live": live_result,
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                    "platform": platform.platform()},
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    result.update(provenance())
    (RESULTS / "republish_hop.json").write_text(json.dumps(result, indent=2) + "\n")
    _plot(result, RESULTS / "republish_hop.png")
    return result


def _exit_now() -> None:
    """End a helper child without interpreter teardown: the LiveKit SDK's native threads
    can still call into Python then, which occasionally aborts with a Rust panic
    ("panic in a function that cannot unwind") after the work is done."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--frames", type=int, default=None)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--no-live", action="store_true", help="skip the live (livekit) part")
    ap.add_argument("--child", choices=CONFIGS, help=argparse.SUPPRESS)
    ap.add_argument("--live-publish", nargs=3, help=argparse.SUPPRESS)
    ap.add_argument("--live-receive", nargs=5, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        _child(args.frames or 600, args.child)
        return
    if args.live_publish:
        url, token, seconds = args.live_publish
        asyncio.run(_live_publish(url, token, float(seconds)))
        _exit_now()
    if args.live_receive:
        url, token, path, malloc, seconds = args.live_receive
        print(json.dumps(asyncio.run(_live_receive(url, token, path, malloc, float(seconds)))))
        _exit_now()
    r = run(quick=args.quick, frames=args.frames, live=not args.no_live)
    for name, c in r["configs"].items():
        print(f"malloc {name:8s} pipecat {c['pipecat']['ms']:.3f} ms "
              f"({c['pipecat']['minflt']:.0f} faults)  ours {c['ours']['ms']:.3f} ms "
              f"({c['ours']['minflt']:.1f} faults)  sdk copy {c['sdk_delivery']['ms']:.3f} ms "
              f"({c['sdk_delivery']['minflt']:.0f} faults)")
    live = r.get("live") or {}
    for name, run_ in live.get("runs", {}).items():
        print(f"live {name:20s} {run_['cpu_ms']:.2f} ms CPU/frame, "
              f"{run_['minflt']:.1f} page faults/frame ({run_['frames']} frames)")
    if "skipped" in live:
        print(f"live part skipped: {live['skipped']}")
    print(f"ours {r['ours_ms']:.3f} ms/frame vs pipecat {r['pipecat_ms']:.3f}: "
          f"{r['ratio']:.1f}x less; target <= {TARGET_MS} ms: {'PASS' if r['pass'] else 'FAIL'}")


if __name__ == "__main__":
    main()
