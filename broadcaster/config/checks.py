"""Checks of a loaded :class:`~broadcaster.config.Settings`.

A bad value stops start-up with a :class:`ConfigError` naming it, before any process
starts.
"""

from __future__ import annotations

import dataclasses
import re
from typing import TYPE_CHECKING

from broadcaster.config.sources import ConfigError, env_name

if TYPE_CHECKING:
    from broadcaster.config import Settings

STT_PROVIDERS = ("whisper", "openai", "deepgram")
TTS_PROVIDERS = ("piper", "openai", "cartesia", "deepgram", "elevenlabs")
AVATAR_MODES = ("relay", "direct")
LOG_FORMATS = ("text", "json")


#: the deploy examples' placeholders (deploy/.env.example, k8s/secret.example.yaml)
PLACEHOLDER = "change-me"
#: a host key anyone can guess opens every host action (there is no second factor)
MIN_HOST_KEY_CHARS = 16


def check_secrets(s: Settings) -> None:
    """Refuse secrets copied from the deploy examples and a short host key.

    The examples are public: a deployment that kept ``LIVEKIT_API_SECRET`` from them lets
    anyone mint any LiveKit token (publish as the avatar, administer every room). The
    message names the setting, never its value.
    """
    for f in dataclasses.fields(s):
        value = getattr(s, f.name)
        if f.metadata.get("secret") and isinstance(value, str) and PLACEHOLDER in value.lower():
            raise ConfigError(f"{env_name(f)} is still the example's placeholder: set a "
                              "random value (e.g. openssl rand -base64 32)")
    if s.host_key and len(s.host_key) < MIN_HOST_KEY_CHARS:
        raise ConfigError(f"BROADCASTER_HOST_KEY has {len(s.host_key)} characters: use at "
                          f"least {MIN_HOST_KEY_CHARS} random ones (e.g. openssl rand -hex 24),"
                          " or leave it unset to have one generated")


def validate(s: Settings) -> None:
    """Raise :class:`ConfigError` for the first unacceptable value in ``s``."""
    check_secrets(s)
    for name in ("livekit_port", "livekit_rtc_tcp_port", "livekit_rtc_udp_port",
                 "web_port", "avatar_port", "bot_metrics_port"):
        port = getattr(s, name)
        if not 0 <= port <= 65535:
            raise ConfigError(f"{name}={port} is not a TCP/UDP port (0-65535)")
    if s.livekit_url and not s.livekit_url.startswith(("ws://", "wss://")):
        raise ConfigError(f"LIVEKIT_URL={s.livekit_url!r} must start with ws:// or wss://")
    if s.livekit_public_url and not s.livekit_public_url.startswith(
            ("ws://", "wss://")):
        raise ConfigError(f"livekit_public_url={s.livekit_public_url!r} must start "
                          "with ws:// or wss://")
    if s.log_format not in LOG_FORMATS:
        raise ConfigError(f"log_format={s.log_format!r} must be one of {', '.join(LOG_FORMATS)}")
    if s.avatar_mode not in AVATAR_MODES:
        raise ConfigError(f"avatar_mode={s.avatar_mode!r} must be one of "
                          f"{', '.join(AVATAR_MODES)}")
    if s.avatar_mode == "direct" and s.record:
        raise ConfigError("record=true needs avatar_mode=relay: in direct mode the "
                          "avatar's media never passes through the bot")
    if s.livekit_url and not s.livekit_api_secret:
        raise ConfigError("LIVEKIT_URL is set, so LIVEKIT_API_SECRET must be set too")
    if not 60 <= s.token_ttl_seconds <= s.max_token_ttl_seconds:
        raise ConfigError(
            f"token_ttl_seconds={s.token_ttl_seconds} must be between 60 and "
            f"max_token_ttl_seconds={s.max_token_ttl_seconds}"
        )
    if s.video_codec.upper() not in ("VP8", "H264"):
        raise ConfigError(f"video_codec={s.video_codec!r} must be VP8 or H264")
    if s.video_svc and not re.fullmatch(r"L[1-3]T[1-3](_KEY)?", s.video_svc):
        raise ConfigError(f"video_svc={s.video_svc!r} must be empty or an SVC mode "
                          "such as L3T1, L3T3 or L3T3_KEY")
    if not 0 <= s.audience_shards <= 64:
        raise ConfigError(f"audience_shards={s.audience_shards} must be between 0 and 64")
    if s.shard_video not in ("auto", "relay", "encode_once"):
        raise ConfigError(f"shard_video={s.shard_video!r} must be auto, relay or encode_once")
    if s.shard_video == "relay" and not re.fullmatch(r"L[23]T[1-3](_KEY)?", s.video_svc):
        raise ConfigError(f"shard_video=relay needs video_svc with spatial layers (L2.. or "
                          f"L3..), not {s.video_svc!r}: the relay copies the stage's layers")
    if s.shard_capacity < 1:
        raise ConfigError(f"shard_capacity={s.shard_capacity} must be at least 1")
    if s.audience_shards and s.avatar_mode != "relay":
        raise ConfigError("audience_shards needs avatar_mode=relay: the bot publishes the "
                          "avatar into the shard rooms")
    if s.video_svc and s.video_simulcast:
        raise ConfigError("video_svc and video_simulcast exclude each other (SVC layers "
                          "are one stream; simulcast is several)")
    if s.video_width % 2 or s.video_height % 2 or s.video_width <= 0:
        raise ConfigError(
            f"video size {s.video_width}x{s.video_height} must be positive and even"
        )
    if not 1 <= s.video_fps <= 60:
        raise ConfigError(f"video_fps={s.video_fps} must be between 1 and 60")
    if not 1 <= s.questions_per_minute <= 600:
        raise ConfigError(
            f"questions_per_minute={s.questions_per_minute} must be between 1 and 600")
    if s.identity_claim_seconds < s.token_ttl_seconds:
        raise ConfigError(
            f"identity_claim_seconds={s.identity_claim_seconds} must be at least "
            f"token_ttl_seconds={s.token_ttl_seconds}: an identity must not go to "
            "someone else while a token for it still works")
    for name in ("join_burst", "question_burst", "audience_action_burst",
                 "audience_actions_per_minute", "avatar_max_pending_sessions",
                 "host_key_failure_burst", "shard_placements_max",
                 "avatar_max_stopped_sessions"):
        if getattr(s, name) < 1:
            raise ConfigError(f"{name}={getattr(s, name)} must be at least 1")
    for name in ("join_rate_per_minute", "question_rate_per_minute",
                 "audience_action_rate_per_minute", "host_key_failure_rate_per_minute",
                 "http_idle_timeout_seconds", "http_body_timeout_seconds",
                 "avatar_unstarted_seconds", "webhook_dedupe_seconds"):
        if not getattr(s, name) > 0:
            raise ConfigError(f"{name}={getattr(s, name)} must be more than 0")
    if s.floor_reconcile_seconds < 0:
        raise ConfigError(
            f"floor_reconcile_seconds={s.floor_reconcile_seconds} must be 0 (off) or more")
    try:
        _ = s.trusted_proxy_networks
    except ValueError as exc:
        raise ConfigError(f"trusted_proxies={s.trusted_proxies!r}: {exc}") from None
    if s.stt_provider not in STT_PROVIDERS:
        raise ConfigError(
            f"stt_provider={s.stt_provider!r} must be one of {', '.join(STT_PROVIDERS)}"
        )
    if s.tts_provider not in TTS_PROVIDERS:
        raise ConfigError(
            f"tts_provider={s.tts_provider!r} must be one of {', '.join(TTS_PROVIDERS)}"
        )
    if not 1 <= s.stt_beam_size <= 10:
        raise ConfigError(f"stt_beam_size={s.stt_beam_size} must be between 1 and 10")
    if not 0.02 <= s.vad_start_secs <= 1.0:
        raise ConfigError(f"vad_start_secs={s.vad_start_secs} must be between 0.02 and 1")
    if not 0.0 <= s.vad_min_volume <= 1.0:
        raise ConfigError(f"vad_min_volume={s.vad_min_volume} must be between 0 and 1")
    if not 0.0 <= s.answer_threshold <= 1.0:
        raise ConfigError(
            f"answer_threshold={s.answer_threshold} must be between 0 and 1")
    if not 1 <= s.llm_context_topics <= 20:
        raise ConfigError(
            f"llm_context_topics={s.llm_context_topics} must be between 1 and 20")
    if not 16 <= s.llm_max_tokens <= 4096:
        raise ConfigError(f"llm_max_tokens={s.llm_max_tokens} must be between 16 and 4096")
    if not 0.05 <= s.vad_stop_secs <= 3.0:
        raise ConfigError(f"vad_stop_secs={s.vad_stop_secs} must be between 0.05 and 3")
