"""Assemble the broadcast bot: a plain pipecat pipeline.

    LiveKit input (stage room, as the bot)
      → SpeakerGate → VAD → STT → speaker captions → (questions the host or speaker
        picked, from the web app) → responder (FAQ or LLM) → TTS
      → avatar captions → HeyGenVideoService (LIVE_AVATAR; local service or HeyGen)
      → LiveKitRepublisher (avatar video + speech as the bot's camera + microphone)

The bot is ONE participant in the stage room: the republisher publishes through
the transport's own room connection.

Direct mode (``avatar_mode = "direct"``, docs/modes.md): the avatar service joins
the stage room itself, as ``bot_identity`` (LiveAvatar's ``livekit_config``), so
there is no republisher and no recorder; the bot listens as
``<bot_identity>-listener`` and drives the avatar's speech over its control socket.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from loguru import logger
from pipecat.audio.resamplers.soxr_stream_resampler import SOXRStreamAudioResampler
from pipecat.pipeline.pipeline import Pipeline
from pipecat.services.heygen.api_liveavatar import (
    CustomSDKLiveKitConfig,
    LiveAvatarApi,
    LiveAvatarNewSessionRequest,
    VideoEncoding,
    VideoSettings,
)
from pipecat.services.heygen.client import ServiceType
from pipecat.transports.livekit.transport import LiveKitParams, LiveKitTransport

from broadcaster.bot.asked import AskedQuestions
from broadcaster.bot.avatar_service import FastHeyGenVideoService
from broadcaster.bot.captions import CaptionProcessor, CaptionPublisher
from broadcaster.bot.recorder import Recorder
from broadcaster.bot.republisher import LiveKitRepublisher, RepublishEncoding
from broadcaster.bot.responder import Responder, make_responder
from broadcaster.bot.shard_fanout import ShardFanout
from broadcaster.bot.speaker_gate import SpeakerGate
from broadcaster.config import Settings
from broadcaster.roles import Role, mint_token
from broadcaster.sdk_internals import LiveKitTransportWithResampler, transport_room
from broadcaster.speech import SpeakerVADProcessor, make_stt, make_tts, make_vad


@dataclass
class BotParts:
    """The assembled pipeline and the parts the runner and tests look at."""

    pipeline: Pipeline
    transport: LiveKitTransport
    gate: SpeakerGate
    avatar: FastHeyGenVideoService
    republisher: LiveKitRepublisher | None
    """None in direct mode: the avatar publishes into the stage room itself."""
    captions: CaptionPublisher
    recorder: Recorder | None = None
    shards: ShardFanout | None = None
    """The audience shards' publisher (``audience_shards`` > 0); started by the runner."""
    avatar_captions: CaptionProcessor | None = None
    """The avatar's captions: the runner closes the line in flight before it stops."""
    responder: Responder | None = None
    """The keyless responder (its replies are counted in the bot's metrics)."""


def point_liveavatar_at(settings: Settings) -> None:
    """Pipecat reads ``LiveAvatarApi.BASE_URL`` on every request: set it before start."""
    LiveAvatarApi.BASE_URL = settings.effective_liveavatar_api_url


def listener_identity(settings: Settings) -> str:
    """Return the bot's own identity in direct mode (the avatar takes ``bot_identity``)."""
    return f"{settings.bot_identity}-listener"


def avatar_session_request(settings: Settings, room: str = "") -> LiveAvatarNewSessionRequest:
    """Return the LiveAvatar session the bot asks for; in direct mode, into ``room``."""
    codec = VideoEncoding.H264 if settings.video_codec.upper() == "H264" else VideoEncoding.VP8
    avatar_id = settings.effective_avatar_id
    if not settings.use_heygen and settings.video_height > settings.video_width:
        avatar_id = f"{avatar_id}-portrait"  # the local service's portrait variant
    livekit_config = None
    if settings.avatar_mode == "direct":
        host = urlsplit(settings.browser_livekit_url).hostname or ""
        if settings.use_heygen and (host == "localhost" or host.startswith("127.")):
            logger.warning(f"direct mode: HeyGen cannot reach {settings.browser_livekit_url}; "
                           "set BROADCASTER_LIVEKIT_PUBLIC_URL to your public wss:// URL")
        ttl = min(settings.avatar_max_session_seconds + 300, settings.max_token_ttl_seconds)
        livekit_config = CustomSDKLiveKitConfig(
            livekit_url=settings.browser_livekit_url,  # the avatar service must reach it
            livekit_room=room,
            livekit_client_token=mint_token(settings, Role.BOT, room, settings.bot_identity,
                                            name="Avatar", ttl_seconds=ttl),
        )
    return LiveAvatarNewSessionRequest(
        avatar_id=avatar_id,
        is_sandbox=settings.avatar_sandbox if settings.use_heygen or settings.avatar_emulate_limits
        else False,
        video_settings=VideoSettings(encoding=codec),
        livekit_config=livekit_config,
        max_session_duration=settings.avatar_max_session_seconds,
    )


def prompt_resampler() -> SOXRStreamAudioResampler:
    """Resample each voice 48 -> 16 kHz without holding it back.

    pipecat's default stream resampler (soxr "VHQ") hands out audio in 70 ms lumps
    (1100 samples every 7th 10 ms frame), so the VAD hears the speaker ~50 ms late on
    average: barge-in and end-of-speech detection both pay it. soxr "LQ" still
    low-passes properly and releases audio every 10-20 ms (measured in the stage room:
    VAD start ~60 ms sooner after the speaker's onset).
    """
    return SOXRStreamAudioResampler(quality="LQ")


def build_bot(settings: Settings, room: str, http: aiohttp.ClientSession) -> BotParts:
    """Every processor of the bot, in order, for the stage ``room``."""
    point_liveavatar_at(settings)
    direct = settings.avatar_mode == "direct"
    if direct:
        token = mint_token(settings, Role.BOT, room, listener_identity(settings),
                           name="Avatar (listener)")
    else:
        token = mint_token(settings, Role.BOT, room, settings.bot_identity, name="Avatar")
    transport = LiveKitTransportWithResampler(
        settings.effective_livekit_url,
        token,
        room,
        params=LiveKitParams(audio_in_enabled=True, audio_out_enabled=False,
                             video_out_enabled=False),
        make_resampler=prompt_resampler,
    )
    gate = SpeakerGate()
    gate.follow_transport(transport)
    asked = AskedQuestions()  # "ask the avatar": questions the host or speaker picked
    asked.follow_transport(transport)
    captions = CaptionPublisher.for_session(settings, room, lambda: transport_room(transport))
    chain = make_responder(settings)
    avatar = FastHeyGenVideoService(
        api_key=settings.liveavatar_key,
        session=http,
        service_type=ServiceType.LIVE_AVATAR,
        session_request=avatar_session_request(settings, room),
        receive_media=not direct,
    )
    republisher = None if direct else LiveKitRepublisher(
        room=transport,
        encoding=RepublishEncoding.from_settings(settings, simulcast=settings.video_simulcast),
        forward_media=settings.record, bot_speaking_frames=True,  # media on to the recorder
        mute_on_speech_start=True,  # every VAD start interrupts (make_responder)
    )
    recorder = Recorder.for_session(settings, room) if settings.record and not direct else None
    shards = None
    if republisher is not None and settings.audience_shards:
        shards = ShardFanout(settings, room, republisher.encoding)
        republisher.tap(shards.offer_video, shards.offer_audio)
        captions.also = shards.send_text
    avatar_captions = CaptionProcessor(captions, "avatar", interrupt_on_speech_start=True)
    processors: list[Any] = [
        transport.input(),
        gate,
        SpeakerVADProcessor(vad_analyzer=make_vad(settings)),
        make_stt(settings),
        CaptionProcessor(captions, "speaker", speaker=lambda: gate.speaker),
        asked,
        *chain.processors,
        make_tts(settings, chain.responder.known_answers() if chain.responder else ()),
        avatar_captions,
        avatar,
        *([republisher] if republisher else []),
        *([recorder] if recorder else []),
        *chain.after_output,
    ]
    return BotParts(Pipeline(processors), transport, gate, avatar, republisher, captions,
                    recorder, shards, avatar_captions, chain.responder)
