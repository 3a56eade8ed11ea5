"""The video side of the republisher: paced, stamped capture into one ``rtc.VideoSource``.

Frames are captured the moment they arrive, at most ``fps`` per second (the
:class:`~broadcaster.bot.republisher.pacer.VideoPacer` decides); a loop timer
repeats the last frame while the source is late and shows the slate when it has
stalled. Every capture carries LiveKit frame metadata: ``frame_id`` = publish
sequence number, ``user_timestamp`` = wall-clock microseconds when the frame
entered the republisher, so receivers can measure age and losses.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable

from livekit import rtc
from loguru import logger
from pipecat.frames.frames import OutputImageRawFrame

from broadcaster.bot.republisher.encoding import RepublishEncoding
from broadcaster.bot.republisher.pacer import Kind, PacedFrame, VideoPacer
from broadcaster.bot.republisher.slate import make_slate
from broadcaster.bot.republisher.stats import RepublisherStats
from broadcaster.frames import I420, I420AvatarFrame

#: pipecat image format -> LiveKit buffer type and bytes per pixel
BUFFER_TYPES = {
    "RGB": (rtc.VideoBufferType.RGB24, 3.0),
    "RGBA": (rtc.VideoBufferType.RGBA, 4.0),
    "BGRA": (rtc.VideoBufferType.BGRA, 4.0),
    "ARGB": (rtc.VideoBufferType.ARGB, 4.0),
    I420: (rtc.VideoBufferType.I420, 1.5),
}


class VideoOut:
    """Paces, stamps and captures frames into a video source; repeats and slates on stalls.

    ``on_stalled`` / ``on_resumed`` are called (from the loop) when the slate replaces
    the repeats and when real frames come back.
    """

    def __init__(self, owner: object, encoding: RepublishEncoding, stats: RepublisherStats, *,
                 hold_frames: float, slate_after: float, slate_text: str,
                 on_stalled: Callable[[], None], on_resumed: Callable[[], None]) -> None:
        self._owner = owner  # for log lines
        self.encoding = encoding
        self.stats = stats
        self.pacer = VideoPacer(encoding.fps, hold_frames=hold_frames, slate_after=slate_after)
        self.source: rtc.VideoSource | None = None
        self.frame_id = 0
        """The last capture's ``frame_id`` (publish sequence number)."""
        self._on_stalled, self._on_resumed = on_stalled, on_resumed
        self._slate_text = slate_text
        self._slates: dict[tuple[int, int], rtc.VideoFrame] = {}
        self._metadata = rtc.FrameMetadata()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_when = math.inf
        self._loop: asyncio.AbstractEventLoop | None = None
        self._running = False
        self._warned_sizes: set[tuple[int, int]] = set()
        self._last_in = 0.0  # monotonic, when the last frame came in
        self._last_source = 0  # and from which avatar session
        self.tap: Callable[[rtc.VideoFrame], None] | None = None
        """Also handed every captured frame (audience shards: broadcaster.bot.shard_fanout)."""

    def start(self, source: rtc.VideoSource, *, slate_first: bool = True) -> None:
        """Capture into ``source`` from now on (call from the loop).

        ``slate_first``: show the slate until the first frame, so the track is never empty.
        """
        self._loop = asyncio.get_running_loop()
        self.source = source
        self._running = True
        if slate_first:
            self._arm(self._loop.time())

    def stop(self) -> None:
        """Stop capturing (the source is the caller's to close)."""
        self._running = False
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def source_gone(self) -> None:
        """Show the slate now: the avatar is known dead, its last frame must not linger."""
        if self._loop is None or not self._running:
            return
        now = self._loop.time()
        self.pacer.source_gone(now)
        self._arm(now)

    def offer(self, frame: OutputImageRawFrame) -> None:
        """Hand a frame to the pacer; captured right away unless over the frame rate."""
        self.stats.frames_in += 1
        came, wall_us = time.monotonic(), time.time_ns() // 1000
        source = frame.source if isinstance(frame, I420AvatarFrame) else 0
        if self._last_in and source != self._last_source:
            self.stats.source_switches += 1
            self.stats.last_switch_gap_s = came - self._last_in
            # a viewer finds this frame by its user_timestamp (probes/rollover_watch.py)
            logger.info(f"{self._owner}: the avatar's frames come from another session from "
                        f"the frame entered at {wall_us} us on (picture held "
                        f"{came - self._last_in:.3f} s)")
        self._last_in, self._last_source = came, source
        video = self._to_livekit(frame)
        if video is None or not self._running or self._loop is None:
            return
        size = (video.width, video.height)
        if size != (self.encoding.width, self.encoding.height) and size not in self._warned_sizes:
            self._warned_sizes.add(size)  # published as is: scaling would cost 10+ ms/frame
            logger.warning(f"{self._owner}: source frames are {size[0]}x{size[1]}, configured "
                           f"{self.encoding.width}x{self.encoding.height}; publishing as is")
        received = frame.received_ns if isinstance(frame, I420AvatarFrame) else 0
        item = PacedFrame(video, time.monotonic_ns(), wall_us, received)
        now = self._loop.time()
        if self.pacer.offer(item, now):
            self._poll(now)
        else:
            self._arm(self.pacer.next_due(now))
        self.stats.frames_dropped = self.pacer.dropped

    def _to_livekit(self, frame: OutputImageRawFrame) -> rtc.VideoFrame | None:
        if isinstance(frame, I420AvatarFrame) and frame.video_frame is not None:
            return frame.video_frame
        buffer = BUFFER_TYPES.get(frame.format or "")
        width, height = frame.size
        if buffer is None or len(frame.image) != int(width * height * buffer[1]):
            # LiveKit reads w*h*bpp bytes without checking: a short buffer would crash
            self.stats.frames_unsupported += 1
            if self.stats.frames_unsupported == 1:
                logger.error(f"{self._owner}: unsupported image {frame.format!r} {frame.size} "
                             f"({len(frame.image)} bytes); dropping such frames")
            return None
        return rtc.VideoFrame(width, height, buffer[0], frame.image)

    def _arm(self, when: float) -> None:
        """Make sure the timer fires no later than ``when`` (loop time)."""
        if self._loop is None or not self._running:
            return
        if self._timer is not None and self._timer_when <= when + 1e-4:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self._loop.call_at(when, self._on_timer)
        self._timer_when = when

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_when = math.inf
        if not self._running or self._loop is None:
            return
        now = self._loop.time()
        self._poll(now)
        self._arm(self.pacer.next_due(now))

    def _poll(self, now: float) -> None:
        decision = self.pacer.poll(now)
        if decision is None:
            return
        kind, item = decision
        try:
            self._capture(kind, item)
        except Exception as e:  # never let one capture kill the timer chain
            logger.error(f"{self._owner}: capture failed: {e}")
        was_stalled = self.stats.stalled
        if kind is Kind.SLATE and self.pacer.last_real is not None and not was_stalled:
            self.stats.stalled = True
            self.stats.stalls += 1
            logger.warning(f"{self._owner}: no avatar video for "
                           f"{self.pacer.slate_after:g}s: slate")
            self._on_stalled()
        elif kind is Kind.REAL and was_stalled:
            self.stats.stalled = False
            logger.info(f"{self._owner}: avatar video resumed")
            self._on_resumed()

    def _capture(self, kind: Kind, item: PacedFrame | None) -> None:
        source = self.source
        if source is None:
            return
        self.frame_id += 1
        meta = self._metadata
        meta.frame_id = self.frame_id
        if kind is Kind.SLATE or item is None:
            video = self._slate()
            meta.user_timestamp = time.time_ns() // 1000
        else:
            video = item.video
            meta.user_timestamp = (
                item.entered_wall_us if kind is Kind.REAL else time.time_ns() // 1000
            )
        source.capture_frame(video, metadata=meta)
        if self.tap is not None:
            self.tap(video)
        stats = self.stats
        if kind is Kind.REAL and item is not None:
            stats.frames_published += 1
            done_ns = time.monotonic_ns()
            stats.last_hop_ms = (done_ns - item.entered_ns) / 1e6
            if item.received_ns:
                stats.last_source_age_ms = (done_ns - item.received_ns) / 1e6
        elif kind is Kind.REPEAT:
            stats.frames_repeated += 1
        else:
            stats.frames_slate += 1

    def _slate(self) -> rtc.VideoFrame:
        last = self.pacer.last_real
        size = (last.video.width, last.video.height) if last else (
            self.encoding.width, self.encoding.height)
        slate = self._slates.get(size)
        if slate is None:
            slate = self._slates[size] = make_slate(size[0], size[1], self._slate_text)
        return slate
