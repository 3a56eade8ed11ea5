"""Whole-process CPU of publishing avatar video+audio through LiveKitRepublisher,
against a bare encode of the same frames.

Baseline (``bare``): the same 720p25 I420 frames and 48 kHz speech audio captured
straight into a plain ``rtc.VideoSource`` / ``rtc.AudioSource`` published with the
same encoding, no pipeline, no republisher logic. ``pipeline_bare``: the same, but
the frames travel through a pipecat pipeline into a minimal processor that captures
each one as it comes (pipecat's own per-frame cost, without republisher logic).
``republisher``: the frames are pushed into the pipeline as ``I420AvatarFrame`` /
``SpeechOutputAudioRawFrame`` by a processor right before ``LiveKitRepublisher``,
exactly as ``FastHeyGenVideoService`` pushes them from its client's tasks. For
context, ``pipecat`` runs pipecat 1.14's own route for the same frames: the HeyGen
client's RGB conversion + copy, then ``LiveKitTransport.output()`` (simulcast only,
its SDK default).

Each run is a child process publishing into a real livekit-server (started here on
free ports) while this process subscribes, so the encoder really runs; the child
reports ``time.process_time()`` over a fixed window after a warm-up. All modes of
a group run at the same time, each in its own child and room, so machine noise hits
them alike (single layer: all three together; simulcast: in pairs, since four
simulcast publishers at once starve loopback bandwidth estimation), for 3 rounds.
Runs whose stream collapsed anyway (the viewer got < 85% of the typical frame
count) are left out and counted.
Frames are the project's own avatar renderer output (a talking head with moving
mouth), so the encoder sees realistic content.

Run: ``.venv/bin/python bench/republish_cpu.py [--seconds 10] [--quick]``. Writes
``bench/results/republish_cpu.json`` and ``bench/results/republish_cpu.png``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.provenance import provenance  # noqa: E402
from bench.republish_hop import _exit_now, livekit_server  # noqa: E402

RESULTS = ROOT / "bench" / "results"
W, H, FPS = 1280, 720, 25
AUDIO_RATE = 48_000
TARGET_RATIO = 1.1
WARMUP = 3.0
POOL = 50


# ------------------------------------------------------------------------------ child
def _frames() -> list[bytes]:
    """POOL distinct I420 pictures of the avatar talking (2 s of mouth motion)."""
    import numpy as np

    try:
        from broadcaster.avatar.renderer import FaceRenderer

        r = FaceRenderer(W, H)
        return [
            r.render(i / FPS, 0.5 + 0.5 * np.sin(i / 2.0), "speaking", copy=True).tobytes()
            for i in range(POOL)
        ]
    except Exception:  # renderer unavailable: a moving bar on a ramp
        y = np.tile((np.arange(W) // 5 % 256).astype(np.uint8), (H, 1))
        out = []
        for i in range(POOL):
            frame = np.full(W * H * 3 // 2, 128, np.uint8)
            yy = frame[: W * H].reshape(H, W)
            yy[:] = y
            yy[:, (i * 20) % (W - 60) : (i * 20) % (W - 60) + 60] = 240
            out.append(frame.tobytes())
        return out


def _speech(seconds: float) -> bytes:
    """Speech-like audio: a vowel-ish harmonic tone, on 300 ms, off 200 ms."""
    import numpy as np

    t = np.arange(int(seconds * AUDIO_RATE)) / AUDIO_RATE
    x = sum(np.sin(2 * np.pi * f * t) / k for k, f in enumerate((140, 280, 700, 1200), 1))
    gate = ((t % 0.5) < 0.3).astype(np.float64)
    return (3000 * x * gate).astype(np.int16).tobytes()


def _bare_sink_class() -> type:
    from livekit import rtc
    from pipecat.frames.frames import Frame, SpeechOutputAudioRawFrame, StartFrame
    from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

    from broadcaster.bot.republisher import audio_options
    from broadcaster.frames import I420AvatarFrame

    class BareSink(FrameProcessor):
        """The least a pipeline element can do: capture each frame as it comes."""

        def __init__(self, url: str, token: str, encoding: Any) -> None:
            super().__init__()
            self._url, self._token, self._enc = url, token, encoding

        async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
            await super().process_frame(frame, direction)
            if isinstance(frame, StartFrame):
                self.room = rtc.Room()
                await self.room.connect(self._url, self._token)
                self.video = rtc.VideoSource(W, H)
                self.audio = rtc.AudioSource(AUDIO_RATE, 1, queue_size_ms=500)
                lp = self.room.local_participant
                await lp.publish_track(rtc.LocalVideoTrack.create_video_track("v", self.video),
                                       self._enc.video_options())
                await lp.publish_track(rtc.LocalAudioTrack.create_audio_track("a", self.audio),
                                       audio_options())
            if isinstance(frame, I420AvatarFrame):
                self.video.capture_frame(frame.video_frame)
            elif isinstance(frame, SpeechOutputAudioRawFrame):
                await self.audio.capture_frame(
                    rtc.AudioFrame(frame.audio, AUDIO_RATE, 1, len(frame.audio) // 2))
            else:
                await self.push_frame(frame, direction)

    return BareSink


def _feeder_class() -> type:
    from pipecat.frames.frames import Frame, StartFrame
    from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

    class Feeder(FrameProcessor):
        """Pushes frames from outside the pipeline's tasks, as HeyGenVideoService does
        from its client's receive tasks: one hop to the processor under test."""

        started = False

        async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
            await super().process_frame(frame, direction)
            await self.push_frame(frame, direction)
            if isinstance(frame, StartFrame):
                self.started = True

        async def emit(self, frame: Frame) -> None:
            await self.push_frame(frame)

    return Feeder


def _BareSink(url: str, token: str, encoding: Any) -> Any:  # noqa: N802
    return _bare_sink_class()(url, token, encoding)


async def _publish(mode: str, simulcast: bool, url: str, token: str, seconds: float
                   ) -> dict[str, Any]:
    from livekit import rtc
    from pipecat.frames.frames import (
        ImageRawFrame,
        OutputImageRawFrame,
        OutputTransportReadyFrame,
        SpeechOutputAudioRawFrame,
    )
    from pipecat.pipeline.pipeline import Pipeline
    from pipecat.pipeline.worker import PipelineWorker
    from pipecat.workers.runner import WorkerRunner

    from broadcaster.bot.republisher import (
        LiveKitRepublisher,
        RepublishEncoding,
        audio_options,
        tune_malloc,
    )
    from broadcaster.frames import I420AvatarFrame

    tune_malloc()  # both modes: the comparison is republisher logic, not malloc
    encoding = RepublishEncoding(W, H, FPS, "VP8", 1_700_000, simulcast=simulcast)
    pool = [bytearray(f) for f in _frames()]
    speech = _speech(2.0)
    chunk = AUDIO_RATE // 100 * 2  # 10 ms of int16 mono

    room: rtc.Room | None = None
    worker: PipelineWorker | None = None
    run_task: asyncio.Task | None = None
    video_source = audio_source = None
    rep: LiveKitRepublisher | None = None
    feeder: Any = None
    if mode == "bare":
        room = rtc.Room()
        await room.connect(url, token)
        video_source = rtc.VideoSource(W, H)
        audio_source = rtc.AudioSource(AUDIO_RATE, 1, queue_size_ms=500)
        lp = room.local_participant
        await lp.publish_track(rtc.LocalVideoTrack.create_video_track("v", video_source),
                               encoding.video_options())
        await lp.publish_track(rtc.LocalAudioTrack.create_audio_track("a", audio_source),
                               audio_options())
    else:
        if mode == "republisher":
            rep = LiveKitRepublisher(url=url, token=token, encoding=encoding)
            processor: Any = rep
        elif mode == "pipeline_bare":
            processor = _BareSink(url, token, encoding)
        else:  # pipecat's own LiveKit output
            from pipecat.transports.livekit.transport import LiveKitParams, LiveKitTransport

            transport = LiveKitTransport(url, token, "bench", params=LiveKitParams(
                audio_out_enabled=True, audio_out_sample_rate=AUDIO_RATE,
                video_out_enabled=True, video_out_is_live=True, video_out_width=W,
                video_out_height=H, video_out_framerate=FPS, video_out_codec="VP8",
                video_out_max_bitrate=1_700_000,
            ))
            processor = transport.output()
        feeder = _feeder_class()()
        worker = PipelineWorker(Pipeline([feeder, processor]), idle_timeout_secs=None,
                                enable_rtvi=False)
        runner = WorkerRunner(handle_sigint=False)
        run_task = asyncio.create_task(runner.run(worker))
        await worker.queue_frame(OutputTransportReadyFrame())  # harmless when unused
        while not feeder.started:
            await asyncio.sleep(0.01)

    async def video(k: int) -> None:
        decoded = rtc.VideoFrame(W, H, rtc.VideoBufferType.I420, pool[k % POOL])
        if mode == "bare":
            assert video_source is not None
            video_source.capture_frame(decoded)
        elif mode in ("republisher", "pipeline_bare"):
            await feeder.emit(I420AvatarFrame.wrap(decoded))
        else:  # what pipecat's HeyGen client + service do, then its output transport
            rgb = decoded.convert(rtc.VideoBufferType.RGB24)
            img = ImageRawFrame(image=bytes(rgb.data), size=(W, H), format="RGB")
            await feeder.emit(
                OutputImageRawFrame(image=img.image, size=img.size, format=img.format)
            )

    async def audio(k: int) -> None:
        pcm = speech[(k * chunk) % len(speech):][:chunk]
        if mode == "bare":
            assert audio_source is not None
            await audio_source.capture_frame(rtc.AudioFrame(pcm, AUDIO_RATE, 1, chunk // 2))
        else:
            await feeder.emit(
                SpeechOutputAudioRawFrame(audio=pcm, sample_rate=AUDIO_RATE, num_channels=1)
            )

    events = sorted([(i / FPS, 0, i) for i in range(int((seconds + WARMUP + 1) * FPS))]
                    + [(j / 100, 1, j) for j in range(int((seconds + WARMUP + 1) * 100))])
    await asyncio.sleep(1.0)  # let the subscriber attach
    t0 = time.monotonic()
    cpu0: float | None = None
    for t, kind, k in events:
        delay = t0 + t - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        if cpu0 is None and t >= WARMUP:
            cpu0, w0, published0 = time.process_time(), time.monotonic(), (
                rep.stats.frames_published if rep else 0)
        if cpu0 is not None and t >= WARMUP + seconds:
            break
        await (video(k) if kind == 0 else audio(k))
    cpu1, w1 = time.process_time(), time.monotonic()
    published = (rep.stats.frames_published - published0) if rep else None

    if worker is not None and run_task is not None:
        await worker.cancel()
        await asyncio.wait_for(run_task, 20)
    if room is not None:
        await room.disconnect()
    assert cpu0 is not None
    return {
        "mode": mode, "simulcast": simulcast, "wall_s": w1 - w0,
        "cpu_s": cpu1 - cpu0, "cpu_pct": 100 * (cpu1 - cpu0) / (w1 - w0),
        "cpu_ms_per_frame": 1000 * (cpu1 - cpu0) / ((w1 - w0) * FPS),
        "republisher_frames_published": published,
        "republisher_stats": rep.stats.__dict__ if rep else None,
    }


# ------------------------------------------------------------------------------ parent
async def _one(s: Any, mode: str, simulcast: bool, seconds: float, n: int) -> dict[str, Any]:
    from livekit import rtc

    from broadcaster.roles import Role, mint_token

    room = f"cpu-{mode.replace('_', '-')}-{'sim' if simulcast else 'one'}-{n}"
    viewer = rtc.Room()
    received: list[tuple[int, int]] = []
    tasks: list[asyncio.Task] = []

    async def read(track: rtc.Track) -> None:
        async for ev in rtc.VideoStream(track):
            received.append((ev.frame.width, ev.frame.height))

    def on_track(track: rtc.Track, *_: Any) -> None:
        if track.kind == rtc.TrackKind.KIND_VIDEO:
            tasks.append(asyncio.create_task(read(track)))

    viewer.on("track_subscribed", on_track)
    await viewer.connect(s.effective_livekit_url, mint_token(s, Role.VIEWER, room, "viewer"))
    env = {**os.environ, "LOGURU_LEVEL": "WARNING"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--child", mode, "1" if simulcast else "0",
        s.effective_livekit_url, mint_token(s, Role.BOT, room, "avatar-bot"), str(seconds),
        env=env, cwd=ROOT, stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await proc.communicate()
    for t in tasks:
        t.cancel()
    await viewer.disconnect()
    if proc.returncode != 0 and not out.strip():
        raise RuntimeError(f"{mode} child failed ({proc.returncode})")
    result = json.loads(out.decode().strip().splitlines()[-1])
    result["viewer_frames"] = len(received)
    result["viewer_sizes"] = sorted({f"{w}x{h}" for w, h in received})
    return result


GROUPS = {  # modes that run at the same time; simulcast in pairs, or loopback BWE collapses
    False: (("bare", "pipeline_bare", "republisher"),),
    True: (("bare", "republisher"), ("pipeline_bare", "pipecat")),
}


async def _all(seconds: float, rounds: int, with_pipecat: bool, progress: Any) -> list[dict]:
    """Modes of a group run AT THE SAME TIME (one child each), so a noisy machine slows
    them alike; rounds repeat that."""
    runs = []
    async with livekit_server() as s:
        n = 0
        for simulcast, groups in GROUPS.items():
            for _ in range(rounds):
                for group in groups:
                    modes = [m for m in group if with_pipecat or m != "pipecat"]
                    runs += await asyncio.gather(
                        *(_one(s, m, simulcast, seconds, n + k) for k, m in enumerate(modes))
                    )
                    n += len(modes)
                    progress()
    return runs


def _valid(runs: list[dict]) -> list[dict]:
    """Drop runs whose stream collapsed (the viewer got < 85% of the typical frame count:
    the publisher's bandwidth estimate fell and the encoder shed layers, so its CPU
    is not comparable)."""
    out = []
    for sim in (False, True):
        sel = [r for r in runs if r["simulcast"] == sim]
        if not sel:
            continue
        typical = sorted(r["viewer_frames"] for r in sel)[len(sel) // 2]
        out += [r for r in sel if r["viewer_frames"] >= 0.85 * typical]
    return out


def _plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8.5, 4.8))
    labels, values, colors = [], [], []
    palette = {"bare": "#999999", "pipeline_bare": "#cccccc", "republisher": "#4f81bd",
               "pipecat": "#c0504d"}
    for enc in ("single", "simulcast"):
        e = result["encodings"].get(enc)
        if not e:
            continue
        for mode in ("bare", "pipeline_bare", "republisher", "pipecat"):
            if mode in e:
                labels.append(f"{enc}\n{mode}")
                values.append(e[mode]["cpu_ms_per_frame"])
                colors.append(palette[mode])
    bars = ax.bar(range(len(values)), values, color=colors)
    ax.bar_label(bars, fmt="%.2f")
    ax.set_xticks(range(len(values)), labels, fontsize=9)
    ax.set_ylabel("process CPU ms per published 720p frame (25 fps)")
    ratios = "; ".join(
        f"{enc}: {e['ratio']:.3f}x bare, {e['ratio_vs_pipeline_bare']:.3f}x pipeline_bare"
        for enc, e in result["encodings"].items()
    )
    ax.set_title(f"Republisher CPU (target <= {TARGET_RATIO}x bare)\n{ratios}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def run(quick: bool = False, seconds: float | None = None, with_pipecat: bool = True
        ) -> dict[str, Any]:
    """Measure; write JSON + PNG; return the result."""
    secs = seconds or (5.0 if quick else 10.0)
    rounds = 1 if quick else 3
    total = rounds * sum(len(g) for g in GROUPS.values())
    try:
        from tqdm import tqdm

        bar = tqdm(total=total, desc="republish_cpu", unit="round")
        progress = lambda: bar.update(1)  # noqa: E731
    except ImportError:
        bar, progress = None, lambda: None
    runs = asyncio.run(_all(secs, rounds, with_pipecat, progress))
    if bar is not None:
        bar.close()
    valid = _valid(runs)
    encodings: dict[str, Any] = {}
    for enc, sim in (("single", False), ("simulcast", True)):
        e: dict[str, Any] = {}
        for mode in ("bare", "pipeline_bare", "republisher", "pipecat"):
            sel = [r for r in valid if r["mode"] == mode and r["simulcast"] == sim]
            if sel:
                e[mode] = {
                    "cpu_ms_per_frame": sum(r["cpu_ms_per_frame"] for r in sel) / len(sel),
                    "cpu_pct": sum(r["cpu_pct"] for r in sel) / len(sel),
                    "runs": len(sel),
                }
        rep_ms = e["republisher"]["cpu_ms_per_frame"]
        e["ratio"] = rep_ms / e["bare"]["cpu_ms_per_frame"]
        e["ratio_vs_pipeline_bare"] = rep_ms / e["pipeline_bare"]["cpu_ms_per_frame"]
        e["pass"] = e["ratio"] <= TARGET_RATIO
        encodings[enc] = e
    result = {
        "bench": "republish_cpu",
        "what": "whole-process CPU publishing 720p25 VP8 1.7 Mbps + 48 kHz audio, "
                "subscriber attached",
        "seconds_per_run": secs,
        "target_ratio": TARGET_RATIO,
        "ratio": encodings["single"]["ratio"],
        "ratio_simulcast": encodings["simulcast"]["ratio"],
        "ratio_vs_pipeline_bare": encodings["single"]["ratio_vs_pipeline_bare"],
        "pass": encodings["single"]["pass"],
        "notes": "ratio: republisher vs bare capture outside any pipeline (the target's "
                 "definition); ratio_vs_pipeline_bare: vs a minimal pipecat processor that "
                 "captures each frame into plain sources, i.e. the republisher's own logic "
                 "with pipecat's per-frame cost (~125 frames/s) common to both. Default "
                 "encoding: single layer.",
        "encodings": encodings,
        "runs": runs,
        "runs_discarded": len(runs) - len(valid),
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                    "platform": platform.platform()},
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    result.update(provenance())
    (RESULTS / "republish_cpu.json").write_text(json.dumps(result, indent=2) + "\n")
    _plot(result, RESULTS / "republish_cpu.png")
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=None)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--no-pipecat", action="store_true", help="skip the pipecat-output run")
    ap.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        mode, sim, url, token, seconds = args.child
        print(json.dumps(asyncio.run(_publish(mode, sim == "1", url, token, float(seconds)))))
        _exit_now()
    r = run(quick=args.quick, seconds=args.seconds, with_pipecat=not args.no_pipecat)
    for enc, e in r["encodings"].items():
        parts = [f"{m} {e[m]['cpu_ms_per_frame']:.2f} ms/frame ({e[m]['cpu_pct']:.0f}% core)"
                 for m in ("bare", "pipeline_bare", "republisher", "pipecat") if m in e]
        print(f"{enc:9s} " + ", ".join(parts) + f"; ratio {e['ratio']:.3f} vs bare "
              f"(target <= {TARGET_RATIO}: {'PASS' if e['pass'] else 'FAIL'}), "
              f"{e['ratio_vs_pipeline_bare']:.3f} vs pipeline_bare")


if __name__ == "__main__":
    main()
