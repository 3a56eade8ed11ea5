"""Every pipecat and LiveKit private name broadcaster relies on, and nowhere else.

pipecat-ai 1.14 leaves a few things we need without a public name: the room of a
``LiveKitTransport``, the resampler of its input, the VAD's state before it
decides, the segment a segmented STT is collecting, the LiveAvatar client's video
loop and LiveKit join, Whisper's model, Piper's voice. Each is used only through
a function or hook class here; :data:`PRIVATE_NAMES` (kept in
broadcaster/sdk_names.py) lists them all with the reason.
``tests/test_sdk_internals.py`` checks every entry against the installed (pinned)
versions and fails naming the attribute that moved;
``tests/test_architecture.py`` fails when a private SDK name is used anywhere else.

The Go SVC relay (relay/svcrelay, server-sdk-go) has its one internal — the
``LocalParticipant.engine`` it publishes a layered track through — in
relay/svcrelay/sdk_internals.go, checked by ``svcrelay -check-sdk``
(tests/test_shard_relay.py).

Upgrading pipecat or livekit: run ``tests/test_sdk_internals.py`` first; this
module is the only place to change.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

from livekit import rtc
from pipecat.audio.resamplers.base_audio_resampler import BaseAudioResampler
from pipecat.audio.vad.vad_analyzer import VADAnalyzer, VADState
from pipecat.frames.frames import Frame, OutputImageRawFrame, VADUserStoppedSpeakingFrame
from pipecat.processors.audio.vad_processor import VADProcessor
from pipecat.services.stt_service import SegmentedSTTService
from pipecat.transports.livekit.transport import (
    LiveKitInputTransport,
    LiveKitOutputTransport,
    LiveKitTransport,
)

# the LiveAvatar client's internals live beside this module (one fence, two files)
from broadcaster.sdk_internals_heygen import (  # noqa: F401  (re-exported)
    HeyGenVideoServiceHooks,
    Said,
    Speak,
    heygen_client_wants_video,
    heygen_media_join,
    heygen_send_speech,
    heygen_session_health,
    heygen_session_id,
    heygen_take_pacing,
    heygen_transport_session,
    replace_video_loop,
    shield_media_join,
    shield_transport_join,
    skip_media_join,
    wrap_speech,
)

if TYPE_CHECKING:
    from pipecat.services.piper.tts import PiperTTSService
    from pipecat.services.whisper.stt import WhisperSTTService

from broadcaster.sdk_names import PRIVATE_NAMES, SUBCLASS_API, PrivateName

__all__ = ["PRIVATE_NAMES", "SUBCLASS_API", "PrivateName"]  # the table, kept beside the code


# --------------------------------------------------------------------------- LiveKit transport


def transport_room(transport: LiveKitTransport) -> rtc.Room:
    """Return the ``rtc.Room`` of a pipecat ``LiveKitTransport``.

    The transport creates it when the pipeline sets the transport up; before that
    this may raise (callers that run early retry or wait for ``on_connected``).
    """
    return transport._client.room


Handlers = dict[str, dict[Callable[..., Any], None]]


def take_room_handlers(room: rtc.Room) -> Handlers:
    """Remove every event handler from ``room`` and return them.

    Its late events then reach nobody: a stage room whose node died, a join given up on.
    """
    events: Handlers = room._events  # type: ignore[assignment]  # keyed by event name
    handlers = dict(events)
    events.clear()
    return handlers


def give_room_handlers(room: rtc.Room, handlers: Handlers) -> None:
    """Register ``handlers`` (from :func:`take_room_handlers`) on a room not joined yet."""
    events: Handlers = room._events  # type: ignore[assignment]  # keyed by event name
    for event, callbacks in handlers.items():
        events.setdefault(event, {}).update(callbacks)


async def adopt_transport_room(transport: LiveKitTransport, room: rtc.Room) -> None:
    """Make ``room`` (joined, with the old room's handlers) the transport's room.

    pipecat's client cannot join again once its room is lost; this puts the new room
    in its place, counts it as connected and fires the transport's ``on_connected``
    (the bot's handlers follow the new room from it).
    """
    client = transport._client
    client._room, client._connected = room, True
    await transport._call_event_handler("on_connected")


class _ResamplingInput(LiveKitInputTransport):
    """pipecat's LiveKit input with each participant's resampler made by ``make_resampler``."""

    def __init__(self, *args: Any, make_resampler: Callable[[], BaseAudioResampler],
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.make_resampler = make_resampler

    async def _convert_livekit_audio_to_pipecat(self, audio_frame_event: Any,
                                                participant_id: str) -> Any:
        if participant_id not in self._resamplers:
            self._resamplers[participant_id] = self.make_resampler()
        return await super()._convert_livekit_audio_to_pipecat(audio_frame_event, participant_id)


class LiveKitTransportWithResampler(LiveKitTransport):
    """pipecat's ``LiveKitTransport`` whose input resamples each voice with ``make_resampler()``.

    pipecat creates the input's per-participant resamplers itself (its stream
    default) and has no parameter for it.
    """

    def __init__(self, *args: Any, make_resampler: Callable[[], BaseAudioResampler],
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.make_resampler = make_resampler

    def input(self) -> LiveKitInputTransport:
        """Return the input transport, created once (as pipecat's own ``input()``)."""
        if not self._input:
            self._input = _ResamplingInput(self, self._client, self._params,
                                           name=self._input_name,
                                           make_resampler=self.make_resampler)
        return self._input


def pipecat_livekit_video_frame(frame: OutputImageRawFrame) -> rtc.VideoFrame | None:
    """Pipecat's own conversion of an output image to an ``rtc.VideoFrame``.

    ``LiveKitOutputTransport._convert_pipecat_video_to_livekit``, called on a stand-in
    for the transport (it reads one attribute), for the benchmark that compares it
    with the republisher's path.
    """
    return LiveKitOutputTransport._convert_pipecat_video_to_livekit(_OUTPUT_STAND_IN, frame)


class _OutputStandIn:
    def __init__(self) -> None:
        self._unsupported_video_formats: set[str] = set()

_OUTPUT_STAND_IN: Any = _OutputStandIn()


# --------------------------------------------------------------------------- VAD


def vad_suspected_state(analyzer: VADAnalyzer) -> VADState:
    """Return what the analyzer thinks now, STARTING / STOPPING included (unconfirmed)."""
    return analyzer._vad_state


def vad_quiet_windows(analyzer: VADAnalyzer) -> int:
    """Quiet analysis windows since the speech began to stop (STOPPING state)."""
    return analyzer._vad_stopping_count


def vad_confirmed_state(processor: VADProcessor) -> VADState:
    """Return the processor's confirmed state: QUIET or SPEAKING (as its frames said)."""
    return processor._vad_controller._vad_state


def reset_vad(processor: VADProcessor, analyzer: VADAnalyzer) -> None:
    """Forget all speech state: buffered audio, counters, Silero's recurrent state."""
    analyzer._vad_buffer = b""
    if analyzer.sample_rate:
        analyzer.set_params(analyzer.params)  # state QUIET, start/stop counters 0
    model = getattr(analyzer, "_model", None)
    if model is not None and hasattr(model, "reset_states"):
        model.reset_states()
    processor._vad_controller._vad_state = VADState.QUIET


# --------------------------------------------------------------------------- segmented STT


class SegmentedSTTHooks(SegmentedSTTService):
    """A ``SegmentedSTTService`` with the segment it collects in view, and a hook at its end.

    pipecat keeps the segment private; :meth:`on_user_stopped_speaking` replaces its
    end-of-segment handling (call ``super()`` for pipecat's).
    """

    @property
    def collecting_segment(self) -> bool:
        """Whether a segment is being collected (the speaker is talking)."""
        return self._user_speaking

    def stop_collecting(self) -> None:
        """End the segment without queueing it."""
        self._user_speaking = False

    def clear_segment_audio(self) -> None:
        """Drop the audio collected so far (the pre-roll included)."""
        self._audio_buffer.clear()

    def segment_audio(self) -> bytes:
        """Return the segment so far, as it would be transcribed (trailing silence included)."""
        return bytes(self._audio_buffer) + self._trailing_silence()

    async def queue_segment(self, audio: bytes) -> None:
        """Hand a segment to the transcription queue (in order with pipecat's own)."""
        await self._segment_queue.put(audio)

    @property
    def latest_audio_user(self) -> str:
        """The participant identity of the latest audio frame ("" if none)."""
        return self._user_id

    async def _handle_user_stopped_speaking(self, frame: VADUserStoppedSpeakingFrame) -> None:
        await self.on_user_stopped_speaking(frame)

    async def on_user_stopped_speaking(self, frame: VADUserStoppedSpeakingFrame) -> None:
        """Handle the end of a segment: by default pipecat queues it for transcription."""
        await super()._handle_user_stopped_speaking(frame)


def wrap_whisper_model(stt: WhisperSTTService, wrap: Callable[[Any], Any]) -> None:
    """Replace the loaded faster-whisper model by ``wrap(model)`` (pipecat loads it at init)."""
    if stt._model is not None:
        stt._model = wrap(stt._model)


# --------------------------------------------------------------------------- Piper


def piper_voice(tts: PiperTTSService) -> Any:
    """Return the loaded ``piper.PiperVoice`` (``synthesize``, ``config.sample_rate``)."""
    return tts._voice


def stream_tts_audio(tts: PiperTTSService, chunks: AsyncIterator[bytes], *,
                     in_sample_rate: int, context_id: str) -> AsyncIterator[Frame]:
    """Audio frames of PCM ``chunks``, resampled and framed as pipecat's TTS does it."""
    return tts._stream_audio_frames_from_iterator(
        chunks, in_sample_rate=in_sample_rate, context_id=context_id
    )
