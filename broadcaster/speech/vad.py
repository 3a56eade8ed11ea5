"""The speaker's VAD: Silero in pipecat's VADProcessor, plus what it suspects early.

:func:`make_vad` builds the Silero analyzer from Settings; :class:`SpeakerVADProcessor`
runs it after the speaker gate.

pipecat's VAD reports speech only once it is sure: a start ``vad_start_secs`` after
the first voiced window, a stop ``vad_stop_secs`` after the last. Two things in the
bot are worth starting on suspicion, and both are undone cheaply when it was wrong:

- barge-in: at the first confident window (:class:`SpeechOnsetFrame`) the
  republisher ducks the avatar's speech; :class:`SpeechOnsetCancelledFrame` gives
  it back when the sound was a noise (``mute_on_speech_start``, bot/republisher/);
- the transcript: after two quiet windows (:class:`SpeechPausedFrame`) local
  Whisper starts on the segment so far; :class:`SpeechResumedFrame` drops that run
  when the speaker goes on (speech/segmented.py).

The analyzer's states are pipecat internals, read through broadcaster.sdk_internals.
"""

from __future__ import annotations

from typing import Any

from loguru import logger
from pipecat.audio.vad.silero import SileroVADAnalyzer
from pipecat.audio.vad.vad_analyzer import VADAnalyzer, VADParams, VADState
from pipecat.frames.frames import (
    Frame,
    InputAudioRawFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.processors.audio.vad_processor import VADProcessor
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

from broadcaster.config import Settings
from broadcaster.frames import (
    SpeakerChangedFrame,
    SpeechOnsetCancelledFrame,
    SpeechOnsetFrame,
    SpeechPausedFrame,
    SpeechResumedFrame,
)
from broadcaster.sdk_internals import (
    reset_vad,
    vad_confirmed_state,
    vad_quiet_windows,
    vad_suspected_state,
)

#: quiet 32 ms windows before a SpeechPausedFrame (vad_stop_secs 0.2 = 6 windows)
PAUSE_WINDOWS = 2


def make_vad(settings: Settings) -> SileroVADAnalyzer:
    """Silero VAD (bundled with pipecat), tuned by Settings.

    Run it in a processor after the speaker gate:
    ``SpeakerVADProcessor(vad_analyzer=make_vad(settings))``.
    """
    return SileroVADAnalyzer(params=VADParams(
        stop_secs=settings.vad_stop_secs,
        start_secs=settings.vad_start_secs,
        min_volume=settings.vad_min_volume,
    ))


class SpeakerVADProcessor(VADProcessor):
    """pipecat's VADProcessor that starts fresh when the speaker changes.

    It also tells what its analyzer suspects before it decides (frames in
    broadcaster.frames).

    Without the reset the analyzer would carry the old speaker's speech state (and
    Silero's recurrent state) into the new speaker's audio.
    """

    def __init__(self, *, vad_analyzer: VADAnalyzer, **kwargs: Any) -> None:
        super().__init__(vad_analyzer=vad_analyzer, **kwargs)
        self._analyzer = vad_analyzer
        self._onset = False
        self._paused = False

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        """Reset on a speaker change; report onsets and pauses after each audio frame."""
        if isinstance(frame, SpeakerChangedFrame):
            await FrameProcessor.process_frame(self, frame, direction)  # observers only
            # Let the change reach the STT first: it then drops the segment that the
            # VADUserStoppedSpeakingFrame below would otherwise get transcribed.
            await self.push_frame(frame, direction)
            await self._reset(frame)
            return
        await super().process_frame(frame, direction)
        if isinstance(frame, InputAudioRawFrame):
            await self._report_onset()
            await self._report_pause()

    async def _report_pause(self) -> None:
        if vad_confirmed_state(self) != VADState.SPEAKING:
            self._paused = False  # stopped (the stop frame went) or never started
        elif vad_suspected_state(self._analyzer) == VADState.STOPPING:
            if not self._paused and vad_quiet_windows(self._analyzer) >= PAUSE_WINDOWS:
                self._paused = True
                await self.push_frame(SpeechPausedFrame())
        elif self._paused:
            self._paused = False
            await self.push_frame(SpeechResumedFrame())

    async def _report_onset(self) -> None:
        state = vad_suspected_state(self._analyzer)
        if state == VADState.STARTING and vad_confirmed_state(self) == VADState.QUIET:
            if not self._onset:
                self._onset = True
                await self.push_frame(SpeechOnsetFrame())
        elif self._onset:
            self._onset = False
            if state == VADState.QUIET:  # never confirmed (SPEAKING: the start frame went)
                await self.push_frame(SpeechOnsetCancelledFrame())

    async def _reset(self, frame: SpeakerChangedFrame) -> None:
        was_speaking = vad_confirmed_state(self) == VADState.SPEAKING
        reset_vad(self, self._analyzer)
        if self._onset:
            self._onset = False
            await self.push_frame(SpeechOnsetCancelledFrame())
        self._paused = False  # the STT drops its speculation on the change itself
        if was_speaking:
            logger.info(f"{self}: speaker changed mid-utterance; discarding {frame.previous!r}")
            await self.broadcast_frame(
                VADUserStoppedSpeakingFrame, stop_secs=self._analyzer.params.stop_secs
            )
