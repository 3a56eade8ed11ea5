"""What the audience does beyond watching: raised hands and a moderated Q&A.

Everything here comes from the web app's own API (viewers publish nothing into the
room; docs/security.md): a viewer raises a hand or upvotes a question over HTTP with
their LiveKit token, limited per identity and per address, refused when banned. The
host sees the hands in the order they went up and hands the floor over with one click
(the same promotion as the participant list: :meth:`Webinars.promote`).

Questions are ``open``, ``answered`` or ``hidden``; hidden ones vanish for viewers.
Nothing from the audience reaches the avatar unless the host or the speaker picks a
question ("ask the avatar"): then the web app sends it to the bot with LiveKit's
server API (a data packet with no participant as sender: only the server can send
that) and marks it answered.
"""

from __future__ import annotations

import json
import sqlite3
import time
from typing import Any

from loguru import logger

from broadcaster.protocol import ASK_TOPIC
from broadcaster.roles import LISTENER_SUFFIX
from broadcaster.web.errors import ApiError, conflict, forbidden, invalid, not_found, too_many
from broadcaster.web.rate_limit import SlidingWindowLimit, TokenBuckets
from broadcaster.web.store import Question, Webinar
from broadcaster.web.webinars import REMOVED, Webinars

STATES = ("open", "answered", "hidden")
SORTS = ("top", "new")
MAX_ID_DIGITS = 18
#: how many questions a list holds (newest or most voted first)
LIST_LIMIT = 200
#: a viewer's list is built from one query per room and sort at most this often
LIST_CACHE_SECONDS = 1.0
#: a raised hand outlives its owner's absence this long (a reload, a network blip), then
#: goes down by itself so the host never hands the floor to an empty seat
HAND_ABSENT_SECONDS = 20.0


def question_id(raw: str) -> int:
    """Read a question id from a path segment: 422 unless a plain positive integer."""
    if not (raw.isascii() and raw.isdigit()) or len(raw) > MAX_ID_DIGITS or int(raw) < 1:
        raise invalid("question id must be a positive integer")
    return int(raw)


class Audience:
    """Hands and questions of every webinar; one per app (in the app's cleanup context)."""

    def __init__(self, webinars: Webinars) -> None:
        self.webinars = webinars
        self.store = webinars.store
        self.db: sqlite3.Connection = webinars.store.db
        s = webinars.settings
        self.action_limit = SlidingWindowLimit(s.audience_actions_per_minute, 60.0)
        self.action_address_limit = TokenBuckets(s.audience_action_burst,
                                                 s.audience_action_rate_per_minute)
        self._lists: dict[tuple[str, str], tuple[float, list[Question]]] = {}
        self._absent_since: dict[tuple[str, str], float] = {}

    # --- who may act -------------------------------------------------------------------
    def admit(self, room: str, identity: str, address: str) -> Webinar:
        """Check the webinar is live, the identity not banned, both limits not hit (4xx)."""
        webinar = self.webinars.get_live(room)
        if self.store.banned(room, identity):
            raise forbidden(REMOVED)
        wait = self.action_address_limit.hit(address)
        if wait is None:
            wait = self.action_limit.hit((room, identity))
        if wait is not None:
            raise too_many(f"too many hand or vote actions: try again in "
                           f"{max(1, round(wait))} s", wait)
        return webinar

    # --- hands -------------------------------------------------------------------------
    def hand(self, room: str, identity: str) -> dict[str, Any]:
        """``identity``'s hand: raised or not, its place in the queue, and the floor."""
        webinar = self.webinars.get(room)
        speaking = webinar.speaker == identity
        if speaking:  # the floor answers a hand
            self.db.execute("DELETE FROM hands WHERE room = ? AND identity = ?",
                            (room, identity))
        row = self.db.execute("SELECT raised_at FROM hands WHERE room = ? AND identity = ?",
                              (room, identity)).fetchone()
        position = None
        if row is not None:
            position = 1 + self.db.execute(
                "SELECT count(*) FROM hands h WHERE h.room = ? AND h.raised_at < ? AND "
                "NOT EXISTS (SELECT 1 FROM bans b WHERE b.room = h.room "
                "AND b.identity = h.identity)", (room, row["raised_at"])).fetchone()[0]
        return {"raised": row is not None, "position": position, "speaker": speaking}

    def set_hand(self, room: str, identity: str, name: str, raised: bool) -> dict[str, Any]:
        """Raise (at the back of the queue; a raised hand keeps its place) or lower."""
        webinar = self.webinars.get(room)
        if raised and webinar.speaker == identity:
            raise conflict("you have the floor already")
        if raised:
            self.db.execute(
                "INSERT INTO hands (room, identity, name, raised_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (room, identity) DO NOTHING", (room, identity, name, time.time()))
        else:
            self.db.execute("DELETE FROM hands WHERE room = ? AND identity = ?",
                            (room, identity))
        return self.hand(room, identity)

    def hands(self, room: str) -> list[dict[str, Any]]:
        """List the queue, first raised first; never the speaker or someone removed."""
        webinar = self.webinars.get(room)
        rows = self.db.execute(
            "SELECT identity, name, raised_at FROM hands h WHERE room = ? AND NOT EXISTS "
            "(SELECT 1 FROM bans b WHERE b.room = h.room AND b.identity = h.identity) "
            "ORDER BY raised_at, identity", (room,))
        return [dict(r) for r in rows if r["identity"] != webinar.speaker]

    def drop_absent_hands(self, room: str, present: set[str], now: float) -> list[str]:
        """Lower the hands of owners gone from ``room`` for ``HAND_ABSENT_SECONDS``.

        Called by the floor guard's every round with LiveKit's view of who is connected
        (no webhook needed); returns the identities whose hands went down.
        """
        raised = [r[0] for r in self.db.execute("SELECT identity FROM hands WHERE room = ?",
                                                 (room,))]
        for key in [k for k in self._absent_since if k[0] == room and k[1] not in raised]:
            del self._absent_since[key]
        dropped = []
        for identity in raised:
            key = (room, identity)
            if identity in present:
                self._absent_since.pop(key, None)
            elif now - self._absent_since.setdefault(key, now) >= HAND_ABSENT_SECONDS:
                self.lower(room, identity)
                del self._absent_since[key]
                dropped.append(identity)
        if dropped:
            logger.info("webinar {}: hands of {} went down: gone for {:g} s", room,
                        len(dropped), HAND_ABSENT_SECONDS)
        return dropped

    def lower(self, room: str, identity: str) -> bool:
        """Put ``identity``'s hand down; False when it was not up."""
        self.webinars.get(room)
        cur = self.db.execute("DELETE FROM hands WHERE room = ? AND identity = ?",
                              (room, identity))
        return cur.rowcount > 0

    async def give_floor(self, room: str, identity: str) -> Webinar:
        """Promote the hand's owner (the host's promotion) and lower the hand.

        A hand whose owner has left goes down too (and the 404 reaches the host).
        """
        self.webinars.get_live(room)
        if self.db.execute("SELECT 1 FROM hands WHERE room = ? AND identity = ?",
                           (room, identity)).fetchone() is None:
            raise not_found(f"{identity!r} has no hand raised")
        try:
            webinar = await self.webinars.promote(room, identity)
        except ApiError as exc:
            if exc.status == 404:
                self.lower(room, identity)  # left the room: the hand is stale
            raise
        self.lower(room, identity)
        logger.info("webinar {}: {} got the floor from a raised hand", room, identity)
        return webinar

    # --- questions ---------------------------------------------------------------------
    def question(self, room: str, qid: int) -> Question:
        """Return question ``qid`` of ``room`` (404 when it is another room's)."""
        row = self.db.execute("SELECT * FROM questions WHERE room = ? AND id = ?",
                              (room, qid)).fetchone()
        if row is None:
            raise not_found(f"no question {qid} here")
        return Question(**row)

    def _rows(self, room: str, sort: str, *, hidden: bool) -> list[Question]:
        order = "votes DESC, id DESC" if sort == "top" else "id DESC"
        where = "" if hidden else "AND state != 'hidden'"
        rows = self.db.execute(
            f"SELECT * FROM questions WHERE room = ? {where} ORDER BY {order} LIMIT ?",
            (room, LIST_LIMIT))
        return [Question(**r) for r in rows]

    def board(self, room: str, identity: str, sort: str) -> list[dict[str, Any]]:
        """List what a viewer sees: every question but the hidden ones.

        With the asker's name (not their identity), which are theirs and which they
        voted for.
        """
        self.webinars.get(room)
        if sort not in SORTS:
            raise invalid(f"query 'sort' must be one of {', '.join(SORTS)}")
        now = time.monotonic()
        cached = self._lists.get((room, sort))
        if cached is None or now - cached[0] > LIST_CACHE_SECONDS:
            cached = (now, self._rows(room, sort, hidden=False))
            self._lists[(room, sort)] = cached
        voted = {r[0] for r in self.db.execute(
            "SELECT v.question_id FROM question_votes v JOIN questions q ON q.id = "
            "v.question_id WHERE q.room = ? AND v.identity = ?", (room, identity))}
        return [{"id": q.id, "name": q.name, "text": q.text, "created_at": q.created_at,
                 "state": q.state, "votes": q.votes, "mine": q.identity == identity,
                 "voted": q.id in voted} for q in cached[1]]

    def for_host(self, room: str, sort: str) -> list[dict[str, Any]]:
        """List every question, hidden ones too, with identities (the host's view)."""
        self.webinars.get(room)
        if sort not in SORTS:
            raise invalid(f"query 'sort' must be one of {', '.join(SORTS)}")
        return [q.as_json() for q in self._rows(room, sort, hidden=True)]

    def changed(self, room: str) -> None:
        """Forget the cached lists of ``room`` (a question was added or changed)."""
        for sort in SORTS:
            self._lists.pop((room, sort), None)

    def vote(self, room: str, qid: int, identity: str, up: bool) -> dict[str, Any]:
        """One vote per identity and question; ``up`` False takes it back."""
        q = self.question(room, qid)
        if q.state == "hidden":
            raise not_found(f"no question {qid} here")
        if up:
            cur = self.db.execute("INSERT OR IGNORE INTO question_votes (question_id, identity)"
                                  " VALUES (?, ?)", (qid, identity))
            if cur.rowcount:
                self.db.execute("UPDATE questions SET votes = votes + 1 WHERE id = ?", (qid,))
        else:
            cur = self.db.execute("DELETE FROM question_votes WHERE question_id = ? AND "
                                  "identity = ?", (qid, identity))
            if cur.rowcount:
                self.db.execute("UPDATE questions SET votes = votes - 1 WHERE id = ?", (qid,))
        self.changed(room)
        return {"id": qid, "votes": self.question(room, qid).votes, "voted": up}

    def set_state(self, room: str, qid: int, state: str) -> Question:
        """Mark question ``qid`` open, answered or hidden."""
        self.webinars.get(room)
        if state not in STATES:
            raise invalid(f"field 'state' must be one of {', '.join(STATES)}")
        self.question(room, qid)
        self.db.execute(
            "UPDATE questions SET state = ?, answered_at = CASE WHEN ? = 'answered' THEN "
            "coalesce(answered_at, ?) ELSE answered_at END WHERE id = ?",
            (state, state, time.time(), qid))
        self.changed(room)
        logger.info("webinar {}: question {} {}", room, qid, state)
        return self.question(room, qid)

    async def ask_avatar(self, room: str, qid: int) -> Question:
        """Send question ``qid`` to the bot on stage, then mark it answered.

        409 when no bot is in the room (nothing is marked).
        """
        webinar = self.webinars.get_live(room)
        q = self.question(room, qid)
        if q.state == "hidden":
            raise conflict("that question is hidden; show it before asking the avatar")
        bot = self.webinars.settings.bot_identity
        bots = [bot, bot + LISTENER_SUFFIX]
        present = [i for i in bots
                   if await self.webinars.livekit.participant(webinar.room, i) is not None]
        if not present:
            raise conflict("the avatar is not on stage: start the bot first")
        payload = json.dumps({"id": q.id, "name": q.name, "text": q.text}).encode()
        await self.webinars.livekit.send_data(room, payload, topic=ASK_TOPIC,
                                              identities=present)
        logger.info("webinar {}: question {} sent to the avatar", room, qid)
        return self.set_state(room, qid, "answered")
