"""Assemble the broadcast bot: a plain pipecat pipeline.

    LiveKit input (stage room, as the bot)
      → SpeakerGate → VAD → STT → speaker captions → responder (FAQ or LLM) → TTS
      → avatar captions → HeyGenVideoService (LIVE_AVATAR; local service or HeyGen)
      → LiveKitRepublisher (avatar video + speech as the bot's camera + microphone)

The bot is ONE participant in the stage room: the republisher publishes through
the transport's own room connection.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import aiohttp
from pipecat.audio.resamplers.soxr_stream_resampler import SOXRStreamAudioResampler
from pipecat.pipeline.pipeline import Pipeline
from pipecat.services.heygen.api_liveavatar import (
    LiveAvatarApi,
    LiveAvatarNewSessionRequest,
    VideoEncoding,
    VideoSettings,
)
from pipecat.services.heygen.client import ServiceType
from pipecat.transports.livekit.transport import (
    LiveKitInputTransport,
    LiveKitParams,
    LiveKitTransport,
)

from broadcaster.bot.avatar_frames import FastHeyGenVideoService
from broadcaster.bot.captions import CaptionProcessor, CaptionPublisher
from broadcaster.bot.recorder import Recorder
from broadcaster.bot.republisher import LiveKitRepublisher, RepublishEncoding
from broadcaster.bot.responder import make_responder
from broadcaster.bot.speaker_gate import SpeakerGate, SpeakerVADProcessor
from broadcaster.config import Settings
from broadcaster.roles import Role, mint_token
from broadcaster.speech import make_stt, make_tts, make_vad


@dataclass
class BotParts:
    """The assembled pipeline and the parts the runner and tests look at."""

    pipeline: Pipeline
    transport: LiveKitTransport
    gate: SpeakerGate
    avatar: FastHeyGenVideoService
    republisher: LiveKitRepublisher
    captions: CaptionPublisher
    recorder: Recorder | None = None


def point_liveavatar_at(settings: Settings) -> None:
    """pipecat reads ``LiveAvatarApi.BASE_URL`` on every request: set it before start."""
    LiveAvatarApi.BASE_URL = settings.effective_liveavatar_api_url


def avatar_session_request(settings: Settings) -> LiveAvatarNewSessionRequest:
    codec = VideoEncoding.H264 if settings.video_codec.upper() == "H264" else VideoEncoding.VP8
    avatar_id = settings.effective_avatar_id
    if not settings.use_heygen and settings.video_height > settings.video_width:
        avatar_id = f"{avatar_id}-portrait"  # the local service's portrait variant
    return LiveAvatarNewSessionRequest(
        avatar_id=avatar_id,
        is_sandbox=settings.avatar_sandbox if settings.use_heygen else False,
        video_settings=VideoSettings(encoding=codec),
        max_session_duration=settings.avatar_max_session_seconds,
    )


class PromptLiveKitInput(LiveKitInputTransport):
    """pipecat's LiveKit input, resampling each voice 48 -> 16 kHz without holding it back.

    pipecat's default stream resampler (soxr "VHQ") hands out audio in 70 ms lumps
    (1100 samples every 7th 10 ms frame), so the VAD hears the speaker ~50 ms late on
    average: barge-in and end-of-speech detection both pay it. soxr "LQ" still
    low-passes properly and releases audio every 10-20 ms (measured in the stage room:
    VAD start ~60 ms sooner after the speaker's onset).
    """

    async def _convert_livekit_audio_to_pipecat(self, audio_frame_event: Any,
                                                participant_id: str) -> Any:
        if participant_id not in self._resamplers:  # pipecat-ai 1.14 internals (pinned)
            self._resamplers[participant_id] = SOXRStreamAudioResampler(quality="LQ")
        return await super()._convert_livekit_audio_to_pipecat(audio_frame_event, participant_id)


class StageTransport(LiveKitTransport):
    """``LiveKitTransport`` whose input is :class:`PromptLiveKitInput`."""

    def input(self) -> LiveKitInputTransport:
        if not self._input:
            self._input = PromptLiveKitInput(
                self, self._client, self._params, name=self._input_name
            )
        return self._input


def build_bot(settings: Settings, room: str, http: aiohttp.ClientSession) -> BotParts:
    """Every processor of the bot, in order, for the stage ``room``."""
    point_liveavatar_at(settings)
    token = mint_token(settings, Role.BOT, room, settings.bot_identity, name="Avatar")
    transport = StageTransport(
        settings.effective_livekit_url,
        token,
        room,
        params=LiveKitParams(audio_in_enabled=True, audio_out_enabled=False,
                             video_out_enabled=False),
    )
    gate = SpeakerGate()
    gate.follow_transport(transport)
    captions = CaptionPublisher.for_session(settings, room, lambda: transport._client.room)
    chain = make_responder(settings)
    avatar = FastHeyGenVideoService(
        api_key=settings.liveavatar_key,
        session=http,
        service_type=ServiceType.LIVE_AVATAR,
        session_request=avatar_session_request(settings),
    )
    republisher = LiveKitRepublisher(
        room=transport,
        encoding=RepublishEncoding.from_settings(settings, simulcast=settings.video_simulcast),
        forward_media=settings.record, bot_speaking_frames=True,  # media on to the recorder
    )
    recorder = Recorder.for_session(settings, room) if settings.record else None
    processors: list[Any] = [
        transport.input(),
        gate,
        SpeakerVADProcessor(vad_analyzer=make_vad(settings)),
        make_stt(settings),
        CaptionProcessor(captions, "speaker", speaker=lambda: gate.speaker),
        *chain.processors,
        make_tts(settings),
        CaptionProcessor(captions, "avatar"),
        avatar,
        republisher,
        *([recorder] if recorder else []),
        *chain.after_output,
    ]
    return BotParts(Pipeline(processors), transport, gate, avatar, republisher, captions,
                    recorder)
