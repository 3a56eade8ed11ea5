"""The server side of LiveKit: our only holder of the API secret.

A thin wrapper over livekit-api's RoomService so routes speak in webinar terms
(room, identity, permission) and "not found" is ``None`` instead of an exception.
"""

from __future__ import annotations

import json
from typing import Any

import aiohttp
from livekit import api
from loguru import logger

from broadcaster.config import Settings

#: LiveKit closes a room whose participants are all agents (the bot's token is of kind
#: ``agent``) after its empty / departure timeout; a webinar's room lives until the host
#: ends it (then the web app deletes it), so these are long
ROOM_IDLE_SECONDS = 12 * 3600
#: whom :meth:`LiveKitAdmin.answers` addresses: nobody (no identity may start with "~")
PROBE_IDENTITY = "~probe"


class LiveKitError(RuntimeError):
    """LiveKit's server API failed; the message is safe to show (no credentials)."""


class RoomNodeGone(LiveKitError):
    """LiveKit answered, but the node hosting the room did not: it died.

    The next join re-homes the room on a live node once LiveKit counts it gone (~5 s).
    """


def _not_found(exc: api.TwirpError) -> bool:
    return exc.code == api.TwirpErrorCode.NOT_FOUND


class LiveKitAdmin:
    """Create on startup (it opens an aiohttp session), ``close()`` on shutdown."""

    def __init__(self, settings: Settings) -> None:
        self._lk = api.LiveKitAPI(
            settings.livekit_http_url,
            settings.livekit_api_key,
            settings.livekit_api_secret,
            timeout=aiohttp.ClientTimeout(total=10),
        )

    async def close(self) -> None:
        """Close the API client's aiohttp session (unclosed, aiohttp warns at exit)."""
        await self._lk.aclose()

    async def _call(self, method: str, request: Any) -> Any:
        try:
            return await getattr(self._lk.room, method)(request)
        except api.TwirpError as exc:
            if _not_found(exc):
                return None
            if exc.code == api.TwirpErrorCode.UNAVAILABLE:
                raise RoomNodeGone(f"livekit {method} failed: {exc.code}: {exc.message}"
                                   ) from None
            raise LiveKitError(f"livekit {method} failed: {exc.code}: {exc.message}") from None
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise LiveKitError(f"livekit {method} failed: {type(exc).__name__}") from None

    async def ping(self) -> None:
        """Raise :class:`LiveKitError` unless LiveKit's RoomService answers (``/readyz``)."""
        await self._call("list_rooms", api.ListRoomsRequest(names=["readyz"]))

    async def ensure_room(self, room: str, metadata: dict[str, Any]) -> None:
        """Create the room (or find it) and make its metadata ours.

        LiveKit deletes idle rooms and auto-creates them on join without
        metadata, so every join re-asserts both.
        """
        text = json.dumps(metadata)
        await self._call("create_room", api.CreateRoomRequest(
            name=room, metadata=text, empty_timeout=ROOM_IDLE_SECONDS,
            departure_timeout=ROOM_IDLE_SECONDS))
        await self._call("update_room_metadata",
                         api.UpdateRoomMetadataRequest(room=room, metadata=text))

    async def ensure_room_unless_gone(self, room: str, metadata: dict[str, Any]) -> bool:
        """:meth:`ensure_room`; False (logged) when the room's node died.

        The join that follows re-homes the room and the bot's StageKeeper restores its
        metadata (a 502 here kept the presenter out after the stage's node died).
        """
        try:
            await self.ensure_room(room, metadata)
            return True
        except RoomNodeGone as exc:
            logger.warning("room {} not ensured ({})", room, exc)
            return False

    async def set_metadata(self, room: str, metadata: dict[str, Any]) -> None:
        """Replace the room's metadata, which the pages read for the webinar's state."""
        await self._call("update_room_metadata",
                         api.UpdateRoomMetadataRequest(room=room, metadata=json.dumps(metadata)))

    async def rooms(self, names: list[str]) -> list[api.Room]:
        """Return the rooms LiveKit has now among ``names`` (one call for all of them)."""
        wanted = set(names)
        resp = await self._call("list_rooms", api.ListRoomsRequest())
        return [r for r in resp.rooms if r.name in wanted] if resp is not None else []

    async def participants(self, room: str) -> list[api.ParticipantInfo]:
        """List who is in ``room`` now, hidden ones included; empty when there is no room."""
        resp = await self._call("list_participants", api.ListParticipantsRequest(room=room))
        return list(resp.participants) if resp is not None else []

    async def participant(self, room: str, identity: str) -> api.ParticipantInfo | None:
        """Look ``identity`` up in ``room`` now; None when not connected."""
        return await self._call(
            "get_participant", api.RoomParticipantIdentity(room=room, identity=identity)
        )

    async def set_permission(
        self, room: str, identity: str, permission: api.ParticipantPermission
    ) -> bool:
        """Apply ``permission`` live; False when the participant is not connected."""
        resp = await self._call(
            "update_participant",
            api.UpdateParticipantRequest(room=room, identity=identity, permission=permission),
        )
        return resp is not None

    async def remove(self, room: str, identity: str) -> bool:
        """Disconnect ``identity`` from ``room``; False when they were not connected."""
        resp = await self._call(
            "remove_participant", api.RoomParticipantIdentity(room=room, identity=identity)
        )
        return resp is not None

    async def remove_stale(self, room: str, identity: str) -> None:
        """Drop the stale session of someone joining again, if LiveKit can reach it.

        When the room's node died, LiveKit still lists the session for a while but
        cannot remove it; the new join replaces it anyway (same identity).
        """
        try:
            await self.remove(room, identity)
        except LiveKitError as exc:
            logger.warning("stale session of {} in {} not removed: {}", identity, room, exc)

    async def answers(self, room: str) -> None:
        """Raise :class:`LiveKitError` unless the node hosting ``room`` answers now.

        Listings come from Redis and still show a SIGKILLed node's rooms and people;
        a data packet to nobody goes to the room's node itself (LiveKit's psrpc), so
        it fails when that node is gone. No participant can have the identity used
        (``roles.IDENTITY_RE`` refuses a leading "~").
        """
        await self._call("send_data", api.SendDataRequest(
            room=room, data=b"?", kind=api.DataPacket.Kind.RELIABLE,
            topic="broadcaster.probe", destination_identities=[PROBE_IDENTITY]))

    async def send_data(self, room: str, data: bytes, *, topic: str,
                        identities: list[str]) -> None:
        """Send ``data`` (reliable) from the server to ``identities`` only.

        What a participant receives with no sender (a server SDK's) carries the trust
        of the API secret.
        """
        await self._call("send_data", api.SendDataRequest(
            room=room, data=data, kind=api.DataPacket.Kind.RELIABLE, topic=topic,
            destination_identities=identities))

    async def delete_room(self, room: str) -> None:
        """Close ``room`` for everyone in it; a room already gone is not an error."""
        await self._call("delete_room", api.DeleteRoomRequest(room=room))
