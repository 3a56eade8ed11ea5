"""Live captions for viewers: the speaker's words as transcribed, the avatar's as it says them.

Two places in the pipeline know words: the STT (what the speaker said) and the
TTS (what the avatar says). A :class:`CaptionProcessor` after each turns those
frames into caption lines sent by a shared :class:`CaptionPublisher`.

The avatar's words are shown word by word, each when a viewer hears it
(:mod:`broadcaster.bot.caption_timing` places the words in their sentence's audio and
anchors the reply on the republisher's ``BotStartedSpeakingFrame``), one growing
interim line per reply, then its final line. A barge-in drops every word not reached
yet and finalizes the line as far as it was shown, so words never spoken are never
shown as said; while a possible barge-in ducks the voice, the words wait too.

Invariant: once a segment's final line is sent, nothing more is sent for that segment.

Sending happens in the processor's own task, never on the frame path: a slow
network doesn't hold up speech.

Order in the pipeline::

    STT → CaptionProcessor(publisher, "speaker") → ... → TTS → CaptionProcessor(publisher, "avatar")
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from loguru import logger
from pipecat.frames.frames import (
    BotStartedSpeakingFrame,
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
    VADUserStartedSpeakingFrame,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

from broadcaster.bot.caption_publisher import (
    SEGMENT_ATTR,
    SEND_TIMEOUT_SECS,
    CaptionPublisher,
    captions_path,
)
from broadcaster.bot.caption_timing import (
    ReplyClock,
    Sentence,
    split_words,
    voiced_blocks,
    word_starts,
)
from broadcaster.frames import SpeechOnsetCancelledFrame, SpeechOnsetFrame
from broadcaster.protocol import AVATAR_CAPTION_SPEAKER

__all__ = ["SEGMENT_ATTR", "CaptionProcessor", "CaptionPublisher", "captions_path"]

#: words due within this much of each other go out as one update
COALESCE_SECS = 0.08
#: a reply waits at most this long for the republisher's signal before it is dropped
ANCHOR_WAIT_SECS = 5.0
_CLOSED_KEPT = 256


@dataclass
class _Item:
    text: str
    speaker: str
    final: bool
    segment: str
    generation: int
    clock: ReplyClock | None = None
    sentence: int = 0
    offset: float = 0.0
    """TTS seconds into the reply when its last word starts (with ``clock``)."""
    finalize_shown: bool = False
    """A barge-in: finalize every line as far as it was shown."""

    def due(self) -> float:
        """Monotonic time to send it (0: now)."""
        if self.clock is None:
            return 0.0
        at = self.clock.heard_at(self.offset, self.sentence)
        return 0.0 if at is None else at


class CaptionProcessor(FrameProcessor):
    """Turns transcripts or the avatar's spoken text into captions.

    ``source="speaker"`` captions transcripts, ``source="avatar"`` the TTS text; every
    frame passes on unchanged.

    Args:
        publisher: shared sender / transcript file.
        source: which words this one captions.
        speaker: for "speaker", the identity to use when a transcript has no
            user_id (e.g. ``gate.speaker`` via a lambda).
        pace: for "avatar", show each word when a viewer hears it (else at once).
        interrupt_on_speech_start: for "avatar", stop at ``VADUserStartedSpeakingFrame``
            and hold at ``SpeechOnsetFrame``, as the republisher's
            ``mute_on_speech_start`` does with the voice.
    """

    def __init__(
        self,
        publisher: CaptionPublisher,
        source: Literal["speaker", "avatar"],
        *,
        speaker: Callable[[], str | None] | None = None,
        pace: bool = True,
        interrupt_on_speech_start: bool = False,
        **kwargs: Any,
    ) -> None:
        if source not in ("speaker", "avatar"):
            raise ValueError(f"source must be 'speaker' or 'avatar', not {source!r}")
        super().__init__(**kwargs)
        self.publisher = publisher
        self.source = source
        self._speaker = speaker
        self._pace = pace
        self._vad_interrupts = interrupt_on_speech_start
        self._pending: deque[_Item | None] = deque()
        self._ready = asyncio.Event()  # something was queued
        self._wake = asyncio.Event()  # cuts a pacing wait short (anchor, interruption, end)
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None
        self._generation = 0
        self._draining = False
        self._held = False
        self._segment = _new_segment()
        self._shown: dict[str, str] = {}
        self._closed: deque[str] = deque(maxlen=_CLOSED_KEPT)
        # the avatar's reply being spoken
        self._clock: ReplyClock | None = None
        self._words: list[str] = []
        self._audio_secs = 0.0
        self._mark = 0.0
        self._voiced: tuple[float, float] | None = None
        self._arrived: float | None = None
        self._unanchored: deque[ReplyClock] = deque()
        self._latency: float | None = None  # the last reply's measured TTS → voice latency

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        """Caption the words in transcripts or TTS text; pass every frame on."""
        await super().process_frame(frame, direction)
        if isinstance(frame, StartFrame) and self._task is None:
            self._task = self.create_task(self._sender(), f"{self}::sender")
        if self.source == "avatar" and isinstance(frame, BotStartedSpeakingFrame):
            if direction is FrameDirection.UPSTREAM:
                self._anchor()
        elif direction is FrameDirection.DOWNSTREAM:
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
            self._enqueue(_Item(text, speaker, final, self._segment, self._generation))
            if final:
                self._segment = _new_segment()

    # --- avatar ------------------------------------------------------------------------------

    def _on_avatar_frame(self, frame: Frame) -> None:
        if isinstance(frame, LLMFullResponseStartFrame):
            self._finish_reply()
        elif isinstance(frame, TTSAudioRawFrame):
            self._on_audio(frame)
        elif isinstance(frame, TTSTextFrame):
            self._on_text(frame)
        elif isinstance(frame, (TTSStoppedFrame, LLMFullResponseEndFrame)):
            self._finish_reply()
        elif isinstance(frame, InterruptionFrame) or (
            self._vad_interrupts and isinstance(frame, VADUserStartedSpeakingFrame)
        ):
            self._interrupt()
        elif self._vad_interrupts and isinstance(frame, SpeechOnsetFrame):
            self._held = True
        elif isinstance(frame, SpeechOnsetCancelledFrame):
            self._held = False
            self._wake.set()

    def _reply(self) -> ReplyClock:
        if self._clock is None:
            self._clock = ReplyClock(self._segment, self._generation)
            if self._latency is not None:  # the republisher signals: wait for this reply's
                self._clock.fallback_latency = self._latency
                self._clock.expect_anchor = self._pace
        return self._clock

    def _on_audio(self, frame: TTSAudioRawFrame) -> None:
        clock, now = self._reply(), time.monotonic()
        if clock.first_audio is None:
            clock.first_audio = now
            if self._pace:
                self._unanchored.append(clock)
        if self._arrived is None:
            self._arrived = now
        rate, channels = frame.sample_rate or 1, frame.num_channels or 1
        voiced = voiced_blocks(frame.audio, rate, channels)
        if voiced is not None:
            first, last = self._audio_secs + voiced[0], self._audio_secs + voiced[1]
            self._voiced = (self._voiced[0] if self._voiced else first, last)
            if clock.lead is None:
                clock.lead = first
        self._audio_secs += len(frame.audio) / (2 * rate * channels)

    def _on_text(self, frame: TTSTextFrame) -> None:
        words = split_words(frame.text)
        if not words:
            return
        clock, now = self._reply(), time.monotonic()
        if clock.first_audio is None:  # text with no audio: show it as if just heard
            clock.first_audio, clock.expect_anchor = now, False
        paced = self._pace and str(frame.text_type) != "word"  # word services time it
        index = len(clock.sentences)
        clock.sentences.append(Sentence(self._mark, self._arrived or now))
        start, end = self._voiced or (self._mark, self._audio_secs)
        starts = word_starts(words, start, end)
        for i, at in enumerate(starts):
            self._words.append(words[i])
            item = _Item(" ".join(self._words), AVATAR_CAPTION_SPEAKER, False, self._segment,
                         self._generation, clock if paced else None, index, at)
            self._enqueue(item)
        self._mark, self._voiced, self._arrived = self._audio_secs, None, None

    def _finish_reply(self) -> None:
        if self._words:  # the final line replaces the interim one when its last word shows
            last = self._pending[-1] if self._pending else None
            clock = last.clock if last is not None and last.segment == self._segment else None
            self._enqueue(_Item(" ".join(self._words), AVATAR_CAPTION_SPEAKER, True,
                                self._segment, self._generation, clock,
                                last.sentence if last and clock else 0,
                                last.offset if last and clock else 0.0))
        self._reset_reply()

    def _reset_reply(self) -> None:
        if self._words or self._clock is not None:
            self._segment = _new_segment()
        self._clock, self._words, self._audio_secs, self._mark = None, [], 0.0, 0.0
        self._voiced, self._arrived = None, None

    def _interrupt(self) -> None:
        """Barge-in: words not reached are never shown; shown lines are finalized."""
        self._generation += 1
        self._pending.clear()
        self._unanchored.clear()
        self._held = False
        self._enqueue(_Item("", AVATAR_CAPTION_SPEAKER, True, "", self._generation,
                            finalize_shown=True))
        self._reset_reply()
        self._wake.set()

    def _anchor(self) -> None:
        """Anchor the oldest waiting reply: the republisher just published its first voice."""
        now = time.monotonic()
        while self._unanchored:
            clock = self._unanchored.popleft()
            stale = clock.first_audio is None or now - clock.first_audio > ANCHOR_WAIT_SECS
            if clock.generation == self._generation and not stale and clock.anchor is None:
                clock.anchor = now
                self._latency = clock.latency()
                self._wake.set()
                return

    # --- sending -----------------------------------------------------------------------------

    def _enqueue(self, item: _Item | None) -> None:
        self._pending.append(item)
        self._idle.clear()
        self._ready.set()

    async def _next_item(self) -> _Item | None:
        while not self._pending:
            self._idle.set()
            self._ready.clear()
            await self._ready.wait()
        return self._pending.popleft()

    async def _sender(self) -> None:
        while True:
            item = await self._next_item()
            if item is None:
                self._idle.set()
                return
            if item.finalize_shown:
                for segment, text in list(self._shown.items()):
                    await self._publish(item, text, segment)
                continue
            await self._wait_until_due(item)
            if item.generation != self._generation:
                continue  # interrupted before this word was reached
            if self._draining and not item.final:
                continue
            if item.segment in self._closed:
                continue  # nothing follows a segment's final line
            if not item.final and self._superseded(item):
                continue
            await self._publish(item, item.text, item.segment)

    async def _wait_until_due(self, item: _Item) -> None:
        while not self._draining and item.generation == self._generation:
            wait = item.due() - time.monotonic()
            if wait <= 0 and not (self._held and not item.final):
                return
            self._wake.clear()
            timeout = None if wait <= 0 else wait  # held: until released or interrupted
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)

    def _superseded(self, item: _Item) -> bool:
        """Tell whether the next line of the same segment is due too (send that instead)."""
        nxt = self._pending[0] if self._pending else None
        return (nxt is not None and nxt.segment == item.segment
                and nxt.generation == item.generation
                and nxt.due() <= time.monotonic() + COALESCE_SECS)

    async def _publish(self, item: _Item, text: str, segment: str) -> None:
        final = item.final
        if final:
            self._closed.append(segment)
            self._shown.pop(segment, None)
        else:
            self._shown[segment] = text
        await self.publisher.publish(
            text, speaker=item.speaker, final=final, segment=segment, source=self.source
        )

    async def flush(self) -> None:
        """Wait until every caption queued so far has been sent (tests, shutdown)."""
        await self._idle.wait()

    async def close_shown(self, seconds: float = 1.0) -> None:
        """Finalize the lines viewers see as far as shown (a stop mid-reply), and send them."""
        if self._task is None or not self._shown:
            return
        self._interrupt()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), seconds)

    async def _stop(self, *, drain: bool) -> None:
        if self._task is None:
            return
        task, self._task = self._task, None
        if drain:
            self._finish_reply()
            self._draining = True  # ending: send the final lines now
            self._wake.set()
            self._enqueue(None)
            try:
                await asyncio.wait_for(asyncio.shield(task), SEND_TIMEOUT_SECS)
                return
            except TimeoutError:
                logger.warning(f"{self}: captions still unsent at shutdown")
        elif self._shown and self.source == "avatar":
            # cancelled mid-reply (the bot stops): close the lines viewers saw as a barge-in
            # does, so no words are left hanging and the transcript on disk has them
            self._interrupt()
            self._enqueue(None)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(task), SEND_TIMEOUT_SECS)
        await self.cancel_task(task)


def _new_segment() -> str:
    return uuid.uuid4().hex[:12]
