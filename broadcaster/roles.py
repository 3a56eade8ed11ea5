"""Webinar roles, their LiveKit grants, and token minting.

The grants are the minimum each role needs (docs/security.md): a viewer publishes
nothing (no media, no data: captions on the pages come from the bot only), the
presenter publishes a microphone only and only while holding the floor, the bot
publishes camera + microphone + data (captions). Host actions go through our server,
which holds the API secret; the browser never does.
"""

from __future__ import annotations

import re
from datetime import timedelta
from enum import StrEnum

from livekit import api

from broadcaster.config import Settings
from broadcaster.lookalike import skeleton
from broadcaster.protocol import AVATAR_IDENTITY

IDENTITY_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
ROOM_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
MAX_NAME_CHARS = 64
#: identities the stack itself uses; a person may not take them
RESERVED_IDENTITIES = frozenset({AVATAR_IDENTITY, "avatar", "host", "recorder"})
#: display names the stack and the staff go by; nobody in the audience may take them (a
#: question "from the Host" with a link in it reaches every viewer before moderation)
RESERVED_NAMES = frozenset({"host", "avatar", "presenter", "moderator", "admin",
                            "administrator", "organizer", "organiser", "staff", "system",
                            "broadcaster", "support", "bot"})
#: the bot's own identity in direct mode is ``<bot_identity>`` + this (bot/pipeline.py)
LISTENER_SUFFIX = "-listener"
RELAY_SUFFIX = "-video"
"""The SVC relay's identity (bot identity + suffix): the avatar's video in a shard room."""


class Role(StrEnum):
    """Who a participant is in a webinar; the value goes into the token's ``role`` attribute."""

    VIEWER = "viewer"
    PRESENTER = "presenter"
    HOST = "host"
    BOT = "bot"


class InvalidInput(ValueError):
    """A user-supplied value is unacceptable; the message names it."""


MIC = api.TrackSource.Name(api.TrackSource.MICROPHONE).lower()
CAMERA = api.TrackSource.Name(api.TrackSource.CAMERA).lower()


def grants_for(role: Role, room: str, *, speaking: bool = True) -> api.VideoGrants:
    """Return the minimum LiveKit grant for ``role`` in ``room``.

    A presenter publishes her microphone only while ``speaking`` (holding the floor).
    """
    if role is Role.VIEWER:
        return api.VideoGrants(
            room_join=True, room=room, can_publish=False, can_subscribe=True,
            can_publish_data=False, can_publish_sources=[],
        )
    if role is Role.PRESENTER:
        return api.VideoGrants(
            room_join=True, room=room, can_publish=speaking, can_subscribe=True,
            can_publish_data=False, can_publish_sources=[MIC] if speaking else [],
        )
    if role is Role.HOST:
        return api.VideoGrants(
            room_join=True, room=room, room_admin=True, can_publish=False,
            can_subscribe=True, can_publish_data=False, can_publish_sources=[],
            # visible (a console publishes nothing): LiveKit's pushed numParticipants counts
            # it, and the pages can only take out of the audience count whom they see
        )
    if role is Role.BOT:
        return api.VideoGrants(
            room_join=True, room=room, can_publish=True, can_subscribe=True,
            can_publish_data=True, can_publish_sources=[CAMERA, MIC],
            can_update_own_metadata=True,  # its ``avatar`` attribute tells pages the truth
        )
    raise InvalidInput(f"unknown role {role!r}")


def speaker_permission(speaking: bool, *, hidden: bool) -> api.ParticipantPermission:
    """Return the permissions promote (speaking), demote and the floor guard apply live.

    A microphone for the speaker, never data (only the bot sends captions); a hidden
    viewer becomes visible while speaking.
    """
    return api.ParticipantPermission(
        can_subscribe=True,
        can_publish=speaking,
        can_publish_data=False,
        can_publish_sources=[api.TrackSource.MICROPHONE] if speaking else [],
        hidden=hidden and not speaking,
    )


def stack_identities(settings: Settings) -> frozenset[str]:
    """Identities of the stack's own participants in a stage room (never a person's)."""
    return frozenset({AVATAR_IDENTITY, settings.bot_identity,
                      settings.bot_identity + LISTENER_SUFFIX,
                      settings.bot_identity + RELAY_SUFFIX})


def check_identity(identity: str, *, settings: Settings | None = None) -> str:
    """Return ``identity`` if a person may take it, else raise InvalidInput naming it.

    With ``settings``, the stack's own identities are reserved too, so nobody can pose as
    the bot or its listener.
    """
    if not isinstance(identity, str) or not IDENTITY_RE.fullmatch(identity):
        shown = identity if isinstance(identity, str) and len(identity) <= 80 else "<long value>"
        raise InvalidInput(
            f"identity {shown!r} must be 1-64 characters of letters, digits, '_', '.', '-' "
            "and start with a letter or digit"
        )
    reserved = set(RESERVED_IDENTITIES)
    if settings is not None:
        reserved |= {i.lower() for i in stack_identities(settings)}
    if identity.lower() in reserved:
        raise InvalidInput(f"identity {identity!r} is reserved")
    return identity


def check_room(room: str) -> str:
    """Return ``room`` if it is a well-formed room name, else raise InvalidInput naming it."""
    if not isinstance(room, str) or not ROOM_RE.fullmatch(room):
        shown = room if isinstance(room, str) and len(room) <= 80 else "<long value>"
        raise InvalidInput(
            f"room {shown!r} must be 1-63 characters of lowercase letters, digits and '-'"
        )
    return room


def check_name(name: str | None, fallback: str, *, staff: Settings | None = None) -> str:
    """Return a display name: short and printable, ``fallback`` when empty or blank.

    With ``staff`` (the settings; for a viewer's name) the staff's and the stack's names
    are refused.
    """
    if name is None or name == "":
        return fallback
    if not isinstance(name, str) or len(name) > MAX_NAME_CHARS or not name.isprintable():
        raise InvalidInput(f"name must be at most {MAX_NAME_CHARS} printable characters")
    name = name.strip() or fallback
    return name if staff is None else check_audience_name(name, staff)


def name_key(name: str) -> str:
    """``name`` as it reads, without a leading "the".

    ``lookalike.skeleton``: look-alike letters, marks and invisible characters folded;
    letters and digits only.
    """
    key = skeleton(name)
    return key.removeprefix("the") if key.removeprefix("the") else key


def check_audience_name(name: str, settings: Settings | None = None) -> str:
    """Return ``name`` unless it reads as a staff or stack name (InvalidInput naming it)."""
    reserved = {name_key(w): w for w in sorted(RESERVED_NAMES)}
    if settings is not None:
        reserved |= {name_key(i): i for i in sorted(stack_identities(settings))}
    word = reserved.get(name_key(name))
    if word is not None:
        raise InvalidInput(f"name {name!r} reads as {word!r}, which is reserved for the "
                           "stack and the staff")
    return name


def mint_token(
    settings: Settings,
    role: Role | str,
    room: str,
    identity: str,
    *,
    name: str | None = None,
    ttl_seconds: int | None = None,
    metadata: str = "",
    speaking: bool = True,
) -> str:
    """Mint a signed LiveKit JWT for ``identity`` as ``role`` in ``room``.

    With ``speaking`` False a presenter's token comes without the floor, so without
    publishing.
    """
    try:
        role = Role(role)
    except ValueError as exc:
        raise InvalidInput(
            f"role {role!r} must be one of {', '.join(r.value for r in Role)}"
        ) from exc
    check_room(room)
    if role is not Role.BOT:
        check_identity(identity, settings=settings)
    elif not IDENTITY_RE.fullmatch(identity):
        raise InvalidInput(f"bot identity {identity!r} is malformed")
    ttl = settings.token_ttl_seconds if ttl_seconds is None else ttl_seconds
    if not 60 <= ttl <= settings.max_token_ttl_seconds:
        raise InvalidInput(
            f"ttl {ttl} s must be between 60 and {settings.max_token_ttl_seconds} s"
        )
    grants = grants_for(role, room, speaking=speaking)
    if role is Role.VIEWER and settings.viewers_hidden:
        grants.hidden = True
    token = (
        api.AccessToken(settings.livekit_api_key, settings.livekit_api_secret)
        .with_identity(identity)
        .with_name(check_name(name, identity))
        .with_grants(grants)
        .with_ttl(timedelta(seconds=ttl))
        .with_attributes({"role": role.value})
    )
    if role is Role.BOT:
        # LiveKit counts every participant but agents (and recorders) in the room's
        # num_participants, which it pushes to every page: the audience count
        token = token.with_kind("agent")
    if metadata:
        token = token.with_metadata(metadata)
    return token.to_jwt()


def verify_token(settings: Settings, token: str) -> api.access_token.Claims:
    """Check a token we issued (signature, expiry); raises InvalidInput when bad."""
    try:
        verifier = api.TokenVerifier(settings.livekit_api_key, settings.livekit_api_secret)
        return verifier.verify(token)
    except Exception as exc:  # jwt raises several types; all mean "not ours / expired"
        raise InvalidInput("token is invalid or expired") from exc
