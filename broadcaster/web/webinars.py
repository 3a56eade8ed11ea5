"""Webinar rules in one place: creation, joining, the one-speaker floor, bans, the end.

The SQLite store is the source of truth; LiveKit room metadata is a copy that
the bot and the pages follow. Changes to a room's participants are serialised
by a per-room lock so two joins or two promotions cannot interleave.

The floor belongs to a claim, not to a name (docs/security.md): an identity is
issued with a claim (a secret only its holder has), and the speaker's identity is
never issued again without that claim. Presenter rights come from the presenter
code or from being the speaker; once the host has handed or taken the floor, only
the host hands it out. Remove demotes first, then bans the identity and its claim.
Making LiveKit's view match all this (stale tokens, missed webhooks) is
:mod:`broadcaster.web.floor`'s job.
"""

from __future__ import annotations

import asyncio
import hmac
import re
import secrets
import sqlite3
import time
from collections import Counter, defaultdict
from typing import Any

from livekit import api
from loguru import logger

from broadcaster.config import Settings
from broadcaster.protocol import ROOM_STATE_ENDED
from broadcaster.roles import (
    Role,
    check_identity,
    check_name,
    check_room,
    mint_token,
    speaker_permission,
    stack_identities,
)
from broadcaster.shards import is_shard_name
from broadcaster.web.audience_count import AudienceCount
from broadcaster.web.errors import conflict, forbidden, gone, invalid, not_found
from broadcaster.web.livekit_admin import LiveKitAdmin
from broadcaster.web.rate_limit import SlidingWindowLimit, TokenBuckets
from broadcaster.web.shards import ShardRouter
from broadcaster.web.store import Ban, Claim, Store, Webinar

MAX_TITLE_CHARS = 120
MAX_CLAIM_CHARS = 128
#: how long a confirmed room is trusted to still exist before a join re-asserts it
ROOM_CHECK_SECONDS = 5.0
REMOVED = "you were removed from this webinar by the host"


def metadata(webinar: Webinar) -> dict[str, Any]:
    """Room metadata exactly as broadcaster/protocol.py defines it."""
    return {"title": webinar.title, "speaker": webinar.speaker, "state": webinar.state}


def slug(title: str) -> str:
    """Make a room name from ``title``; a random suffix keeps equal titles apart."""
    base = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")[:40].strip("-") or "webinar"
    return f"{base}-{secrets.token_hex(2)}"


def check_title(title: str) -> str:
    """Return ``title`` stripped; 422 unless 1-120 printable characters (it reaches pages)."""
    title = title.strip()
    if not 1 <= len(title) <= MAX_TITLE_CHARS or not title.isprintable():
        raise invalid(f"title must be 1-{MAX_TITLE_CHARS} printable characters")
    return title


class Webinars:
    """Every webinar rule, over the store (truth) and LiveKit (kept in line with it)."""

    def __init__(self, settings: Settings, store: Store, livekit: LiveKitAdmin) -> None:
        self.settings = settings
        self.store = store
        self.livekit = livekit
        self.locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self.shards = ShardRouter(settings, livekit)
        self.counts = AudienceCount(settings, livekit, self.shards)
        self._room_checked: dict[str, float] = {}
        self.stack = stack_identities(settings)
        self.question_limit = SlidingWindowLimit(settings.questions_per_minute, 60.0)
        self.question_address_limit = TokenBuckets(settings.question_burst,
                                                   settings.question_rate_per_minute)
        self.join_limit = TokenBuckets(settings.join_burst, settings.join_rate_per_minute)
        #: running totals for /metrics: (room, action) of the floor guard; refusals per room
        self.guard_actions: Counter[tuple[str, str]] = Counter()
        self.questions_refused: Counter[str] = Counter()

    # --- lookups -----------------------------------------------------------------------
    def get(self, room: str) -> Webinar:
        """Return the webinar of ``room``: 422 for a malformed name, 404 for an unknown one."""
        check_room(room)
        webinar = self.store.webinar(room)
        if webinar is None:
            raise not_found(f"no webinar {room!r}")
        return webinar

    def get_live(self, room: str) -> Webinar:
        """Return the webinar of ``room`` like :meth:`get`, and 410 once it has ended."""
        webinar = self.get(room)
        if webinar.state == ROOM_STATE_ENDED:
            raise gone(f"webinar {room!r} has ended")
        return webinar

    def links(self, webinar: Webinar) -> dict[str, str]:
        """Return the viewer and presenter links; the latter holds the secret invite code."""
        base = self.settings.effective_public_url
        return {
            "viewer_url": f"{base}/w/{webinar.room}",
            "presenter_url": f"{base}/w/{webinar.room}/present?code={webinar.presenter_code}",
        }

    def public(self, webinar: Webinar) -> dict[str, Any]:
        """Describe ``webinar`` as anyone with the link may know it (no code, no claims)."""
        return {"room": webinar.room, **metadata(webinar)}

    def for_host(self, webinar: Webinar) -> dict[str, Any]:
        """Describe ``webinar`` for the host console: the public view plus the invite code."""
        return {
            **self.public(webinar), **self.links(webinar),
            "presenter_code": webinar.presenter_code,
            "created_at": webinar.created_at, "ended_at": webinar.ended_at,
            "host_floor": bool(webinar.host_floor),
        }

    def is_stack(self, person: api.ParticipantInfo) -> bool:
        """Tell whether ``person`` is the bot, the avatar or a host console (never policed)."""
        return person.identity in self.stack or person.attributes.get("role") in (
            Role.BOT, Role.HOST)

    def live_claim(self, webinar: Webinar, identity: str) -> Claim | None:
        """``identity``'s claim unless it has expired (the speaker's never does)."""
        held = self.store.claim(webinar.room, identity)
        if held is None or identity == webinar.speaker:
            return held
        seen = held.seen_at if held.seen_at is not None else held.issued_at
        return held if time.time() - seen <= self.settings.identity_claim_seconds else None

    def may_read_questions(self, room: str, identity: str) -> bool:
        """Tell whether ``identity`` may read questions: only the current speaker may.

        The live floor decides, not a token's role attribute (a token outlives a demotion).
        """
        webinar = self.store.webinar(room)
        return (webinar is not None and webinar.speaker == identity
                and not self.store.banned(room, identity))

    def permission(self, room: str, identity: str, speaking: bool) -> api.ParticipantPermission:
        """Return the live permission for ``identity`` (a silent viewer stays hidden if set)."""
        claim = self.store.claim(room, identity)
        viewer = claim is None or claim.role == Role.VIEWER
        return speaker_permission(speaking, hidden=self.settings.viewers_hidden and viewer)

    # --- host actions ------------------------------------------------------------------
    async def create(self, title: str, room: str | None) -> Webinar:
        """Create a webinar and its LiveKit room; 409 if taken, nothing kept if LiveKit fails."""
        title = check_title(title)
        room = check_room(room) if room is not None else slug(title)
        if is_shard_name(room):
            raise invalid(f"room {room!r} must not end like an audience shard ('--a<n>')")
        try:
            webinar = self.store.create_webinar(room, title, secrets.token_urlsafe(12))
        except sqlite3.IntegrityError:
            raise conflict(f"a webinar named {room!r} already exists") from None
        try:
            await self.livekit.ensure_room(room, metadata(webinar))
        except Exception:
            self.store.delete_webinar(room)  # keep "nothing changed" when LiveKit fails
            raise
        logger.info("webinar {} created: {}", room, title)
        return webinar

    def _refuse_stack(self, identity: str, person: api.ParticipantInfo | None) -> None:
        if identity in self.stack or (person is not None and self.is_stack(person)):
            raise conflict(f"participant {identity!r} is part of the stack")

    async def promote(self, room: str, identity: str) -> Webinar:
        """Give ``identity`` the floor; whoever held it loses it first."""
        self.get_live(room)
        async with self.locks[room]:
            webinar = self.get_live(room)
            person = await self.livekit.participant(room, identity)
            self._refuse_stack(identity, person)
            if person is None:
                raise not_found(f"participant {identity!r} is not connected")
            self.store.set_host_floor(room)
            return await self._hand_floor(webinar, identity)

    async def demote(self, room: str, identity: str) -> Webinar:
        """Take publishing away from ``identity`` (the speaker or anyone publishing)."""
        self.get_live(room)
        async with self.locks[room]:
            webinar = self.get_live(room)
            person = await self.livekit.participant(room, identity)
            self._refuse_stack(identity, person)
            if person is None and webinar.speaker != identity:
                raise not_found(f"participant {identity!r} is not connected")
            self.store.set_host_floor(room)
            if person is not None:
                await self.livekit.set_permission(room, identity,
                                                  self.permission(room, identity, False))
            if webinar.speaker == identity:
                webinar = await self._set_speaker(webinar, None)
            logger.info("webinar {}: {} demoted", room, identity)
            return webinar

    async def remove(self, room: str, identity: str) -> Webinar:
        """Demote, ban the identity and its claim, and put them out of the room."""
        self.get(room)
        async with self.locks[room]:
            webinar = self.get(room)
            person = await self.livekit.participant(room, identity)
            self._refuse_stack(identity, person)
            held = self.store.claim(room, identity)
            if person is None and held is None and webinar.speaker != identity:
                raise not_found(f"participant {identity!r} is not connected")
            if person is not None and person.permission.can_publish:
                await self.livekit.set_permission(room, identity,
                                                  self.permission(room, identity, False))
            if webinar.speaker == identity:
                self.store.set_host_floor(room)
                webinar = await self._set_speaker(webinar, None)
            name = (person.name if person is not None else "") or identity
            self.store.ban(room, identity, held.claim_hash if held else None, name)
            self.store.delete_claim(room, identity)
            if person is not None:
                await self.livekit.remove(room, identity)
            await self.shards.remove(room, identity)
            self.shards.forget(room)
            self.forget_audience(room)
        logger.info("webinar {}: {} removed and banned", room, identity)
        return webinar

    def bans(self, room: str) -> list[Ban]:
        """List the bans of ``room`` (404 for an unknown webinar)."""
        self.get(room)
        return self.store.bans(room)

    def unban(self, room: str, identity: str) -> None:
        """Let ``identity`` join again; 404 when it is not banned here."""
        self.get(room)
        if not self.store.unban(room, identity):
            raise not_found(f"{identity!r} is not banned here")
        logger.info("webinar {}: ban of {} cleared", room, identity)

    async def new_presenter_code(self, room: str) -> Webinar:
        """Replace the invite code; the old link stops working (for joins to come)."""
        self.get_live(room)
        async with self.locks[room]:
            self.store.set_presenter_code(room, secrets.token_urlsafe(12))
        logger.info("webinar {}: presenter code replaced", room)
        return self.get(room)

    async def end(self, room: str) -> Webinar:
        """Mark ended (joins get 410), tell connected pages, then close the room."""
        self.get(room)
        async with self.locks[room]:
            webinar = self.get(room)
            if webinar.state != ROOM_STATE_ENDED:
                self.store.end_webinar(room)
                webinar = self.get(room)
                await self.livekit.set_metadata(room, metadata(webinar))
                await self.shards.set_metadata(room, metadata(webinar))
                await self.livekit.delete_room(room)
                await self.shards.delete(room)
                self.forget_audience(room)
                self._room_checked.pop(room, None)
                logger.info("webinar {} ended", room)
        return webinar

    def host_token(self, webinar: Webinar) -> dict[str, Any]:
        """Mint a host-console token under a fresh identity, so consoles never clash."""
        identity = f"host-{secrets.token_hex(4)}"
        token = mint_token(self.settings, Role.HOST, webinar.room, identity, name="Host")
        return {"token": token, "url": self.settings.browser_livekit_url,
                "identity": identity, "room": webinar.room, "title": webinar.title,
                **self._stack_names()}

    def _stack_names(self) -> dict[str, Any]:
        """Whose tracks and captions the pages accept (docs/security.md)."""
        bot = self.settings.bot_identity
        return {"bot_identity": bot, "stack_identities": sorted(self.stack),
                "caption_identities": sorted(i for i in self.stack if i.startswith(bot))}

    async def watch(self, room: str) -> dict[str, Any]:
        """Return a console token for a live webinar, re-creating its idle-deleted room."""
        self.get_live(room)
        async with self.locks[room]:
            webinar = self.get_live(room)
            await self._ensure_room(webinar)
        return self.host_token(webinar)

    async def _ensure_room(self, webinar: Webinar) -> None:
        """Re-create an idle-deleted LiveKit room (with metadata), at most every few seconds.

        So a crowd joining at once costs LiveKit one call, not one per viewer.
        """
        now = time.monotonic()
        if now - self._room_checked.get(webinar.room, -ROOM_CHECK_SECONDS) < ROOM_CHECK_SECONDS:
            return
        if await self.livekit.ensure_room_unless_gone(webinar.room, metadata(webinar)):
            self._room_checked[webinar.room] = now

    # --- public actions ----------------------------------------------------------------
    async def join(
        self, room: str, identity: str, name: str | None, role: str, code: str | None,
        claim: str | None, lost: str | None = None,
    ) -> dict[str, Any]:
        """Mint a token for ``identity`` unless another holds it (``lost``: ShardRouter)."""
        webinar = self.get_live(room)
        self.shards.check_lost(room, lost)
        if role not in (Role.VIEWER, Role.PRESENTER):
            raise invalid("field 'role' must be 'viewer' or 'presenter'")
        if claim is not None and not 1 <= len(claim) <= MAX_CLAIM_CHARS:
            raise invalid(f"field 'claim' must be 1-{MAX_CLAIM_CHARS} characters")
        if role == Role.PRESENTER and not (
            code and hmac.compare_digest(code.encode(), webinar.presenter_code.encode())
        ):
            raise forbidden("presenter code is missing or wrong")
        check_identity(identity, settings=self.settings)
        display = check_name(name, identity, staff=self.settings if role == Role.VIEWER else None)
        if self.store.banned(room, identity, claim):
            raise forbidden(REMOVED)
        async with self.locks[room]:
            webinar = self.get_live(room)  # fresh, under the lock: the floor may have moved
            # a viewer bound for a shard never enters the stage room: its joins must not
            # depend on the stage's node (the claim guards the identity)
            to_shard = (self.shards.enabled and role == Role.VIEWER
                        and identity != webinar.speaker)
            connected = None
            if not to_shard:
                await self._ensure_room(webinar)
                connected = await self.livekit.participant(room, identity)
            held = self.live_claim(webinar, identity)
            reclaim = held is not None and held.matches(claim)
            if not reclaim and (held is not None or connected is not None
                                or identity == webinar.speaker):
                raise conflict(f"identity {identity!r} is already taken in this room")
            # 503 when every shard is full, before the claim is kept: the retry may come
            joins = await self.shards.route(room, identity, lost) if to_shard else room
            secret = claim if reclaim and claim else secrets.token_urlsafe(24)
            if connected is not None:  # the same person, reloading: drop the stale session
                await self.livekit.remove_stale(room, identity)
            self.store.put_claim(room, identity, secret, role)
            if role == Role.PRESENTER and not webinar.host_floor and webinar.speaker != identity:
                webinar = await self._hand_floor(webinar, identity)
            # the floor's own claim holder keeps it across a reload; nobody else gets it
            speaking = webinar.speaker == identity
            grant = Role.PRESENTER if speaking else Role(role)
            if to_shard:  # a viewer never holds the floor: ``grant`` is VIEWER
                self.shards.ensure(joins, metadata(webinar))
            token = mint_token(self.settings, grant, joins, identity, name=display,
                               speaking=speaking)
        self.forget_audience(room)
        logger.info("webinar {}: {} joined as {}{}", room, identity, role,
                    " (speaker)" if speaking else "")
        return {
            "token": token, "url": self.settings.browser_livekit_url, "identity": identity,
            "name": display, "role": role, "claim": secret, "room": room,
            "livekit_room": joins,
            "title": webinar.title, "speaker": webinar.speaker, **self._stack_names(),
        }

    async def audience(self, room: str) -> dict[str, Any]:
        """Count viewers and participants (:class:`AudienceCount`); 404 for no webinar."""
        self.get(room)
        return await self.counts.count(room)

    def forget_audience(self, room: str) -> None:
        """Someone joined or left: the next count asks LiveKit again."""
        self.counts.forget(room)

    # --- the floor ---------------------------------------------------------------------
    async def _hand_floor(self, webinar: Webinar, new: str) -> Webinar:
        """Demote every other publishing person, then promote ``new``; call under the lock."""
        room = webinar.room
        for person in await self.livekit.participants(room):
            if person.identity == new or self.is_stack(person):
                continue
            if person.permission.can_publish or person.identity == webinar.speaker:
                await self.livekit.set_permission(
                    room, person.identity, self.permission(room, person.identity, False)
                )
                logger.info("webinar {}: {} lost the floor", room, person.identity)
        await self.livekit.set_permission(room, new, self.permission(room, new, True))
        logger.info("webinar {}: {} has the floor", room, new)
        return await self._set_speaker(webinar, new)

    async def _set_speaker(self, webinar: Webinar, speaker: str | None) -> Webinar:
        self.store.set_speaker(webinar.room, speaker)
        webinar = self.get(webinar.room)
        await self.livekit.set_metadata(webinar.room, metadata(webinar))
        await self.shards.set_metadata(webinar.room, metadata(webinar))
        return webinar
