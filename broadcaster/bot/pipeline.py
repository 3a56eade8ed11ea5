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
from pipecat.pipeline.pipeline import Pipeline
from pipecat.services.heygen.api_liveavatar import (
    LiveAvatarApi,
    LiveAvatarNewSessionRequest,
    VideoEncoding,
    VideoSettings,
)
from pipecat.services.heygen.client import ServiceType
from pipecat.transports.livekit.transport import LiveKitParams, LiveKitTransport

from broadcaster.bot.avatar_frames import FastHeyGenVideoService
from broadcaster.bot.captions import CaptionProcessor, CaptionPublisher
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


def build_bot(settings: Settings, room: str, http: aiohttp.ClientSession) -> BotParts:
    """Every processor of the bot, in order, for the stage ``room``."""
    point_liveavatar_at(settings)
    token = mint_token(settings, Role.BOT, room, settings.bot_identity, name="Avatar")
    transport = LiveKitTransport(
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
        room=transport, encoding=RepublishEncoding.from_settings(settings)
    )
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
        *chain.after_output,
    ]
    return BotParts(Pipeline(processors), transport, gate, avatar, republisher, captions)
