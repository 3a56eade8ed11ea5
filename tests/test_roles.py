"""Tokens carry the minimum grant per role; bad identities and rooms are refused."""

import pytest
from livekit import api

from broadcaster.config import Settings
from broadcaster.roles import InvalidInput, Role, mint_token, verify_token


def _claims(settings, role, identity="alice", room="room-1", **kw):
    return verify_token(settings, mint_token(settings, role, room, identity, **kw))


def test_viewer_subscribes_and_publishes_nothing(settings: Settings) -> None:
    v = _claims(settings, Role.VIEWER).video
    assert v.room_join and v.room == "room-1" and v.can_subscribe
    assert v.can_publish is False and not v.can_publish_sources and v.hidden
    assert not v.can_publish_data  # questions go through the web app; captions: the bot's


def test_presenter_publishes_microphone_only_and_only_with_the_floor(settings: Settings) -> None:
    v = _claims(settings, Role.PRESENTER).video
    assert v.can_publish and v.can_publish_sources == ["microphone"] and not v.hidden
    assert not v.can_publish_data
    off = _claims(settings, Role.PRESENTER, speaking=False).video
    assert not off.can_publish and not off.can_publish_sources and not off.can_publish_data


def test_bot_publishes_camera_microphone_and_captions(settings: Settings) -> None:
    v = _claims(settings, Role.BOT, identity=settings.bot_identity).video
    assert sorted(v.can_publish_sources) == ["camera", "microphone"] and v.can_publish_data


def test_host_is_room_admin_without_media_or_data(settings: Settings) -> None:
    v = _claims(settings, Role.HOST).video
    assert v.room_admin and not v.can_publish and not v.can_publish_data


def test_speaker_permission_never_grants_data() -> None:
    from broadcaster.roles import speaker_permission

    for speaking in (True, False):
        assert not speaker_permission(speaking, hidden=True).can_publish_data


def test_the_stacks_identities_are_reserved_and_match_the_bot(settings: Settings) -> None:
    from broadcaster.bot.pipeline import listener_identity
    from broadcaster.roles import stack_identities

    stack = stack_identities(settings)
    assert {settings.bot_identity, listener_identity(settings), "heygen"} <= stack
    for identity in stack:
        with pytest.raises(InvalidInput, match="reserved"):
            mint_token(settings, Role.VIEWER, "room-1", identity)


def test_ttl_is_bounded(settings):
    with pytest.raises(InvalidInput, match="ttl"):
        mint_token(settings, Role.VIEWER, "r", "alice", ttl_seconds=10**7)
    claims = _claims(settings, Role.VIEWER, ttl_seconds=120)
    assert claims.identity == "alice"


@pytest.mark.parametrize("identity", ["", "a b", "x" * 500, "-lead", "héllo", "a/b", "heygen"])
def test_bad_identities_are_refused(settings, identity):
    with pytest.raises(InvalidInput, match="identity"):
        mint_token(settings, Role.VIEWER, "room-1", identity)


@pytest.mark.parametrize("room", ["", "Room", "a" * 100, "a b", "../x"])
def test_bad_rooms_are_refused(settings, room):
    with pytest.raises(InvalidInput, match="room"):
        mint_token(settings, Role.VIEWER, room, "alice")


def test_foreign_token_is_rejected(settings):
    forged = api.AccessToken(settings.livekit_api_key, "x" * 40).with_identity("eve").to_jwt()
    with pytest.raises(InvalidInput):
        verify_token(settings, forged)
