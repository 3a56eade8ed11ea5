"""Small real LiveKit media clients for the cluster and weak-link tests: a publisher of
numbered synthetic frames and a subscriber that records every frame it decodes."""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from livekit import rtc

from broadcaster.room_connect import connect_room


@dataclass
class FramePublisher:
    """Publishes ``width``x``height`` I420 frames at ``fps``, each stamped with its number
    (LiveKit frame metadata), from a task, until ``stop()``."""

    width: int = 320
    height: int = 180
    fps: int = 15
    sent: int = 0
    room: rtc.Room | None = None
    task: asyncio.Task[None] | None = None

    async def start(self, url: str, token: str, *, options: rtc.TrackPublishOptions | None = None,
                    timeout: float = 15.0) -> FramePublisher:
        self.room = rtc.Room()
        await connect_room(self.room, url, token, seconds=timeout)
        source = rtc.VideoSource(self.width, self.height)
        track = rtc.LocalVideoTrack.create_video_track("frames", source)
        opts = options or rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_CAMERA)
        opts.frame_metadata_features.append(rtc.FrameMetadataFeature.FMF_FRAME_ID)
        await asyncio.wait_for(self.room.local_participant.publish_track(track, opts), timeout)
        self.task = asyncio.create_task(self._run(source))
        return self

    async def _run(self, source: rtc.VideoSource) -> None:
        w, h = self.width, self.height
        base = np.full(w * h * 3 // 2, 128, np.uint8)
        base[: w * h] = np.tile((np.arange(w) * 255 // max(w - 1, 1)).astype(np.uint8), h)
        bar = max(4, w // 16)
        t0 = time.monotonic()
        meta = rtc.FrameMetadata()
        while True:
            # a ramp with a moving bar: every frame differs, and cheaply encodes
            buf = base.copy()
            x = (self.sent * 7) % (w - bar)
            buf[: w * h].reshape(h, w)[:, x : x + bar] = 235
            self.sent += 1
            meta.frame_id = self.sent
            source.capture_frame(rtc.VideoFrame(w, h, rtc.VideoBufferType.I420, buf.tobytes()),
                                 metadata=meta)
            await asyncio.sleep(max(0.0, t0 + self.sent / self.fps - time.monotonic()))

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
        if self.room is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.room.disconnect(), 5)


@dataclass
class FrameCounter:
    """Subscribes to the first video track of ``publisher`` and records each decoded
    frame as (receive time, frame number, width, height); ``events`` keeps the room's
    connection events with their times."""

    publisher: str | None = None
    frames: list[tuple[float, int, int, int]] = field(default_factory=list)
    events: list[tuple[float, str]] = field(default_factory=list)
    room: rtc.Room | None = None
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    async def join(self, url: str, token: str, timeout: float = 15.0) -> FrameCounter:
        self.room = rtc.Room()

        @self.room.on("track_subscribed")
        def _on_track(track: Any, pub: Any, part: Any) -> None:
            if track.kind != rtc.TrackKind.KIND_VIDEO:
                return
            if self.publisher and part.identity != self.publisher:
                return
            self.tasks.append(asyncio.create_task(self._read(rtc.VideoStream(track))))

        for name in ("reconnecting", "reconnected", "disconnected"):
            self.room.on(name, lambda *_, n=name: self.events.append((time.monotonic(), n)))
        await connect_room(self.room, url, token, seconds=timeout)
        return self

    async def _read(self, stream: rtc.VideoStream) -> None:
        async for ev in stream:
            md = ev.metadata
            self.frames.append((time.monotonic(), md.frame_id if md is not None else 0,
                                ev.frame.width, ev.frame.height))

    def distinct_since(self, t: float) -> int:
        return len({f[1] for f in self.frames if f[0] >= t})

    async def wait_frames(self, n: int, timeout: float, since: float | None = None) -> bool:
        t = time.monotonic() if since is None else since
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.distinct_since(t) >= n:
                return True
            await asyncio.sleep(0.05)
        return self.distinct_since(t) >= n

    async def leave(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        if self.room is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.room.disconnect(), 5)
