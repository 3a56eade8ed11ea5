"""SQLite persistence: webinars, audience questions and identity claims.

Plain synchronous sqlite3 calls: each is a single indexed statement that takes
microseconds, so running them on the event loop is cheaper than a thread hop.
WAL lets a second process (or a restarted app) read while this one writes.

The database holds presenter codes and questions: it (and SQLite's -wal/-shm files,
which take its mode) is 0600, and one made 0644 by an older version is tightened.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS webinars (
    room           TEXT PRIMARY KEY,
    title          TEXT NOT NULL,
    presenter_code TEXT NOT NULL,
    state          TEXT NOT NULL DEFAULT 'live',
    speaker        TEXT,
    created_at     REAL NOT NULL,
    ended_at       REAL,
    host_floor     INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS questions (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    room       TEXT NOT NULL REFERENCES webinars(room),
    identity   TEXT NOT NULL,
    name       TEXT NOT NULL,
    text       TEXT NOT NULL,
    created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS questions_room_id ON questions(room, id);
CREATE TABLE IF NOT EXISTS identity_claims (
    room       TEXT NOT NULL,
    identity   TEXT NOT NULL,
    claim_hash TEXT NOT NULL,
    role       TEXT NOT NULL,
    issued_at  REAL NOT NULL,
    seen_at    REAL,
    PRIMARY KEY (room, identity)
);
CREATE TABLE IF NOT EXISTS bans (
    room       TEXT NOT NULL,
    identity   TEXT NOT NULL,
    claim_hash TEXT,
    name       TEXT NOT NULL,
    banned_at  REAL NOT NULL,
    PRIMARY KEY (room, identity)
);
CREATE INDEX IF NOT EXISTS bans_claim ON bans(room, claim_hash);
CREATE TABLE IF NOT EXISTS hands (
    room      TEXT NOT NULL,
    identity  TEXT NOT NULL,
    name      TEXT NOT NULL,
    raised_at REAL NOT NULL,
    PRIMARY KEY (room, identity)
);
CREATE INDEX IF NOT EXISTS hands_order ON hands(room, raised_at);
CREATE TABLE IF NOT EXISTS question_votes (
    question_id INTEGER NOT NULL,
    identity    TEXT NOT NULL,
    PRIMARY KEY (question_id, identity)
);
"""
#: columns added after the first release: (table, column, declaration)
MIGRATIONS = [
    ("webinars", "host_floor", "INTEGER NOT NULL DEFAULT 0"),
    ("identity_claims", "seen_at", "REAL"),
    ("questions", "state", "TEXT NOT NULL DEFAULT 'open'"),
    ("questions", "votes", "INTEGER NOT NULL DEFAULT 0"),
    ("questions", "answered_at", "REAL"),
]
PRIVATE_FILE = 0o600


@dataclass(frozen=True)
class Webinar:
    """A webinar row: the truth the LiveKit room metadata copies."""

    room: str
    title: str
    presenter_code: str
    state: str
    speaker: str | None
    created_at: float
    ended_at: float | None
    host_floor: int = 0
    """1 once the host has handed or taken the floor: from then on only the host hands it
    out (the presenter code no longer takes it on join)."""


@dataclass(frozen=True)
class Question:
    """An audience question, numbered per database so readers can ask for newer ones."""

    id: int
    room: str
    identity: str
    name: str
    text: str
    created_at: float
    state: str = "open"
    """open, answered or hidden (web/audience.py: Q&A moderation)."""
    votes: int = 0
    answered_at: float | None = None

    def as_json(self) -> dict[str, object]:
        """Describe the question for the speaker's page (the room is in the URL)."""
        return {
            "id": self.id, "identity": self.identity, "name": self.name,
            "text": self.text, "created_at": self.created_at, "state": self.state,
            "votes": self.votes, "answered_at": self.answered_at,
        }


@dataclass(frozen=True)
class Claim:
    """The secret-backed hold of an identity in a room; only its hash is stored."""

    room: str
    identity: str
    claim_hash: str
    role: str
    issued_at: float
    seen_at: float | None = None

    def matches(self, secret: str | None) -> bool:
        """Constant-time check of a presented claim secret against the stored hash."""
        return bool(secret) and hmac.compare_digest(self.claim_hash, hash_claim(secret or ""))


def hash_claim(secret: str) -> str:
    """Claims are stored hashed: a copied database does not let anyone take an identity."""
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True)
class Ban:
    """A removal by the host: the identity and, when known, the claim that held it."""

    room: str
    identity: str
    claim_hash: str | None
    name: str
    banned_at: float

    def as_json(self) -> dict[str, object]:
        """Describe the ban for the host (never the claim's hash)."""
        return {"identity": self.identity, "name": self.name, "banned_at": self.banned_at}


def _private(path: Path) -> None:
    """Create ``path`` 0600 if missing, and make it (and SQLite's side files) 0600."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, PRIVATE_FILE))
    except FileExistsError:
        pass
    for p in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        try:
            if p.stat().st_mode & 0o777 != PRIVATE_FILE:
                os.chmod(p, PRIVATE_FILE)
        except FileNotFoundError:
            pass


class Store:
    """The app's only database handle."""

    def __init__(self, path: str | Path) -> None:
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            _private(Path(path))
        self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._db.execute("PRAGMA busy_timeout=2000")
        self._db.executescript(SCHEMA)
        for table, column, decl in MIGRATIONS:
            have = {r["name"] for r in self._db.execute(f"PRAGMA table_info({table})")}
            if column not in have:
                self._db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {decl}")
        self._db.execute("CREATE INDEX IF NOT EXISTS claims_seen ON identity_claims(seen_at)")
        if str(path) != ":memory:":
            _private(Path(path))  # the -wal/-shm files SQLite just made

    def close(self) -> None:
        """Close the database handle; the store is unusable afterwards."""
        self._db.close()

    @property
    def db(self) -> sqlite3.Connection:
        """The connection, for the modules that own tables of their own (web/audience.py)."""
        return self._db

    def ping(self) -> None:
        """Raise ``sqlite3.Error`` unless the database answers a read (``/readyz``)."""
        self._db.execute("SELECT count(*) FROM webinars").fetchone()

    # --- webinars ----------------------------------------------------------------------
    def create_webinar(self, room: str, title: str, presenter_code: str) -> Webinar:
        """Insert a new webinar; raises sqlite3.IntegrityError when the room exists."""
        self._db.execute(
            "INSERT INTO webinars (room, title, presenter_code, state, created_at) "
            "VALUES (?, ?, ?, 'live', ?)",
            (room, title, presenter_code, time.time()),
        )
        webinar = self.webinar(room)
        assert webinar is not None
        return webinar

    def webinar(self, room: str) -> Webinar | None:
        """Return the webinar of ``room``, or None when there is none."""
        row = self._db.execute("SELECT * FROM webinars WHERE room = ?", (room,)).fetchone()
        return Webinar(**row) if row else None

    def webinars(self) -> list[Webinar]:
        """List every webinar, newest first (ended ones included)."""
        rows = self._db.execute("SELECT * FROM webinars ORDER BY created_at DESC, room")
        return [Webinar(**row) for row in rows]

    def delete_webinar(self, room: str) -> None:
        """Undo a creation that LiveKit refused (only ever for a webinar with no history)."""
        self._db.execute("DELETE FROM identity_claims WHERE room = ?", (room,))
        self._db.execute("DELETE FROM webinars WHERE room = ?", (room,))

    def set_speaker(self, room: str, speaker: str | None) -> None:
        """Record who holds the floor (None: nobody); LiveKit's grants are the caller's job."""
        self._db.execute("UPDATE webinars SET speaker = ? WHERE room = ?", (speaker, room))

    def end_webinar(self, room: str) -> None:
        """Mark the webinar ended: nobody speaks, no claim matters any more (bans stay)."""
        self._db.execute(
            "UPDATE webinars SET state = 'ended', speaker = NULL, ended_at = ? WHERE room = ?",
            (time.time(), room),
        )
        self._db.execute("DELETE FROM identity_claims WHERE room = ?", (room,))

    def set_host_floor(self, room: str) -> None:
        """Record that the host runs the floor now: the presenter code no longer takes it."""
        self._db.execute("UPDATE webinars SET host_floor = 1 WHERE room = ?", (room,))

    def set_presenter_code(self, room: str, code: str) -> None:
        """Replace the presenter invite code (joins with the old one are refused)."""
        self._db.execute("UPDATE webinars SET presenter_code = ? WHERE room = ?", (code, room))

    # --- questions ---------------------------------------------------------------------
    def add_question(self, room: str, identity: str, name: str, text: str) -> Question:
        """Store a question (already validated and rate-limited) and return it numbered."""
        cur = self._db.execute(
            "INSERT INTO questions (room, identity, name, text, created_at) "
            "VALUES (?, ?, ?, ?, ?)",
            (room, identity, name, text, time.time()),
        )
        row = self._db.execute("SELECT * FROM questions WHERE id = ?", (cur.lastrowid,))
        return Question(**row.fetchone())

    def questions(self, room: str, after: int = 0, limit: int = 200) -> list[Question]:
        """List up to ``limit`` questions numbered past ``after``, oldest first (for polling)."""
        rows = self._db.execute(
            "SELECT * FROM questions WHERE room = ? AND id > ? ORDER BY id LIMIT ?",
            (room, after, limit),
        )
        return [Question(**row) for row in rows]

    # --- identity claims ---------------------------------------------------------------
    def claim(self, room: str, identity: str) -> Claim | None:
        """Return the claim on ``identity`` in ``room``, expired or not; None when unclaimed."""
        row = self._db.execute(
            "SELECT * FROM identity_claims WHERE room = ? AND identity = ?", (room, identity)
        ).fetchone()
        return Claim(**row) if row else None

    def claims(self, room: str) -> dict[str, Claim]:
        """Return every claim in ``room`` by identity (one query for a participant list)."""
        rows = self._db.execute("SELECT * FROM identity_claims WHERE room = ?", (room,))
        return {row["identity"]: Claim(**row) for row in rows}

    def put_claim(self, room: str, identity: str, secret: str, role: str) -> None:
        """Issue (or re-issue) the claim on ``identity``, storing only the secret's hash."""
        now = time.time()
        self._db.execute(
            "INSERT INTO identity_claims (room, identity, claim_hash, role, issued_at, seen_at) "
            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (room, identity) DO UPDATE SET "
            "claim_hash = excluded.claim_hash, role = excluded.role, "
            "issued_at = excluded.issued_at, seen_at = excluded.seen_at",
            (room, identity, hash_claim(secret), role, now, now),
        )

    def delete_claim(self, room: str, identity: str) -> None:
        """Free ``identity`` in ``room`` (after a removal, whose ban keeps it out)."""
        self._db.execute("DELETE FROM identity_claims WHERE room = ? AND identity = ?",
                         (room, identity))

    def touch_claims(self, room: str, identities: list[str], now: float,
                     older_than: float) -> None:
        """Mark the claims of connected ``identities`` as seen.

        Only claims last seen before ``older_than`` are written, so a crowd costs a write a
        minute, not one per round.
        """
        for i in range(0, len(identities), 500):
            chunk = identities[i:i + 500]
            marks = ",".join("?" * len(chunk))
            self._db.execute(
                f"UPDATE identity_claims SET seen_at = ? WHERE room = ? AND seen_at < ? "
                f"AND identity IN ({marks})", (now, room, older_than, *chunk))

    def purge_claims(self, seen_before: float) -> int:
        """Forget claims not seen since ``seen_before``, except the speakers' own."""
        cur = self._db.execute(
            "DELETE FROM identity_claims WHERE coalesce(seen_at, issued_at) < ? AND NOT EXISTS"
            " (SELECT 1 FROM webinars w WHERE w.room = identity_claims.room"
            " AND w.speaker = identity_claims.identity)", (seen_before,))
        return cur.rowcount

    # --- bans --------------------------------------------------------------------------
    def ban(self, room: str, identity: str, claim_hash: str | None, name: str) -> None:
        """Ban ``identity`` and its claim; banning again keeps the claim already known."""
        self._db.execute(
            "INSERT INTO bans (room, identity, claim_hash, name, banned_at) VALUES "
            "(?, ?, ?, ?, ?) ON CONFLICT (room, identity) DO UPDATE SET "
            "claim_hash = coalesce(excluded.claim_hash, bans.claim_hash), "
            "banned_at = excluded.banned_at",
            (room, identity, claim_hash, name, time.time()),
        )

    def bans(self, room: str) -> list[Ban]:
        """List the bans of ``room``, oldest first."""
        rows = self._db.execute("SELECT * FROM bans WHERE room = ? ORDER BY banned_at", (room,))
        return [Ban(**row) for row in rows]

    def unban(self, room: str, identity: str) -> bool:
        """Lift the ban on ``identity``; False when there was none."""
        cur = self._db.execute("DELETE FROM bans WHERE room = ? AND identity = ?",
                               (room, identity))
        return cur.rowcount > 0

    def banned(self, room: str, identity: str, claim: str | None = None) -> bool:
        """Whether ``identity``, or whoever presents ``claim``, was removed by the host."""
        row = self._db.execute(
            "SELECT 1 FROM bans WHERE room = ? AND (identity = ? OR claim_hash = ?) LIMIT 1",
            (room, identity, hash_claim(claim) if claim else None)).fetchone()
        return row is not None

    def banned_identities(self, room: str) -> set[str]:
        """Return the banned identities of ``room`` at once, for a round over its people."""
        rows = self._db.execute("SELECT identity FROM bans WHERE room = ?", (room,))
        return {row["identity"] for row in rows}
