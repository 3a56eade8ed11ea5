"""pipecat's segmented STT services (local Whisper, OpenAI), taught what a broadcast needs.

1. A speaker change (``SpeakerChangedFrame`` from the speaker gate) in the middle
   of an utterance discards the buffered audio instead of transcribing it, so
   the old speaker's half sentence never reaches the responder.
2. Each transcript carries the identity of the speaker whose segment it is.
   Stock pipecat stamps ``TranscriptionFrame.user_id`` with whoever sent the
   *latest* audio frame when the (background) transcription finishes, which
   after a change is already the new speaker.
3. Local Whisper transcribes speculatively: at a ``SpeechPausedFrame`` (the
   speaker quiet for two VAD windows) it starts on the segment so far; when the
   VAD confirms the stop (``vad_stop_secs`` after the last voiced window) without
   a ``SpeechResumedFrame`` in between, that transcript is the segment's, ready
   ~130 ms sooner. What came after the pause is silence by the VAD's own account.
   A speaker who goes on costs one discarded run (never more than one at a time).
   Off for cloud STTs, where every run is billed.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncGenerator
from typing import Any

from loguru import logger
from pipecat.frames.frames import (
    Frame,
    TranscriptionFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.services.whisper.stt import WhisperSTTService

from broadcaster.frames import SpeakerChangedFrame, SpeechPausedFrame, SpeechResumedFrame
from broadcaster.sdk_internals import SegmentedSTTHooks, wrap_whisper_model


class _Speculated(bytes):
    """A queued segment whose transcription already started (its PCM, as a fallback)."""

    task: asyncio.Task[list[Frame]]


class SpeakerAwareSegmentedSTT(SegmentedSTTHooks):
    """Mixin for a ``SegmentedSTTService`` that knows speakers and pauses.

    It drops a segment cut short by a speaker change, stamps each transcript with its
    speaker and (``speculate``) starts transcribing at the pause.

    The segment pipecat collects is seen through ``SegmentedSTTHooks``
    (broadcaster.sdk_internals).
    """

    #: transcribe at a SpeechPausedFrame (see the module doc); subclasses opt in
    speculate = False

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._discarding = False
        self._segment_speakers: deque[str] = deque()
        self._speculation: _Speculated | None = None
        self._last_run: asyncio.Task[list[Frame]] | None = None  # kept or dropped
        self.speculations = {"started": 0, "used": 0, "discarded": 0}

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        """Speculate at pauses, drop segments cut by a speaker change; the rest as pipecat."""
        if isinstance(frame, SpeechPausedFrame):
            self._speculate()
        elif isinstance(frame, (SpeechResumedFrame, SpeakerChangedFrame,
                                VADUserStartedSpeakingFrame)):
            self._drop_speculation()
        if isinstance(frame, SpeakerChangedFrame):
            await FrameProcessor.process_frame(self, frame, direction)  # observers only
            if self.collecting_segment:
                logger.info(f"{self}: dropping {frame.previous!r}'s unfinished segment")
                self._discarding = True
            self.stop_collecting()
            self.clear_segment_audio()  # the old speaker's pre-roll too
            await self.push_frame(frame, direction)
            return
        if isinstance(frame, VADUserStartedSpeakingFrame):
            self._discarding = False
        await super().process_frame(frame, direction)

    async def on_user_stopped_speaking(self, frame: VADUserStoppedSpeakingFrame) -> None:
        """Queue the segment with its speaker, or the transcription started at the pause."""
        if self._discarding:
            self._discarding = False
            self.clear_segment_audio()
            self._drop_speculation()
            return
        if self.is_usable:  # else the base class drops the segment: nothing to pair with
            self._segment_speakers.append(self.latest_audio_user)
        speculation, self._speculation = self._speculation, None
        if speculation is not None and self.is_usable:
            self.speculations["used"] += 1
            logger.debug(f"{self}: the transcription started at the pause is the segment's "
                         f"({'done' if speculation.task.done() else 'running'})")
            self.stop_collecting()
            self.clear_segment_audio()  # silence since the pause, by the VAD's account
            await self.queue_segment(speculation)
            return
        await super().on_user_stopped_speaking(frame)

    def _speculate(self) -> None:
        """Start transcribing the segment so far (one run at a time)."""
        if not (self.speculate and self.collecting_segment and self.is_usable):
            return
        if self._last_run is not None and not self._last_run.done():
            return  # still busy with an earlier pause: don't pile runs onto the CPU
        pcm = _Speculated(self.segment_audio())
        pcm.task = self._last_run = self.create_task(self._transcribe(bytes(pcm)),
                                                     f"{self}::speculation")
        self._speculation = pcm
        self.speculations["started"] += 1

    def _drop_speculation(self) -> None:
        if self._speculation is not None:
            self._speculation = None  # a run in a worker thread can't be stopped: it ends
            self.speculations["discarded"] += 1

    async def _transcribe(self, audio: bytes) -> list[Frame]:
        return [f async for f in super().run_stt(audio) if f is not None]

    async def run_stt(self, audio: bytes) -> AsyncGenerator[Frame, None]:
        """Transcribe one queued segment, each transcript stamped with its speaker."""
        # Called once per queued segment, in queue order.
        speaker = (self._segment_speakers.popleft() if self._segment_speakers
                   else self.latest_audio_user)
        async for frame in self._frames_of(audio):
            if isinstance(frame, TranscriptionFrame):
                frame.user_id = speaker
                frame.text = frame.text.strip()
            yield frame

    async def _frames_of(self, audio: bytes) -> AsyncGenerator[Frame, None]:
        if isinstance(audio, _Speculated):
            try:
                frames = await audio.task
            except Exception as exc:  # transcribe the same PCM once more, in line
                logger.warning(f"{self}: speculative transcription failed ({exc}); again")
            else:
                for frame in frames:
                    yield frame
                return
        async for result in super().run_stt(bytes(audio)):
            if result is not None:  # pipecat skips a None too
                yield result


class SpeakerAwareWhisperSTTService(SpeakerAwareSegmentedSTT, WhisperSTTService):
    """Local Whisper (faster-whisper / CTranslate2) with the rules above, speculating.

    Args:
        beam_size: decoding beam. pipecat leaves faster-whisper's default (5, with
            timestamps); a question of a few seconds decodes greedily (1, no
            timestamps: a segment needs none) in ~75% of the time.
    """

    speculate = True

    def __init__(self, *, beam_size: int = 1, **kwargs: Any) -> None:
        super().__init__(**kwargs)  # loads the model
        options = {"beam_size": beam_size, "without_timestamps": True,
                   "condition_on_previous_text": False}
        wrap_whisper_model(self, lambda model: _DecodeWith(model, options))


class _DecodeWith:
    """A faster-whisper model whose ``transcribe`` adds our decode options.

    pipecat's ``run_stt`` passes only language, hotwords and prompt.
    """

    def __init__(self, model: Any, options: dict[str, Any]) -> None:
        self._model, self._options = model, options

    def transcribe(self, audio: Any, **kwargs: Any) -> Any:
        return self._model.transcribe(audio, **{**self._options, **kwargs})

    def __getattr__(self, name: str) -> Any:
        return getattr(self._model, name)
