"""The republish session: source -> relay (the bot's video path) -> viewers.

Child roles (run as ``python -m bench.relay ROLE ...``) keep the measured parts in
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
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import bench.process_env  # noqa: E402,F401
from bench.figures import progress, tick_progress  # noqa: E402
from bench.receiver import FPS, H, Receiver, W  # noqa: E402
from bench.servers import child, livekit_server, stop_process  # noqa: E402
from broadcaster.config import Settings  # noqa: E402


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
        # every pipeline frame enters through offer_video (tests/test_republisher.py
        # checks it): right after it, the pacer's pending or last real item is this frame
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
        relay = child("bench.relay", ["relay", "--url", url,
                       "--src-token", mint_token(s, Role.BOT, "source", "relay"),
                       "--dst-token", mint_token(s, Role.BOT, "stage", "relay"),
                       "--seconds", str(seconds + warm + 4), "--out", str(out),
                       *([] if simulcast is None else ["--simulcast", str(simulcast)])],
                      s, state / "relay.log")
        await asyncio.sleep(1.0)
        source = child("bench.relay", ["source", "--url", url,
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
        log = state / "relay.log"
        if not out.exists():
            raise RuntimeError(f"the relay wrote no results (exit {relay.returncode}); "
                               f"{log}:\n{_tail(log)}")
        data = json.loads(out.read_text())
        entries = {int(e): (int(ts), int(fid)) for e, ts, fid in data["entries"]}
        if not entries:
            # nothing ties republished frames to source frames: every figure built on
            # them would be empty, so stop here rather than report n=0
            raise RuntimeError(
                f"the relay recorded no (entry stamp, source frame) pairs although it "
                f"published {data['stats'].get('frames_published')} frames: did pipeline "
                f"frames bypass LiveKitRepublisher.offer_video? {log}:\n{_tail(log)}")
        return RelayRun(direct, rep, entries, data["stats"], data["encoding"], seconds, started,
                        ended, loads)


def _tail(log: Path, lines: int = 20) -> str:
    """The end of a child's log, for an error message."""
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError as e:
        return f"(unreadable: {e})"


# ------------------------------------------------------------------------ CLI for children
def main() -> None:
    ap = argparse.ArgumentParser(prog="python -m bench.relay")
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
