"""The table of every pipecat and LiveKit private name broadcaster relies on.

Data only: the code that uses them is broadcaster/sdk_internals.py (which re-exports
these), and tests/test_sdk_internals.py checks every entry against the installed versions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class PrivateName:
    """One private name of an SDK class that broadcaster reads, writes, calls or overrides."""

    owner: str
    """Dotted path of the class that defines it, e.g. ``pipecat.services.heygen.client.
    HeyGenClient``."""
    name: str
    kind: Literal["instance", "class"]
    """"instance": an attribute its methods assign; "class": a method or property."""
    why: str
    params: tuple[str, ...] = ()
    """For a method we call or override: the parameters we rely on (after ``self``)."""


_LK = "pipecat.transports.livekit.transport"
_HEYGEN = "pipecat.services.heygen"
_VAD = "pipecat.audio.vad.vad_analyzer.VADAnalyzer"
_STT = "pipecat.services.stt_service.SegmentedSTTService"

PRIVATE_NAMES: tuple[PrivateName, ...] = (
    PrivateName(f"{_LK}.LiveKitTransport", "_client", "instance",
                "the transport's rtc.Room (no public accessor): transport_room()"),
    PrivateName(f"{_LK}.LiveKitTransportClient", "room", "class",
                "the client's room property: transport_room()"),
    PrivateName(f"{_LK}.LiveKitTransportClient", "_room", "instance",
                "a stage room joined again replaces the lost one: adopt_transport_room()"),
    PrivateName(f"{_LK}.LiveKitTransportClient", "_connected", "instance", "the same"),
    PrivateName("livekit.rtc.event_emitter.EventEmitter", "_events", "instance",
                "pipecat's room handlers move to the new room: take/give_room_handlers()"),
    PrivateName(f"{_LK}.LiveKitTransport", "_input", "instance",
                "LiveKitTransportWithResampler.input() builds its own input class"),
    PrivateName(f"{_LK}.LiveKitTransport", "_params", "instance", "the same"),
    PrivateName(f"{_LK}.LiveKitTransport", "_input_name", "instance", "the same"),
    PrivateName(f"{_LK}.LiveKitInputTransport", "_resamplers", "instance",
                "per-participant resamplers, created by pipecat with no parameter"),
    PrivateName(f"{_LK}.LiveKitInputTransport", "_convert_livekit_audio_to_pipecat", "class",
                "overridden to create the resampler we choose first",
                ("audio_frame_event", "participant_id")),
    PrivateName(f"{_LK}.LiveKitOutputTransport", "_convert_pipecat_video_to_livekit", "class",
                "pipecat's own image conversion, measured by bench/republish_hop.py",
                ("frame",)),
    PrivateName(f"{_LK}.LiveKitOutputTransport", "_unsupported_video_formats", "instance",
                "the one attribute that conversion reads"),
    PrivateName("pipecat.processors.audio.vad_processor.VADProcessor", "_vad_controller",
                "instance", "the confirmed speech state: vad_confirmed_state()"),
    PrivateName("pipecat.audio.vad.vad_controller.VADController", "_vad_state", "instance",
                "the confirmed speech state; reset on a speaker change"),
    PrivateName(_VAD, "_vad_state", "instance",
                "what the analyzer suspects before it decides: vad_suspected_state()"),
    PrivateName(_VAD, "_vad_stopping_count", "instance", "quiet windows so far"),
    PrivateName(_VAD, "_vad_buffer", "instance", "audio not analysed yet; dropped on reset"),
    PrivateName("pipecat.audio.vad.silero.SileroVADAnalyzer", "_model", "instance",
                "Silero's recurrent state, reset on a speaker change"),
    PrivateName(_STT, "_user_speaking", "instance", "whether a segment is being collected"),
    PrivateName(_STT, "_audio_buffer", "instance", "the segment's audio"),
    PrivateName(_STT, "_segment_queue", "instance", "segments waiting for transcription"),
    PrivateName(_STT, "_user_id", "instance", "who sent the latest audio"),
    PrivateName(_STT, "_trailing_silence", "class", "the silence a segment ends with"),
    PrivateName(_STT, "_handle_user_stopped_speaking", "class",
                "the segment's end: SegmentedSTTHooks.on_user_stopped_speaking", ("frame",)),
    PrivateName("pipecat.services.whisper.stt.WhisperSTTService", "_model", "instance",
                "wrapped to add decode options pipecat does not pass: wrap_whisper_model()"),
    PrivateName("pipecat.services.piper.tts.PiperTTSService", "_voice", "instance",
                "synthesizing answers ahead: piper_voice()"),
    PrivateName("pipecat.services.tts_service.TTSService", "_stream_audio_frames_from_iterator",
                "class", "cached Piper audio streamed as pipecat streams its own",
                ("iterator", "in_sample_rate", "context_id")),
    PrivateName(f"{_HEYGEN}.video.HeyGenVideoService", "_client", "instance",
                "the client the service creates in setup(): HeyGenVideoServiceHooks"),
    PrivateName(f"{_HEYGEN}.client.HeyGenClient", "_process_video_frames", "class",
                "replaced on one client by a loop without the RGB round trip", ("stream",)),
    PrivateName(f"{_HEYGEN}.client.HeyGenClient", "_livekit_connect", "class",
                "skipped on one client in direct mode (no media to receive)"),
    PrivateName(f"{_HEYGEN}.client.HeyGenClient", "_initialize", "class",
                "timed on the next session's client: when the service started it "
                "(a rollover counts its lifetime from then)"),
    PrivateName(f"{_HEYGEN}.client.HeyGenClient", "_transport_ready", "instance",
                "frames are dropped until the output is ready: heygen_client_wants_video()"),
    PrivateName(f"{_HEYGEN}.client.HeyGenClient", "_video_frame_callback", "instance",
                "set once the service captures the avatar's video"),
    PrivateName(f"{_HEYGEN}.client.HeyGenClient", "_connected", "instance", "socket open"),
    PrivateName(f"{_HEYGEN}.client.HeyGenClient", "_livekit_room", "instance", "the avatar's room"),
    PrivateName(f"{_HEYGEN}.video.HeyGenVideoService", "_teardown", "class", "restart_session"),
    PrivateName(f"{_HEYGEN}.video.HeyGenVideoService", "_create_send_task", "class", "the same"),
    PrivateName(f"{_HEYGEN}.video.HeyGenVideoService", "_api_key", "instance",
                "the next session's client is built as setup() builds one: open_standby()"),
    PrivateName(f"{_HEYGEN}.video.HeyGenVideoService", "_session", "instance", "the same"),
    PrivateName(f"{_HEYGEN}.video.HeyGenVideoService", "_session_request", "instance",
                "the same"),
    PrivateName(f"{_HEYGEN}.video.HeyGenVideoService", "_service_type", "instance", "the same"),
    PrivateName(f"{_HEYGEN}.video.HeyGenVideoService", "_on_participant_video_frame", "class",
                "the standby's video callback (frames pass once it is current)",
                ("video_frame",)),
    PrivateName(f"{_HEYGEN}.video.HeyGenVideoService", "_on_participant_audio_data", "class",
                "the standby's audio, passed on once it is current", ("audio_frame",)),
    PrivateName(f"{_HEYGEN}.client.HeyGenClient", "_ws_send", "class",
                "speech handed to the next session at once, unpaced: heygen_send_speech()",
                ("message",)),
    PrivateName(f"{_HEYGEN}.client.HeyGenClient", "_audio_seconds_sent", "instance",
                "the speech pacing, taken over by the next session: heygen_take_pacing()"),
    PrivateName(f"{_HEYGEN}.client.HeyGenClient", "_next_send_time", "instance", "the same"),
    PrivateName("pipecat.transports.heygen.transport.HeyGenTransport", "_client", "instance",
                "the rehearsal room's session: heygen_transport_session()"),
    PrivateName(f"{_HEYGEN}.client.HeyGenClient", "_heyGen_session", "instance",
                "the user's LiveKit URL and token (pipecat only logs them): "
                "heygen_transport_session(); None: the session was refused"),
)

#: pipecat's subclass API that is private by name only: every pipecat processor and
#: service declares and fires its events with these (not wrapped, but checked)
SUBCLASS_API: tuple[PrivateName, ...] = (
    PrivateName("pipecat.utils.base_object.BaseObject", "_register_event_handler", "class",
                "declaring a processor's events", ("event_name",)),
    PrivateName("pipecat.utils.base_object.BaseObject", "_call_event_handler", "class",
                "firing them", ("event_name",)),
)
