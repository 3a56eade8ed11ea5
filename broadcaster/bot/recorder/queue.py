"""What the pipeline hands the encoder thread, and the bounded queue between them.

The pipeline never waits for the encoder: when the queue holds ``max_backlog_seconds``
of video (or the audio equivalent), new media items are refused and counted.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Hashable
from dataclasses import dataclass

from pipecat.frames.frames import AudioRawFrame, OutputImageRawFrame

from broadcaster.bot.recorder.stats import RecorderStats


@dataclass(frozen=True, slots=True)
class VideoItem:
    """A video frame and its place on the video grid (seconds since time 0)."""

    pts: float
    frame: OutputImageRawFrame


@dataclass(frozen=True, slots=True)
class AudioItem:
    """An audio frame of one source and when it arrived (seconds since time 0)."""

    t: float
    source: Hashable
    """Which stream it belongs to: ("out", live) for the avatar / TTS, ("in", user)."""
    live: bool
    """Real-time speech (kept on its arrivals) rather than TTS playout (queued)."""
    frame: AudioRawFrame


@dataclass(frozen=True, slots=True)
class CutItem:
    """An interruption at ``t``: drop the playout audio queued after it."""

    t: float


@dataclass(frozen=True, slots=True)
class EndItem:
    """Close the file; the recording lasts until ``t`` (or its queued audio, if later)."""

    t: float


Item = VideoItem | AudioItem | CutItem | EndItem


class EncodeQueue:
    """A thread-safe FIFO from the event loop to the encoder thread, bounded per media kind."""

    def __init__(self, max_video: int, max_audio: int, stats: RecorderStats) -> None:
        self.max_video = max_video
        self.max_audio = max_audio
        self._stats = stats
        self._cond = threading.Condition()
        self._items: deque[Item] = deque()
        self._video = 0
        self._audio = 0

    def put(self, item: Item) -> bool:
        """Queue ``item``; False (not queued) when its kind is at its bound."""
        with self._cond:
            if isinstance(item, VideoItem):
                if self._video >= self.max_video:
                    return False
                self._video += 1
            elif isinstance(item, AudioItem):
                if self._audio >= self.max_audio:
                    return False
                self._audio += 1
            self._items.append(item)
            if not isinstance(item, EndItem):
                self._stats.queue_high_water = max(self._stats.queue_high_water,
                                                   len(self._items))
            self._cond.notify()
        return True

    def take(self, timeout: float) -> Item | None:
        """Take the oldest item, waiting at most ``timeout`` seconds for one."""
        with self._cond:
            if not self._items:
                self._cond.wait(timeout)
            if not self._items:
                return None
            item = self._items.popleft()
            if isinstance(item, VideoItem):
                self._video -= 1
            elif isinstance(item, AudioItem):
                self._audio -= 1
            return item

    def empty(self) -> bool:
        """Nothing is waiting."""
        with self._cond:
            return not self._items

    def clear(self) -> None:
        """Drop everything waiting (the recording failed)."""
        with self._cond:
            self._items.clear()
            self._video = self._audio = 0
