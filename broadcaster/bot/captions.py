"""Live captions for viewers, and the session's transcript on disk.

Two places in the pipeline know words: the STT (what the speaker said) and the
TTS (what the avatar says). A :class:`CaptionProcessor` after each turns those
frames into LiveKit text streams on ``protocol.CAPTION_TOPIC`` (attributes
``CAPTION_SPEAKER_ATTR``, ``CAPTION_FINAL_ATTR`` and LiveKit's own
``lk.segment_id``, so a page can replace an interim line by its final), and a
shared :class:`CaptionPublisher` appends every final line to
``<state_dir>/sessions/<room>/captions.jsonl``.

Sending happens in the processor's own task, never on the frame path: a slow
network doesn't hold up speech. The avatar's lines are paced by the audio the
TTS produced, so a sentence's caption appears when that sentence starts rather
than the whole answer at once (TTS runs far faster than real time); an
interruption cancels the sentences not yet reached.

Order in the pipeline::

    STT → CaptionProcessor(publisher, "speaker") → ... → TTS → CaptionProcessor(publisher, "avatar")
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from livekit import rtc
from loguru import logger
from pipecat.frames.frames import (
    CancelFrame,
    EndFrame,
    Frame,
    InterimTranscriptionFrame,
    InterruptionFrame,
    LLMFullResponseEndFrame,
    LLMFullResponseStartFrame,
    StartFrame,
    TranscriptionFrame,
    TTSAudioRawFrame,
    TTSStoppedFrame,
    TTSTextFrame,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

from broadcaster.config import Settings
from broadcaster.protocol import (
    AVATAR_CAPTION_SPEAKER,
    CAPTION_FINAL_ATTR,
    CAPTION_SPEAKER_ATTR,
    CAPTION_TOPIC,
)

SEGMENT_ATTR = "lk.segment_id"
SEND_TIMEOUT_SECS = 5.0

RoomSource = rtc.Room | Callable[[], "rtc.Room | None"] | None
TextSender = Callable[..., Awaitable[None]]
"""``send(text, topic=..., attributes=...)``: e.g. ShardFanout.send_text."""


def captions_path(settings: Settings, room: str) -> Path:
    """Where a session's caption lines are kept."""
    return Path(settings.state_dir) / "sessions" / room / "captions.jsonl"


class CaptionPublisher:
    """Sends caption lines to the room and keeps the final ones on disk.

    Args:
        room: the bot's connected rtc.Room, or a callable returning it (e.g. the
            transport's room, which exists only once the pipeline runs), or None to
            only keep the file.
        log_path: the JSONL file (parents created); None keeps nothing on disk.
    """

    def __init__(self, room: RoomSource, log_path: str | Path | None = None) -> None:
        self._room = room
        self.log_path = Path(log_path) if log_path else None
        if self.log_path:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.sent = 0
        self.also: TextSender | None = None
        """Sends each caption to more rooms too (the audience shards)."""

    @classmethod
    def for_session(cls, settings: Settings, room_name: str, room: RoomSource) -> CaptionPublisher:
        """Make a publisher that keeps the session's captions under its state directory."""
        return cls(room, captions_path(settings, room_name))

    def room(self) -> rtc.Room | None:
        """Return the room to send to, if it exists and is connected."""
        try:  # e.g. the transport's room, which raises until the pipeline runs
            room = self._room() if callable(self._room) else self._room
        except Exception:
            return None
        return room if room is not None and room.isconnected() else None

    async def publish(
        self, text: str, *, speaker: str, final: bool, segment: str, source: str
    ) -> None:
        """Send one caption (and keep it, if final). Never raises: captions are best effort."""
        if final:
            self._keep(text, speaker=speaker, source=source)
        attributes = {
            CAPTION_SPEAKER_ATTR: speaker,
            CAPTION_FINAL_ATTR: "true" if final else "false",
            SEGMENT_ATTR: segment,
        }
        if self.also is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(
                    self.also(text, topic=CAPTION_TOPIC, attributes=attributes),
                    SEND_TIMEOUT_SECS)
        room = self.room()
        if room is None:
            logger.debug(f"captions: no connected room; not sent: {text[:60]!r}")
            return
        try:
            await asyncio.wait_for(
                room.local_participant.send_text(
                    text, topic=CAPTION_TOPIC, attributes=attributes, compress=False
                ),
                SEND_TIMEOUT_SECS,
            )
            self.sent += 1
        except Exception as exc:  # a lost caption must never stop the bot
            logger.warning(f"captions: send failed ({exc!r}): {text[:60]!r}")

    def _keep(self, text: str, *, speaker: str, source: str) -> None:
        if not self.log_path:
            return
        line = {
            "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "speaker": speaker,
            "source": source,
            "text": text,
        }
        try:
            # what was said in a webinar is private: the file is 0600 (and made so if an
            # older version created it 0644)
            fd = os.open(self.log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            if os.fstat(fd).st_mode & 0o777 != 0o600:
                os.fchmod(fd, 0o600)
            with os.fdopen(fd, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(line, ensure_ascii=False) + "\n")
        except OSError as exc:
            logger.warning(f"captions: cannot append to {self.log_path}: {exc}")


@dataclass
class _Item:
    text: str
    speaker: str
    final: bool
    segment: str
    generation: int
    due: float = 0.0
    #: interruption: finalize whatever of the segment was already shown
    finalize_shown: bool = False


class CaptionProcessor(FrameProcessor):
    """Turns transcripts or the avatar's spoken text into captions.

    ``source="speaker"`` captions transcripts, ``source="avatar"`` the TTS text; every
    frame passes on unchanged.

    Args:
        publisher: shared sender / transcript file.
        source: which words this one captions.
        speaker: for "speaker", the identity to use when a transcript has no
            user_id (e.g. ``gate.speaker`` via a lambda).
        pace: for "avatar", show each sentence when its audio starts.
    """

    def __init__(
        self,
        publisher: CaptionPublisher,
        source: Literal["speaker", "avatar"],
        *,
        speaker: Callable[[], str | None] | None = None,
        pace: bool = True,
        **kwargs: Any,
    ) -> None:
        if source not in ("speaker", "avatar"):
            raise ValueError(f"source must be 'speaker' or 'avatar', not {source!r}")
        super().__init__(**kwargs)
        self.publisher = publisher
        self.source = source
        self._speaker = speaker
        self._pace = pace
        self._queue: asyncio.Queue[_Item | None] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._generation = 0
        self._wake = asyncio.Event()  # cuts a pacing wait short (interruption, shutdown)
        self._draining = False
        self._segment = _new_segment()
        self._shown: dict[str, str] = {}
        # avatar reply state
        self._parts: list[str] = []
        self._t0: float | None = None
        self._audio_secs = 0.0
        self._mark = 0.0
        self._last_due = 0.0

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        """Caption the words in transcripts or TTS text; pass every frame on."""
        await super().process_frame(frame, direction)
        if isinstance(frame, StartFrame) and self._task is None:
            self._task = self.create_task(self._sender(), f"{self}::sender")
        if direction is FrameDirection.DOWNSTREAM:
            if self.source == "speaker":
                self._on_speaker_frame(frame)
            else:
                self._on_avatar_frame(frame)
        if isinstance(frame, EndFrame):
            await self._stop(drain=True)
        elif isinstance(frame, CancelFrame):
            await self._stop(drain=False)
        await self.push_frame(frame, direction)

    async def cleanup(self) -> None:
        """Stop sending (what is queued is dropped)."""
        await self._stop(drain=False)
        await super().cleanup()

    # --- speaker -----------------------------------------------------------------------------

    def _on_speaker_frame(self, frame: Frame) -> None:
        if isinstance(frame, (TranscriptionFrame, InterimTranscriptionFrame)):
            text = frame.text.strip()
            if not text:
                return
            speaker = frame.user_id or (self._speaker() if self._speaker else None) or "speaker"
            final = isinstance(frame, TranscriptionFrame)
            self._enqueue(text, speaker, final=final)
            if final:
                self._segment = _new_segment()

    # --- avatar ------------------------------------------------------------------------------

    def _on_avatar_frame(self, frame: Frame) -> None:
        if isinstance(frame, LLMFullResponseStartFrame):
            self._finish_reply()
        elif isinstance(frame, TTSAudioRawFrame):
            if self._t0 is None:
                self._t0 = time.monotonic()
            self._audio_secs += len(frame.audio) / (2 * frame.sample_rate * frame.num_channels)
        elif isinstance(frame, TTSTextFrame):
            text = frame.text.strip()
            if not text:
                return
            self._parts.append(text)
            start = self._t0 if self._t0 is not None else time.monotonic()
            # Word-timestamp TTS services already release each word when it is heard.
            paced = self._pace and str(frame.text_type) != "word"
            due = start + self._mark if paced else 0.0
            self._mark = self._audio_secs
            self._last_due = due
            self._enqueue(" ".join(self._parts), AVATAR_CAPTION_SPEAKER, final=False, due=due)
        elif isinstance(frame, (TTSStoppedFrame, LLMFullResponseEndFrame)):
            self._finish_reply()
        elif isinstance(frame, InterruptionFrame):
            if self._parts:
                self._generation += 1  # queued sentences not yet shown are dropped
                self._wake.set()
                self._queue.put_nowait(
                    _Item("", AVATAR_CAPTION_SPEAKER, True, self._segment, self._generation,
                          finalize_shown=True)
                )
            self._reset_reply()

    def _finish_reply(self) -> None:
        if self._parts:  # the final line replaces the last interim one when that shows
            self._enqueue(
                " ".join(self._parts), AVATAR_CAPTION_SPEAKER, final=True, due=self._last_due
            )
        self._reset_reply()

    def _reset_reply(self) -> None:
        if self._parts:
            self._segment = _new_segment()
        self._parts, self._t0, self._audio_secs, self._mark = [], None, 0.0, 0.0
        self._last_due = 0.0

    # --- sending -----------------------------------------------------------------------------

    def _enqueue(self, text: str, speaker: str, *, final: bool, due: float = 0.0) -> None:
        self._queue.put_nowait(
            _Item(text, speaker, final, self._segment, self._generation, due=due)
        )

    async def _sender(self) -> None:
        while True:
            item = await self._queue.get()
            try:
                if item is None:
                    return
                if item.finalize_shown:
                    shown = self._shown.pop(item.segment, "")
                    if shown:
                        await self._publish(item, shown)
                    continue
                delay = item.due - time.monotonic()
                if delay > 0 and item.generation == self._generation and not self._draining:
                    self._wake.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), delay)
                if item.generation != self._generation:
                    continue  # interrupted before this sentence was reached
                await self._publish(item, item.text)
                if item.final:
                    self._shown.pop(item.segment, None)
                else:
                    self._shown[item.segment] = item.text
            finally:
                self._queue.task_done()

    async def _publish(self, item: _Item, text: str) -> None:
        await self.publisher.publish(
            text, speaker=item.speaker, final=item.final, segment=item.segment, source=self.source
        )

    async def flush(self) -> None:
        """Wait until every caption queued so far has been sent (tests, shutdown)."""
        await self._queue.join()

    async def _stop(self, *, drain: bool) -> None:
        if self._task is None:
            return
        task, self._task = self._task, None
        if drain:
            self._finish_reply()
            self._draining = True  # ending: show what is left now
            self._wake.set()
            self._queue.put_nowait(None)
            try:
                await asyncio.wait_for(asyncio.shield(task), SEND_TIMEOUT_SECS)
                return
            except TimeoutError:
                logger.warning(f"{self}: captions still unsent at shutdown")
        await self.cancel_task(task)


def _new_segment() -> str:
    return uuid.uuid4().hex[:12]
