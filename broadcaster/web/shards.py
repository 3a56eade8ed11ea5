"""Routing viewers to audience shard rooms (``audience_shards`` > 0; docs/scaling.md).

Each shard is a LiveKit room that LiveKit's multi-node routing placed on one of its
nodes; the web app only picks a shard for each viewer: the least-filled one below
``shard_capacity``, from counts LiveKit gave at most ``audience_cache_seconds`` ago plus
the joins routed since (a storm of joins costs LiveKit one listing per shard, not one
per viewer). A shard whose node is gone is still routable: the next join re-homes the
room on a live node (LiveKit's own doing) and the web app re-asserts its metadata.
A page that lost its shard says which (``lost``): LiveKit counts a dead node as up for
~5 s and may still answer about its rooms, so that page goes to another shard with room
rather than back to the dead node (where its connect would hang until LiveKit notices).
When every shard is full the join is refused with 503 and the reason.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Any

from loguru import logger

from broadcaster.config import Settings
from broadcaster.roles import Role
from broadcaster.shards import shard_rooms
from broadcaster.web.errors import ApiError, invalid
from broadcaster.web.livekit_admin import LiveKitAdmin, LiveKitError
from broadcaster.web.placements import Placements

#: a shard room is re-created (with metadata) at most this often per shard
ENSURE_SECONDS = 5.0
#: a shard that cannot be (re-)created is tried again for this long (a node loss: ~5 s)
ENSURE_GIVE_UP_SECONDS = 20.0
#: a LiveKit call about one shard waits at most this long (a dead node must not stall joins)
CALL_SECONDS = 1.5
#: a shard LiveKit did not answer about is passed over this long (or until it answers)
UNREACHABLE_SECONDS = 15.0
#: a page that lost its shard is routed on LiveKit's word at most this old
LOST_FRESH_SECONDS = 1.0
#: whether a shard's node answers (LiveKitAdmin.answers): waited for this long, and
#: believed for ``ANSWER_FRESH_SECONDS`` from the asking (a crowd of displaced pages, whose
#: joins take the webinar's lock one by one, costs one probe per shard)
PROBE_SECONDS = 0.5
ANSWER_FRESH_SECONDS = 1.5
#: a viewer displaced by a dead node may overfill a shard whose node answers by this
#: share of ``shard_capacity`` (at least one) rather than wait ~7 s for the bot to move
#: its shard onto a live node; new joins fill the moved shard meanwhile
SPILL_SHARE = 0.5


def full(shards: int, capacity: int) -> ApiError:
    """503: every shard holds ``capacity`` viewers; say so, and when to try again."""
    return ApiError(503, f"this webinar is full ({shards} x {capacity} viewers): "
                    "try again in a minute", headers={"Retry-After": "60"})


@dataclass
class _Counts:
    at: float = -1e9
    viewers: dict[str, int] = field(default_factory=dict)
    routed: dict[str, int] = field(default_factory=dict)
    open: set[str] = field(default_factory=set)
    bot: set[str] = field(default_factory=set)  # shards LiveKit listed the bot in
    refreshing: asyncio.Task[None] | None = None


class ShardRouter:
    """Which shard a viewer joins, the shards' counts, their metadata."""

    def __init__(self, settings: Settings, livekit: LiveKitAdmin) -> None:
        self.settings = settings
        self.livekit = livekit
        self._counts: dict[str, _Counts] = {}
        self._ensured: dict[str, float] = {}
        #: (room, identity) -> its shard, bounded: a reload goes back to its seat
        self.placements = Placements(settings.shard_placements_max,
                                     settings.identity_claim_seconds)
        self._tasks: set[asyncio.Future[None]] = set()
        self._unreachable: dict[str, float] = {}  # shard -> until (monotonic)
        self._answered: dict[str, tuple[float, asyncio.Future[bool]]] = {}  # shard -> probe

    @property
    def enabled(self) -> bool:
        """Shards are on (``audience_shards`` > 0)."""
        return self.settings.audience_shards > 0

    def names(self, room: str) -> list[str]:
        """Return the shard rooms of ``room`` (none when shards are off)."""
        return shard_rooms(room, self.settings.audience_shards)

    async def _people(self, shard: str) -> list[Any] | None:
        try:
            return await asyncio.wait_for(self.livekit.participants(shard), CALL_SECONDS)
        except (LiveKitError, TimeoutError) as exc:
            logger.warning("shard {}: no count ({})", shard, exc)
            return None

    async def _count(self, shard: str) -> int | None:
        people = await self._people(shard)
        if people is None:
            return None
        return sum(1 for p in people if p.attributes.get("role") == Role.VIEWER)

    async def _refresh(self, room: str, c: _Counts) -> None:
        names = self.names(room)
        lists = await asyncio.gather(*(self._people(n) for n in names))
        got = [None if people is None else
               sum(1 for p in people if p.attributes.get("role") == Role.VIEWER)
               for people in lists]
        # a room on a node that just died is still answered for, empty, until LiveKit
        # counts the node as gone (~5 s): the bot's absence tells it apart
        c.bot = {n for n, people in zip(names, lists, strict=True) if people is not None
                 and any(p.identity == self.settings.bot_identity for p in people)}
        try:  # the shards the bot has opened (LiveKit placed them one by one)
            listed = await asyncio.wait_for(self.livekit.rooms(names), CALL_SECONDS)
            c.open = {r.name for r in listed}
        except (LiveKitError, TimeoutError) as exc:
            logger.warning("shards of {}: not listed ({})", room, exc)
        c.at = now = time.monotonic()
        c.viewers = {n: v for n, v in zip(names, got, strict=True) if v is not None}
        for n, v in zip(names, got, strict=True):
            if v is None:  # its node is gone or stuck: new and rejoining viewers go elsewhere
                self._unreachable[n] = now + UNREACHABLE_SECONDS
            else:
                self._unreachable.pop(n, None)
        c.routed = {}

    async def counts(self, room: str, *, fresh: bool = False,
                     within: float | None = None) -> dict[str, int]:
        """Viewers per shard: LiveKit's count plus the joins routed since it was taken.

        The count is at most ``within`` (default ``audience_cache_seconds``) old.
        """
        c = self._counts.setdefault(room, _Counts())
        limit = self.settings.audience_cache_seconds if within is None else within
        stale = time.monotonic() - c.at >= limit
        if fresh or stale:
            if c.refreshing is None or c.refreshing.done():
                c.refreshing = asyncio.ensure_future(self._refresh(room, c))
            await asyncio.shield(c.refreshing)
        return {n: c.viewers.get(n, 0) + c.routed.get(n, 0) for n in self.names(room)}

    def check_lost(self, room: str, lost: str | None) -> None:
        """422 unless ``lost`` (what a rejoining page lost) is ``room`` or one of its shards."""
        if lost is not None and lost != room and lost not in self.names(room):
            raise invalid(f"field 'lost' must name this webinar's room or one of its "
                          f"audience shards, not {lost[:80]!r}")

    async def route(self, room: str, identity: str, lost: str | None = None) -> str:
        """Return the shard for ``identity``, counted as joined; 503 when all are full.

        The one it had (a reload: LiveKit replaces the old session), unless LiveKit did
        not answer about it or the page ``lost`` it (its node died: the viewer goes to
        another shard); else the least-filled reachable one with room, not ``lost``
        while another has room.
        """
        # a page that lost its room: where the bot is, as LiveKit says now (one listing
        # per second however many pages ask at once)
        counts = await self.counts(room, within=LOST_FRESH_SECONDS if lost else None)
        now = time.monotonic()
        c = self._counts[room]
        cap = self.settings.shard_capacity
        had = self.placements.get((room, identity))
        if had in counts:  # a rejoin leaves its seat: it may always come back to it
            counts[had] = max(0, counts[had] - 1)
        up = {n: v for n, v in counts.items() if self._unreachable.get(n, 0.0) <= now}
        if lost is not None and lost in counts:
            moved = await self._displaced(lost, up, c.bot)
            if moved is not None:
                c.routed[moved] = c.routed.get(moved, 0) + 1
                self.placements.put((room, identity), moved)
                return moved
        if had is not None and had in up and had != lost:
            # a rejoin: its page may have lost that shard's node; ask LiveKit first
            if await self._count(had) is not None:
                return had
            self._unreachable[had] = now + UNREACHABLE_SECONDS
            up.pop(had)
        free = {n: v for n, v in (up or counts).items() if v < cap}
        if not free and had in counts:  # not turned away: those watching are not touched
            free = {had: counts[had]}
        if not free:
            raise full(len(counts), cap)
        # where the bot publishes first: a viewer elsewhere sees no avatar (and a dead
        # node's room, still answered for, has no bot)
        free = {n: v for n, v in free.items() if n in c.bot} or free
        # only this page's word, so only this page avoids it (the audience is untrusted)
        free = {n: v for n, v in free.items() if n != lost} or free
        # shards LiveKit has placed already first: rooms made by a burst of joins at once
        # would all land on one node (it places by node stats refreshed every 2 s)
        placed = {n: v for n, v in free.items() if n in c.open}
        shard = min((placed or free).items(), key=lambda kv: (kv[1], kv[0]))[0]
        c.routed[shard] = c.routed.get(shard, 0) + 1
        self.placements.put((room, identity), shard)
        return shard

    async def _displaced(self, lost: str, counts: dict[str, int], bot: set[str]
                         ) -> str | None:
        """Return the shard for a page whose shard ``lost`` died, or None (route as usual).

        Only when LiveKit confirms it (``lost``'s node does not answer; the page's word
        alone moves nobody past a shard's capacity): the least-filled shard whose node
        answers and where the bot is, over capacity by up to ``SPILL_SHARE`` if none has
        room. Measured: waiting for the bot to move a shard took 9.2-12.1 s.
        """
        # every shard probed at once: the next displaced page may have lost another one
        others = [n for n in counts if n != lost]
        answers = await asyncio.gather(*(self._answers(n) for n in (lost, *others)))
        if answers[0]:
            return None  # its node is alive: a reload, or a page's mistake
        live = {n: counts[n] for n, ok in zip(others, answers[1:], strict=True)
                if ok and n in bot}
        cap = self.settings.shard_capacity
        roomy = {n: v for n, v in live.items() if v < cap}
        spill = {n: v for n, v in live.items() if v < cap + max(1, int(cap * SPILL_SHARE))}
        pick = roomy or spill
        if not pick:
            return None
        shard = min(pick.items(), key=lambda kv: (kv[1], kv[0]))[0]
        logger.info("shard {} lost (its node does not answer): a viewer goes to {} ({} of "
                    "{})", lost, shard, pick[shard] + 1, cap)
        return shard

    async def _answers(self, shard: str) -> bool:
        """Whether ``shard``'s node answers (one probe per ``ANSWER_FRESH_SECONDS``)."""
        now = time.monotonic()
        at, probe = self._answered.get(shard, (-1e9, None))
        if probe is None or now - at >= ANSWER_FRESH_SECONDS:
            probe = asyncio.ensure_future(self._probe(shard))
            self._answered[shard] = (now, probe)
        return await asyncio.shield(probe)

    async def _probe(self, shard: str) -> bool:
        try:
            await asyncio.wait_for(self.livekit.answers(shard), PROBE_SECONDS)
            return True
        except (LiveKitError, TimeoutError):
            return False

    def forget(self, room: str) -> None:
        """Someone left or was removed: count again on the next join."""
        self._counts.pop(room, None)

    def ensure(self, shard: str, metadata: dict[str, Any]) -> None:
        """(Re-)create ``shard`` with the stage's metadata, in the background.

        At most every few seconds: after a node loss LiveKit re-homes the room
        empty-handed, and while it still counts the dead node as up the call waits; the
        viewer's join need not.
        """
        now = time.monotonic()
        if now - self._ensured.get(shard, -ENSURE_SECONDS) < ENSURE_SECONDS:
            return
        self._ensured[shard] = now
        task = asyncio.ensure_future(self._ensure(shard, metadata))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _ensure(self, shard: str, metadata: dict[str, Any]) -> None:
        deadline = time.monotonic() + ENSURE_GIVE_UP_SECONDS
        while True:
            try:
                await asyncio.wait_for(self.livekit.ensure_room(shard, metadata),
                                       CALL_SECONDS)
                return
            except (LiveKitError, TimeoutError) as exc:
                if time.monotonic() > deadline:
                    logger.warning("shard {}: not ensured ({!r})", shard, exc)
                    self._ensured.pop(shard, None)
                    return
            await asyncio.sleep(1.0)

    async def set_metadata(self, room: str, metadata: dict[str, Any]) -> None:
        """Copy the stage's metadata (title, speaker, state) to every shard."""
        text = json.dumps(metadata)
        for shard, result in zip(self.names(room), await asyncio.gather(
                *(asyncio.wait_for(self.livekit.set_metadata(s, metadata), CALL_SECONDS)
                  for s in self.names(room)), return_exceptions=True), strict=True):
            if isinstance(result, BaseException):
                logger.warning("shard {}: metadata not set ({!r}): {}", shard, result,
                               text[:80])

    async def delete(self, room: str) -> None:
        """Close every shard room (the webinar ended; pages saw the metadata first)."""
        await asyncio.gather(*(self.livekit.delete_room(s) for s in self.names(room)),
                             return_exceptions=True)
        self.forget(room)
        self.placements.drop_room(room)

    async def remove(self, room: str, identity: str) -> None:
        """Put ``identity`` out of whichever shard holds it."""
        self.placements.pop((room, identity))
        await asyncio.gather(*(self.livekit.remove(s, identity) for s in self.names(room)),
                             return_exceptions=True)
