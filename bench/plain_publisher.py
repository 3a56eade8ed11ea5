"""A plain LiveKit publisher: the capacity benches' baseline.

``python -m bench.plain_publisher --url URL --token TOKEN`` publishes what the bot
publishes on the wire — one 1280x720 25 fps VP8 track with the bot's encoding
(``RepublishEncoding`` from the settings: max 1.7 Mbps, one layer unless
``--simulcast``) and a 48 kHz mono audio track of silence — but straight from a frame
loop: no avatar session, no decode, no pipeline. The pictures are the avatar
renderer's own (idle by default, so the encoder sees the same content and reaches the
same bitrate as the idle avatar the bot relays). Frames are rendered once into a pool
and then cycled, so the process's CPU is the SDK's capture + encode, as for the bot.

Audio: ``--audio hiss`` (default) sends a faint noise (-50 dBFS) so Opus codes every
20 ms frame, as the bot's relayed avatar audio does even when the avatar is quiet
(its "silence" is decoded Opus, not digital zero: ~30 kbit/s and 50 packets/s per
viewer, measured); ``--audio silence`` sends digital zero, which Opus DTX all but
suppresses (~1.5 kbit/s).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import signal
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

POOL_SECONDS = 4  # distinct pictures cycled (100 frames at 25 fps)


def render_pool(width: int, height: int, fps: int, state: str) -> list[bytearray]:
    from broadcaster.avatar.renderer import FaceRenderer

    renderer = FaceRenderer(width, height, seed=1)
    pool = []
    for i in range(POOL_SECONDS * fps):
        t = i / fps
        mouth = 0.5 + 0.5 * float(np.sin(2 * np.pi * 3.1 * t)) if state == "speaking" else 0.0
        pool.append(bytearray(renderer.render(t, mouth, state, copy=True).data))
    return pool


async def publish(url: str, token: str, seconds: float, simulcast: bool, state: str,
                  codec: str | None, scalability_mode: str | None,
                  max_bitrate: int | None = None, audio: str = "hiss") -> None:
    from livekit import rtc

    from broadcaster.bot.republisher import RepublishEncoding, audio_options
    from broadcaster.config import Settings

    settings = Settings.load(generate_secrets=False)
    enc = RepublishEncoding.from_settings(settings, simulcast=simulcast)
    if max_bitrate:
        enc = dataclasses.replace(enc, max_bitrate=max_bitrate)
    w, h, fps = enc.width, enc.height, int(enc.fps)
    pool = render_pool(w, h, fps, state)
    room = rtc.Room()
    await room.connect(url, token)
    vsrc = rtc.VideoSource(w, h)
    asrc = rtc.AudioSource(48_000, 1)
    options = enc.video_options()
    if codec:
        options.video_codec = rtc.VideoCodec.Value(codec.upper())
    if scalability_mode:
        options.scalability_mode = scalability_mode
    await room.local_participant.publish_track(
        rtc.LocalVideoTrack.create_video_track("plain-video", vsrc), options)
    await room.local_participant.publish_track(
        rtc.LocalAudioTrack.create_audio_track("plain-audio", asrc), audio_options())
    print(f"publishing {w}x{h}@{fps} {rtc.VideoCodec.Name(options.video_codec)} "
          f"max {enc.max_bitrate} bps simulcast={simulcast} "
          f"svc={scalability_mode or '-'} ({state})", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    if audio == "hiss":
        rng = np.random.default_rng(2)
        hiss = [rtc.AudioFrame((rng.normal(0, 100, 480)).astype(np.int16).tobytes(), 48_000, 1,
                               480) for _ in range(50)]
    else:
        hiss = [rtc.AudioFrame(bytes(960), 48_000, 1, 480)]
    meta = rtc.FrameMetadata()
    t0 = time.monotonic()
    i = 0
    next_audio = t0
    k = 0
    while not stop.is_set() and (seconds <= 0 or time.monotonic() - t0 < seconds):
        frame = rtc.VideoFrame(w, h, rtc.VideoBufferType.I420, pool[i % len(pool)])
        i += 1
        meta.frame_id = i  # viewers count stamped frames, not callbacks
        meta.user_timestamp = time.time_ns() // 1000
        vsrc.capture_frame(frame, timestamp_us=int((time.monotonic() - t0) * 1e6), metadata=meta)
        deadline = t0 + i / fps
        while next_audio < deadline:  # 10 ms at a time, as a microphone
            await asyncio.wait_for(asrc.capture_frame(hiss[k % len(hiss)]), 1.0)
            next_audio += 0.01
            k += 1
        await asyncio.sleep(max(0.0, deadline - time.monotonic()))
    print(f"sent {i} frames", flush=True)
    await room.disconnect()


def main() -> None:
    ap = argparse.ArgumentParser(prog="python -m bench.plain_publisher", description=__doc__)
    ap.add_argument("--url", required=True)
    ap.add_argument("--token", required=True)
    ap.add_argument("--seconds", type=float, default=0, help="0: until SIGINT/SIGTERM")
    ap.add_argument("--simulcast", action="store_true")
    ap.add_argument("--state", default="idle", choices=("idle", "speaking", "listening"))
    ap.add_argument("--codec", help="VP8 (default, as the bot), VP9, AV1, H264")
    ap.add_argument("--scalability-mode", help="SVC mode for VP9/AV1, e.g. L3T3_KEY")
    ap.add_argument("--audio", choices=("hiss", "silence"), default="hiss",
                    help="faint noise Opus must code (as the bot's) or digital zero (DTX)")
    ap.add_argument("--max-bitrate", type=int,
                    help="video bits/s (default: the bot's, video_max_bitrate)")
    args = ap.parse_args()
    from broadcaster.bot.republisher import tune_malloc

    tune_malloc()
    asyncio.run(publish(args.url, args.token, args.seconds, args.simulcast, args.state,
                        args.codec, args.scalability_mode, args.max_bitrate, args.audio))


if __name__ == "__main__":
    main()
