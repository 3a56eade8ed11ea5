"""Shared bench harness: servers on free ports, media clients, statistics and plots.

Servers start the way tests/conftest.py starts them (``broadcaster.livekit_server``
config and command, free loopback ports, a throwaway state directory), or as the
whole ``broadcaster up`` stack in a child process.

Child roles (run as ``python -m bench.harness ROLE ...``) keep the measured parts in
their own processes, as in production:

- ``source``: a 720p25 avatar-like publisher (the local avatar's own renderer, one
  VP8 layer, like the avatar service) that stamps every frame with LiveKit frame
  metadata: ``frame_id`` = its sequence number, ``user_timestamp`` = wall-clock µs
  at capture;
- ``relay``: the bot's video path: subscribes to the source, wraps each decoded frame
  as an ``I420AvatarFrame`` and sends it through a pipecat pipeline into
  ``LiveKitRepublisher``, which publishes into a second room. It records, per frame,
  the republisher's entry stamp and the source's stamp, so a viewer can tie each
  republished frame back to the source frame it carries.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import wave
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from broadcaster.config import Settings  # noqa: E402

RESULTS = ROOT / "bench" / "results"
W, H, FPS = 1280, 720, 25
AUDIO_RATE = 48_000
CHUNK = AUDIO_RATE // 100  # 10 ms

# Keep glibc malloc from page-faulting on every video frame in every bench process.
os.environ.setdefault("MALLOC_MMAP_THRESHOLD_", "16777216")
os.environ.setdefault("MALLOC_TRIM_THRESHOLD_", "67108864")


# ------------------------------------------------------------------------ statistics
def summary(values: Iterable[float]) -> dict[str, float]:
    a = np.asarray(list(values), dtype=float)
    if a.size == 0:
        return {"n": 0}
    return {
        "n": int(a.size),
        "p50": float(np.percentile(a, 50)),
        "p95": float(np.percentile(a, 95)),
        "mean": float(a.mean()),
        "min": float(a.min()),
        "max": float(a.max()),
    }


def machine() -> dict[str, Any]:
    return {"python": platform.python_version(), "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "loadavg_1m": round(os.getloadavg()[0], 2)}  # others' load skews the figures


def now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def write_result(name: str, result: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(result, indent=2, default=_json_default) + "\n")
    return path


def _json_default(o: Any) -> Any:
    if isinstance(o, np.integer | np.floating):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON serialisable: {type(o)}")


def pyplot() -> Any:
    """matplotlib.pyplot on the Agg backend, or None when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed (pip install '.[bench]'): no plot", file=sys.stderr)
        return None
    return plt


def progress(total: float, desc: str) -> Any:
    """A tqdm bar (seconds or steps), or a no-op stand-in without tqdm."""
    try:
        from tqdm import tqdm

        return tqdm(total=total, desc=desc, leave=False, unit="step")
    except ImportError:
        class _Null:
            def update(self, n: float = 1) -> None: ...
            def close(self) -> None: ...
        return _Null()


async def tick_progress(bar: Any, seconds: float, loads: list[float] | None = None) -> None:
    """Advance ``bar`` by one per second for ``seconds``, then close it; append the
    1-minute load average each second to ``loads`` (other work on the machine)."""
    try:
        t0 = time.monotonic()
        done = 0
        while done < int(seconds):
            await asyncio.sleep(max(0.0, t0 + done + 1 - time.monotonic()))
            bar.update(1)
            if loads is not None:
                loads.append(os.getloadavg()[0])
            done += 1
    finally:
        bar.close()


# ------------------------------------------------------------------------ servers
def fresh_settings(**overrides: Any) -> Settings:
    """Settings on free loopback ports with a throwaway state directory."""
    from broadcaster.netutil import free_port

    state = Path(tempfile.mkdtemp(prefix="bench-"))
    return Settings.load(
        env={}, state_dir=str(state), livekit_port=free_port(),
        livekit_rtc_tcp_port=free_port(), livekit_rtc_udp_port=free_port(socket.SOCK_DGRAM),
        web_port=free_port(), avatar_port=free_port(), bot_metrics_port=free_port(),
        **overrides,
    )


@contextlib.asynccontextmanager
async def livekit_server(settings: Settings | None = None) -> AsyncIterator[Settings]:
    """A livekit-server on free loopback ports (as tests/conftest.py); yields Settings."""
    from broadcaster import livekit_server as lks

    s = settings or fresh_settings()
    async with lks.running(s, Path(s.state_dir) / "livekit.log") as ready:
        yield ready


async def stop_process(proc: subprocess.Popen | asyncio.subprocess.Process,
                       timeout: float = 15.0) -> None:
    """SIGTERM (SIGINT for `up`'s supervisor is handled by the caller), then SIGKILL."""
    if _returncode(proc) is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        proc.terminate()
    deadline = time.monotonic() + timeout
    while _returncode(proc) is None and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    if _returncode(proc) is None:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
    if isinstance(proc, asyncio.subprocess.Process):
        await proc.wait()
    else:
        proc.wait()


def _returncode(proc: Any) -> int | None:
    return proc.poll() if isinstance(proc, subprocess.Popen) else proc.returncode


def child(args: list[str], settings: Settings, log: Path) -> subprocess.Popen:
    """``python -m bench.harness <args>`` with the settings in its environment."""
    env = {**os.environ, **settings.child_env(), "PYTHONUNBUFFERED": "1"}
    fh = open(log, "wb")  # noqa: SIM115 - the child owns it; closed when it ends
    return subprocess.Popen([sys.executable, "-m", "bench.harness", *args], cwd=ROOT,
                            env=env, stdout=fh, stderr=subprocess.STDOUT)


# ------------------------------------------------------------------------ the `up` stack
@dataclass
class Stack:
    """``broadcaster up`` running in a child process; its output is kept in ``lines``."""

    settings: Settings
    proc: asyncio.subprocess.Process
    lines: list[tuple[float, str]] = field(default_factory=list)
    reader: asyncio.Task | None = None

    def grep(self, pattern: str, since: float = 0.0) -> list[str]:
        rx = re.compile(pattern)
        return [line for t, line in self.lines if t >= since and rx.search(line)]

    async def wait_line(self, pattern: str, timeout: float, since: float = 0.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.grep(pattern, since)
            if found:
                return found[0]
            if self.proc.returncode is not None:
                raise RuntimeError("broadcaster up exited:\n" + self.tail())
            await asyncio.sleep(0.1)
        raise TimeoutError(f"no line matching {pattern!r} in {timeout} s:\n{self.tail()}")

    def tail(self, n: int = 40) -> str:
        return "\n".join(line for _, line in self.lines[-n:])


@contextlib.asynccontextmanager
async def up_stack(start_bot: bool = True, **overrides: Any) -> AsyncIterator[Stack]:
    """The whole local stack (livekit-server, avatar service, web app, demo bot)."""
    s = fresh_settings(**overrides)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("BROADCASTER_", "LIVEKIT_", "HEYGEN_"))}
    env.update(s.child_env())
    env["PYTHONUNBUFFERED"] = "1"
    args = [sys.executable, "-m", "broadcaster", "up"] + ([] if start_bot else ["--no-bot"])
    proc = await asyncio.create_subprocess_exec(
        *args, cwd=ROOT, env=env, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT, start_new_session=True,
    )
    stack = Stack(s, proc)
    log = open(Path(s.state_dir) / "up.log", "w")  # noqa: SIM115 - closed below

    async def read() -> None:
        assert proc.stdout is not None
        while line := await proc.stdout.readline():
            text = line.decode(errors="replace").rstrip("\n")
            stack.lines.append((time.monotonic(), text))
            log.write(text + "\n")

    stack.reader = asyncio.create_task(read())
    try:
        await stack.wait_line(r"Ctrl-C stops everything", timeout=120)
        yield stack
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGINT)
            try:
                await asyncio.wait_for(proc.wait(), 40)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                await proc.wait()
        stack.reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await stack.reader
        log.close()


# ------------------------------------------------------------------------ speech
@lru_cache(maxsize=32)
def flite_speech(text: str, rate: int = AUDIO_RATE) -> np.ndarray:
    """``text`` spoken by Debian's flite (voice slt), int16 mono at ``rate``, with the
    leading and trailing silence trimmed (so the clip ends on the last word)."""
    import soxr

    flite = shutil.which("flite")
    if flite is None:
        raise RuntimeError("Debian's flite is not installed (apt-get install flite)")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "say.wav"
        subprocess.run([flite, "-voice", "slt", "-t", text, "-o", str(path)], check=True)
        with wave.open(str(path)) as w:
            src_rate = w.getframerate()
            pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    pcm = soxr.resample(pcm, src_rate, rate).astype(np.int16) if src_rate != rate else pcm
    loud = np.flatnonzero(np.abs(pcm.astype(np.int32)) > 500)
    return pcm[loud[0] : loud[-1] + 1].copy() if loud.size else pcm


def block_rms(pcm: np.ndarray) -> float:
    if pcm.size == 0:
        return 0.0
    x = pcm.astype(np.float32)
    return float(np.sqrt(np.dot(x, x) / x.size))


def level_db(rms: float) -> float:
    return 20 * math.log10(max(rms, 1e-3) / 32768.0)


# ------------------------------------------------------------------------ clients
@dataclass
class VideoRecord:
    recv_us: int
    frame_id: int
    user_ts: int
    width: int
    height: int
    mouth: float = math.nan


@dataclass
class AudioRecord:
    recv_us: int
    rms: float


@dataclass
class Receiver:
    """A LiveKit client that records every decoded video frame and every 10 ms of audio
    of one participant, with wall-clock receive times (µs)."""

    name: str
    room: Any = None
    video: list[VideoRecord] = field(default_factory=list)
    audio: list[AudioRecord] = field(default_factory=list)
    tasks: list[asyncio.Task] = field(default_factory=list)
    from_identity: str | None = None
    mouth_box: tuple[int, int, int, int] | None = None
    video_track: str | None = None
    first_video_us: int | None = None
    want_audio: bool = True

    async def join(self, url: str, token: str, *, connect_timeout: float = 20.0) -> None:
        from livekit import rtc

        self.room = rtc.Room()

        @self.room.on("track_subscribed")
        def _on_track(track: Any, pub: Any, part: Any) -> None:
            if self.from_identity and part.identity != self.from_identity:
                return
            if self.video_track and track.kind == rtc.TrackKind.KIND_VIDEO \
                    and pub.name != self.video_track:
                return
            if track.kind == rtc.TrackKind.KIND_VIDEO:
                self.tasks.append(asyncio.create_task(self._read_video(rtc.VideoStream(track))))
            elif self.want_audio:
                stream = rtc.AudioStream(track, sample_rate=AUDIO_RATE, num_channels=1)
                self.tasks.append(asyncio.create_task(self._read_audio(stream)))

        await asyncio.wait_for(self.room.connect(url, token), connect_timeout)

    async def _read_video(self, stream: Any) -> None:
        box = self.mouth_box
        async for ev in stream:
            recv = time.time_ns() // 1000
            f = ev.frame
            md = ev.metadata
            rec = VideoRecord(recv, md.frame_id if md is not None else 0,
                              md.user_timestamp if md is not None else 0, f.width, f.height)
            if box is not None:
                rec.mouth = mouth_openness(f, box)
            self.video.append(rec)
            if self.first_video_us is None:
                self.first_video_us = recv

    async def _read_audio(self, stream: Any) -> None:
        async for ev in stream:
            recv = time.time_ns() // 1000
            pcm = np.frombuffer(ev.frame.data, np.int16)
            self.audio.append(AudioRecord(recv, block_rms(pcm)))

    async def leave(self) -> None:
        for t in self.tasks:
            t.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        self.tasks.clear()
        if self.room is not None:
            with contextlib.suppress(Exception):
                await self.room.disconnect()


def mouth_openness(frame: Any, box: tuple[int, int, int, int], dark: int = 70) -> float:
    """Share of dark pixels in the mouth box of a decoded I420 frame (0: closed).

    ``box`` is in 1280x720 pixels and is scaled to the frame's size (a simulcast layer).
    """
    x, y, w, h = box
    sx, sy = frame.width / W, frame.height / H
    x0, y0 = int(x * sx), int(y * sy)
    x1, y1 = max(x0 + 1, int((x + w) * sx)), max(y0 + 1, int((y + h) * sy))
    plane = np.frombuffer(frame.data, np.uint8, count=frame.width * frame.height)
    region = plane.reshape(frame.height, frame.width)[y0:y1, x0:x1]
    return float((region < dark).mean())


# ------------------------------------------------------------------------ child: source
async def run_source(url: str, token: str, seconds: float, fps: int) -> None:
    """Publish the avatar renderer's frames (mouth moving) stamped with capture time."""
    from livekit import rtc

    from broadcaster.avatar.renderer import FaceRenderer
    from broadcaster.bot.republisher import RepublishEncoding

    room = rtc.Room()
    await room.connect(url, token)
    source = rtc.VideoSource(W, H)
    track = rtc.LocalVideoTrack.create_video_track("source-video", source)
    options = RepublishEncoding(W, H, fps, simulcast=False).video_options()
    await room.local_participant.publish_track(track, options)
    renderer = FaceRenderer(W, H, seed=1)
    meta = rtc.FrameMetadata()
    t0 = time.monotonic()
    i = 0
    print(f"source publishing {W}x{H}@{fps}", flush=True)
    while seconds <= 0 or time.monotonic() - t0 < seconds:
        t = i / fps
        mouth = 0.5 + 0.5 * math.sin(2 * math.pi * 3.1 * t)
        buf = renderer.render(t, mouth, "speaking")
        frame = rtc.VideoFrame(W, H, rtc.VideoBufferType.I420, bytearray(buf.data))
        i += 1
        meta.frame_id = i
        meta.user_timestamp = time.time_ns() // 1000
        source.capture_frame(frame, metadata=meta)
        await asyncio.sleep(max(0.0, t0 + i / fps - time.monotonic()))
    print(f"source sent {i} frames", flush=True)
    await room.disconnect()


# ------------------------------------------------------------------------ child: relay
async def run_relay(url: str, src_token: str, dst_token: str, seconds: float,
                    out: Path, simulcast: bool | None) -> None:
    """The bot's video path (decoded frame -> pipecat -> LiveKitRepublisher)."""
    from livekit import rtc
    from pipecat.pipeline.pipeline import Pipeline
    from pipecat.pipeline.worker import PipelineWorker
    from pipecat.workers.runner import WorkerRunner

    from broadcaster.bot.republisher import LiveKitRepublisher, RepublishEncoding
    from broadcaster.frames import I420AvatarFrame

    entries: list[tuple[int, int, int]] = []  # (republisher entry wall µs, src ts, src id)

    class StampRepublisher(LiveKitRepublisher):
        def offer_video(self, frame: Any) -> None:
            super().offer_video(frame)
            item = self.pacer.pending or self.pacer.last_real
            src = getattr(frame, "bench_src", None)
            if item is not None and src is not None and item.video is frame.video_frame:
                entries.append((item.entered_wall_us, src[0], src[1]))

    settings = Settings.load(generate_secrets=False)  # the bot's own encoding settings
    encoding = RepublishEncoding.from_settings(settings)  # exactly as the bot's pipeline
    if simulcast is not None:
        encoding = RepublishEncoding.from_settings(settings, simulcast=simulcast)
    rep = StampRepublisher(url=url, token=dst_token, encoding=encoding)
    worker = PipelineWorker(Pipeline([rep]), idle_timeout_secs=None, enable_rtvi=False)
    runner = WorkerRunner(handle_sigint=False)
    await runner.add_workers(worker)
    run = asyncio.create_task(runner.run())
    src_room = rtc.Room()
    got_track: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

    @src_room.on("track_subscribed")
    def _on_track(track: Any, *_: Any) -> None:
        if track.kind == rtc.TrackKind.KIND_VIDEO and not got_track.done():
            got_track.set_result(track)

    await src_room.connect(url, src_token)
    track = await asyncio.wait_for(got_track, 20)
    print("relay subscribed", flush=True)
    stream = rtc.VideoStream(track)
    t0 = time.monotonic()
    async for ev in stream:
        frame = I420AvatarFrame.wrap(ev.frame, ev.timestamp_us)
        md = ev.metadata
        if md is not None:
            frame.bench_src = (md.user_timestamp, md.frame_id)  # type: ignore[attr-defined]
        await worker.queue_frame(frame)
        if seconds > 0 and time.monotonic() - t0 > seconds:
            break
    from dataclasses import asdict

    out.write_text(json.dumps({"entries": entries, "stats": asdict(rep.stats),
                               "frame_ids": rep.last_frame_id, "encoding": asdict(encoding)}))
    print(f"relay done: {rep.stats}", flush=True)
    await worker.cancel()
    with contextlib.suppress(Exception):
        await asyncio.wait_for(run, 15)
    await src_room.disconnect()


# ------------------------------------------------------------------------ republish session
@dataclass
class RelayRun:
    """What the viewers of one source -> relay -> viewer session saw."""

    direct: Receiver
    republished: Receiver
    entries: dict[int, tuple[int, int]]  # entry wall µs -> (source ts µs, source id)
    relay_stats: dict[str, Any]
    encoding: dict[str, Any]
    seconds: float
    started_us: int
    ended_us: int
    loads: list[float] = field(default_factory=list)
    """1-minute load average, once per second of the measured window."""


async def relay_session(seconds: float, *, simulcast: bool | None = None,
                        on_progress: Callable[[Any], None] | None = None) -> RelayRun:
    """source (room A) -> relay/republisher (room B); one viewer in each room."""
    from broadcaster.roles import Role, mint_token

    async with livekit_server() as s:
        state = Path(s.state_dir)
        url = s.effective_livekit_url
        direct = Receiver("direct", from_identity="source", want_audio=False)
        rep = Receiver("republished", from_identity="relay", want_audio=False)
        await direct.join(url, mint_token(s, Role.VIEWER, "source", "viewer-direct"))
        await rep.join(url, mint_token(s, Role.VIEWER, "stage", "viewer-republished"))
        out = state / "relay.json"
        warm = 4.0
        relay = child(["relay", "--url", url,
                       "--src-token", mint_token(s, Role.BOT, "source", "relay"),
                       "--dst-token", mint_token(s, Role.BOT, "stage", "relay"),
                       "--seconds", str(seconds + warm + 4), "--out", str(out),
                       *([] if simulcast is None else ["--simulcast", str(simulcast)])],
                      s, state / "relay.log")
        await asyncio.sleep(1.0)
        source = child(["source", "--url", url,
                        "--token", mint_token(s, Role.BOT, "source", "source"),
                        "--seconds", str(seconds + warm + 8)], s, state / "source.log")
        try:
            deadline = time.monotonic() + 30
            while not (direct.video and rep.video):
                if time.monotonic() > deadline:
                    raise RuntimeError("no frames at the viewers: see " + str(state))
                await asyncio.sleep(0.1)
            await asyncio.sleep(warm)
            started = time.time_ns() // 1000
            bar = progress(seconds, f"relay {seconds:.0f}s")
            loads: list[float] = []
            await tick_progress(bar, seconds, loads)
            ended = time.time_ns() // 1000
            while relay.poll() is None and time.monotonic() < deadline + seconds + 60:
                await asyncio.sleep(0.2)
            await asyncio.sleep(0.5)
        finally:
            await direct.leave()
            await rep.leave()
            await stop_process(relay)
            await stop_process(source)
        data = json.loads(out.read_text())
        entries = {int(e): (int(ts), int(fid)) for e, ts, fid in data["entries"]}
        return RelayRun(direct, rep, entries, data["stats"], data["encoding"], seconds, started,
                        ended, loads)


# ------------------------------------------------------------------------ CLI for children
def main() -> None:
    ap = argparse.ArgumentParser(prog="python -m bench.harness")
    sub = ap.add_subparsers(dest="role", required=True)
    src = sub.add_parser("source")
    src.add_argument("--url", required=True)
    src.add_argument("--token", required=True)
    src.add_argument("--seconds", type=float, default=0)
    src.add_argument("--fps", type=int, default=FPS)
    rel = sub.add_parser("relay")
    rel.add_argument("--url", required=True)
    rel.add_argument("--src-token", required=True)
    rel.add_argument("--dst-token", required=True)
    rel.add_argument("--seconds", type=float, default=0)
    rel.add_argument("--out", required=True)
    rel.add_argument("--simulcast", choices=("True", "False"),
                     help="default: as the bot (RepublishEncoding.from_settings)")
    args = ap.parse_args()
    if args.role == "source":
        asyncio.run(run_source(args.url, args.token, args.seconds, args.fps))
    else:
        from broadcaster.bot.republisher import tune_malloc

        tune_malloc()
        asyncio.run(run_relay(args.url, args.src_token, args.dst_token, args.seconds,
                              Path(args.out),
                              simulcast=None if args.simulcast is None
                              else args.simulcast == "True"))


if __name__ == "__main__":
    main()
