"""The floor guard: LiveKit's view of who may do what, made to match the store.

LiveKit checks a token's grants once, at join, so a token minted before a demotion
or a ban still lets its holder in with its old rights. Two things re-apply the
floor to what LiveKit actually has:

* :meth:`FloorGuard.police` for one participant, when a webhook says they joined or
  published (fast, but livekit-server drops webhooks when its queue is full);
* :meth:`FloorGuard.reconcile_once` for every webinar room LiveKit has, at start and
  every ``floor_reconcile_seconds``: it holds with no webhooks at all.

What "match" means for a person (the stack's own participants are never touched):
removed from an ended webinar's room or when banned; the speaker publishes their
microphone; nobody else publishes; nobody but the bot publishes data. Decisions are
re-made under the room's lock on a fresh look at the participant, so a join or a
promotion in between is never undone. The same loop purges expired identity claims.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable

from livekit import api
from loguru import logger

from broadcaster.protocol import ROOM_STATE_ENDED
from broadcaster.web.livekit_admin import LiveKitError
from broadcaster.web.store import Webinar
from broadcaster.web.webinars import Webinars, metadata

#: a connected identity's claim is marked seen at most this often (one write a minute)
TOUCH_SECONDS = 60.0
#: with the reconciliation off, expired claims are still purged this often
PURGE_SECONDS = 30.0


class FloorGuard:
    """Keeps LiveKit's rights of every person in a webinar room in line with the store."""

    def __init__(self, webinars: Webinars) -> None:
        self.webinars = webinars
        self.settings = webinars.settings
        self.rounds = 0
        #: called every round per live webinar with who LiveKit has connected, and when
        #: (the audience's stale hands go down this way)
        self.observers: list[Callable[[str, set[str], float], object]] = []
        self._task: asyncio.Task[None] | None = None

    # --- one person ----------------------------------------------------------------------
    def wanted(self, webinar: Webinar, person: api.ParticipantInfo,
               banned: set[str]) -> str | None:
        """Decide what to do about ``person`` now, or None when their rights match.

        The answer is "removed", "demoted", "restricted" (data rights taken) or "granted"
        (the speaker's microphone given back).
        """
        if self.webinars.is_stack(person):
            return None
        if webinar.state == ROOM_STATE_ENDED or person.identity in banned:
            return "removed"
        perm = person.permission
        speaking = person.identity == webinar.speaker
        if perm.can_publish and not speaking:
            return "demoted"
        if speaking and (not perm.can_publish or list(perm.can_publish_sources)
                         != [api.TrackSource.MICROPHONE]):
            return "granted"
        if perm.can_publish_data:
            return "restricted"
        return None

    async def police(self, room: str, identity: str,
                     permission: api.ParticipantPermission | None = None) -> str | None:
        """Apply the floor to ``identity`` and return the action taken, if any.

        ``permission`` is what a webhook said they hold: a viewer joining with no rights to
        take costs no API call.
        """
        webinar = self.webinars.store.webinar(room)
        if webinar is None:
            return None  # not a webinar room (e.g. the avatar's own)
        if (permission is not None and webinar.state != ROOM_STATE_ENDED
                and not permission.can_publish and not permission.can_publish_data
                and identity != webinar.speaker
                and not self.webinars.store.banned(room, identity)):
            return None
        return await self._apply(room, identity)

    async def _apply(self, room: str, identity: str) -> str | None:
        """Decide again under the room's lock on LiveKit's current view, and act."""
        svc = self.webinars
        async with svc.locks[room]:
            webinar = svc.store.webinar(room)
            if webinar is None:
                return None
            person = await svc.livekit.participant(room, identity)
            if person is None:
                return None
            action = self.wanted(webinar, person, svc.store.banned_identities(room))
            if action is None:
                return None
            if action == "removed":
                await svc.livekit.remove(room, identity)
                svc.forget_audience(room)
            else:
                speaking = action == "granted"
                await svc.livekit.set_permission(room, identity,
                                                 svc.permission(room, identity, speaking))
        svc.guard_actions[(room, action)] += 1
        logger.info("webinar {}: floor guard: {} {}", room, identity, action)
        return action

    # --- every room ----------------------------------------------------------------------
    async def reconcile_once(self) -> list[tuple[str, str, str]]:
        """One round over every webinar room LiveKit has; returns (room, identity, action)."""
        svc = self.webinars
        webinars = {w.room: w for w in svc.store.webinars()}
        done: list[tuple[str, str, str]] = []
        for info in await svc.livekit.rooms(list(webinars)):
            webinar = webinars[info.name]
            if webinar.state != ROOM_STATE_ENDED and _meta(info.metadata) != metadata(webinar):
                async with svc.locks[webinar.room]:  # e.g. LiveKit re-created it on a join
                    fresh = svc.store.webinar(webinar.room)
                    if fresh is not None and _meta(info.metadata) != metadata(fresh):
                        await svc.livekit.set_metadata(webinar.room, metadata(fresh))
            people = await svc.livekit.participants(webinar.room)
            now = time.time()
            if webinar.state != ROOM_STATE_ENDED:
                svc.store.touch_claims(webinar.room, [p.identity for p in people], now,
                                       now - TOUCH_SECONDS)
                present = {p.identity for p in people}
                for observe in self.observers:
                    observe(webinar.room, present, now)
            banned = svc.store.banned_identities(webinar.room)
            for person in people:
                if self.wanted(webinar, person, banned) is not None:
                    action = await self._apply(webinar.room, person.identity)
                    if action is not None:
                        done.append((webinar.room, person.identity, action))
        self.purge()
        self.rounds += 1
        return done

    def purge(self) -> int:
        """Forget identity claims not seen for ``identity_claim_seconds``."""
        gone = self.webinars.store.purge_claims(time.time()
                                                - self.settings.identity_claim_seconds)
        if gone:
            logger.debug("purged {} expired identity claims", gone)
        return gone

    # --- the loop ------------------------------------------------------------------------
    def start(self) -> None:
        """Start the reconciliation loop (idempotent); it needs the running event loop."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="floor-guard")

    async def stop(self) -> None:
        """Cancel the loop and wait until it has ended (idempotent)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        period = self.settings.floor_reconcile_seconds
        failing = False
        while True:
            try:
                if period > 0:
                    await self.reconcile_once()
                else:
                    self.purge()
                if failing:
                    logger.info("floor guard: LiveKit answers again")
                failing = False
            except LiveKitError as exc:
                if not failing:
                    logger.warning("floor guard: {} (retrying)", exc)
                failing = True
            except Exception as exc:  # a bug must not stop the guard for good
                logger.error("floor guard round failed: {}: {}", type(exc).__name__, exc)
            await asyncio.sleep(period if period > 0 else PURGE_SECONDS)


def _meta(text: str) -> object:
    try:
        return json.loads(text) if text else None
    except ValueError:
        return None
