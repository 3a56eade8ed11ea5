"""Validation of LiveAvatar session requests: a body in, a typed request or a reason out.

The body pipecat 1.14 sends to ``POST /v1/sessions/token`` (``api_liveavatar.py``)::

    {"mode": "LITE", "avatar_id": str, "is_sandbox": bool,
     "video_settings": {"encoding": "H264" | "VP8", "quality": "low" .. "very_high"},
     "avatar_persona": {...}?, "max_session_duration": int?,
     "livekit_config": {"livekit_url", "livekit_room", "livekit_client_token"}?}

Unknown fields are ignored (HeyGen adds fields; clients may send them); wrong
types and values are refused with a sentence naming the field, which the API
returns as a 422. One extension: ``video_settings.orientation``
(``landscape`` | ``portrait``); the avatar ids ``local-presenter-landscape`` and
``local-presenter-portrait`` select the same through the unmodified pipecat client.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from broadcaster.config import LOCAL_AVATAR_ID

#: avatar id -> forced orientation (None: the configured video size as is)
AVATARS: dict[str, str | None] = {
    LOCAL_AVATAR_ID: None,
    f"{LOCAL_AVATAR_ID}-landscape": "landscape",
    f"{LOCAL_AVATAR_ID}-portrait": "portrait",
}
CODECS = ("H264", "VP8")
#: video quality -> share of the configured maximum bitrate
QUALITY_BITRATE = {"low": 0.4, "medium": 0.7, "high": 1.0, "very_high": 1.5}
ORIENTATIONS = ("landscape", "portrait")
MAX_FIELD_CHARS = 4096
#: a week; the service's own ceiling (avatar_max_session_seconds) applies after this
MAX_DURATION = 7 * 24 * 3600


class InvalidRequest(ValueError):
    """The request body is malformed; the message names the field (HTTP 422)."""


def check_unicode(value: Any) -> None:
    r"""Refuse strings (keys included) that hold lone surrogates.

    JSON lets ``\ud800`` through, but no UTF-8 encoder (a token, a log line, LiveKit)
    takes it.
    """
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                raise InvalidRequest("the body holds a lone surrogate (not valid Unicode)") \
                    from None
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def _choice(value: Any, name: str, allowed: Any) -> str:
    """Return ``value`` when it is one of ``allowed`` (strings), else a 422 naming the field.

    A list or object is checked by type first: it is unhashable, and must not become a 500.
    """
    if not isinstance(value, str) or value not in allowed:
        raise InvalidRequest(f"{name} must be one of {', '.join(allowed)}")
    return value


@dataclass(frozen=True)
class LiveKitTarget:
    """Direct mode: publish into the caller's room with the caller's token."""

    url: str
    room: str
    token: str


@dataclass(frozen=True)
class SessionRequest:
    """A validated ``/sessions/token`` body: what the session will render and where."""

    avatar_id: str
    mode: str = "LITE"
    is_sandbox: bool = False
    codec: str | None = None
    """None: the configured default codec."""
    quality: str = "high"
    orientation: str | None = None
    max_session_duration: int | None = None
    livekit: LiveKitTarget | None = None


def _string(value: Any, name: str, *, required: bool = True) -> str | None:
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip():
        raise InvalidRequest(f"{name} must be a non-empty string")
    if len(value) > MAX_FIELD_CHARS:
        raise InvalidRequest(f"{name} is longer than {MAX_FIELD_CHARS} characters")
    return value


def _object(value: Any, name: str) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise InvalidRequest(f"{name} must be a JSON object")
    return value


def parse_token_request(body: Any) -> SessionRequest:
    """Validate a ``/sessions/token`` body; raises InvalidRequest with the reason."""
    if not isinstance(body, dict):
        raise InvalidRequest("the body must be a JSON object")
    mode = body.get("mode", "LITE")
    if mode is None:
        mode = "LITE"
    if not isinstance(mode, str) or mode.upper() not in ("LITE", "FULL", "CUSTOM"):
        raise InvalidRequest("mode must be \"LITE\"")
    if mode.upper() != "LITE":
        raise InvalidRequest(
            f"mode {mode!r} is not emulated: the local avatar only speaks audio it is "
            "given (LITE); FULL mode's own STT/LLM/voice are HeyGen's"
        )
    avatar_id = _string(body.get("avatar_id"), "avatar_id")
    assert avatar_id is not None
    sandbox = body.get("is_sandbox", False)
    if sandbox is None:
        sandbox = False
    if not isinstance(sandbox, bool):
        raise InvalidRequest("is_sandbox must be true or false")

    codec: str | None = None
    quality = "high"
    orientation: str | None = None
    video = _object(body.get("video_settings"), "video_settings")
    if video is not None:
        if video.get("encoding") is not None:
            enc = video["encoding"]
            if not isinstance(enc, str) or enc.upper() not in CODECS:
                raise InvalidRequest("video_settings.encoding must be \"H264\" or \"VP8\"")
            codec = enc.upper()
        if video.get("quality") is not None:
            quality = _choice(video["quality"], "video_settings.quality", QUALITY_BITRATE)
        if video.get("orientation") is not None:
            orientation = _choice(video["orientation"], "video_settings.orientation",
                                  ORIENTATIONS)

    duration = body.get("max_session_duration")
    if duration is not None and (
        isinstance(duration, bool) or not isinstance(duration, int)
        or not 1 <= duration <= MAX_DURATION
    ):
        raise InvalidRequest(
            f"max_session_duration must be a positive integer of seconds (at most {MAX_DURATION})")

    persona = _object(body.get("avatar_persona"), "avatar_persona")
    if persona is not None:
        for key in ("voice_id", "context_id", "language"):
            if persona.get(key) is not None and not isinstance(persona[key], str):
                raise InvalidRequest(f"avatar_persona.{key} must be a string")

    target: LiveKitTarget | None = None
    lk = _object(body.get("livekit_config"), "livekit_config")
    if lk is not None:
        url = _string(lk.get("livekit_url"), "livekit_config.livekit_url")
        room = _string(lk.get("livekit_room"), "livekit_config.livekit_room")
        token = _string(lk.get("livekit_client_token"), "livekit_config.livekit_client_token")
        assert url is not None and room is not None and token is not None
        if not url.startswith(("ws://", "wss://", "http://", "https://")):
            raise InvalidRequest("livekit_config.livekit_url must be a ws(s):// or http(s):// URL")
        target = LiveKitTarget(url=url, room=room, token=token)

    return SessionRequest(
        avatar_id=avatar_id,
        mode="LITE",
        is_sandbox=sandbox,
        codec=codec,
        quality=quality,
        orientation=orientation,
        max_session_duration=duration,
        livekit=target,
    )


def video_size(width: int, height: int, orientation: str | None) -> tuple[int, int]:
    """Turn the configured size to ``orientation`` when one is asked for."""
    if orientation == "landscape":
        return max(width, height), min(width, height)
    if orientation == "portrait":
        return min(width, height), max(width, height)
    return width, height
