"""SQLite persistence: webinars, audience questions and identity claims.

Plain synchronous sqlite3 calls: each is a single indexed statement that takes
microseconds, so running them on the event loop is cheaper than a thread hop.
WAL lets a second process (or a restarted app) read while this one writes.
"""

from __future__ import annotations

import hashlib
import hmac
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
    ended_at       REAL
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
    PRIMARY KEY (room, identity)
);
"""


@dataclass(frozen=True)
class Webinar:
    room: str
    title: str
    presenter_code: str
    state: str
    speaker: str | None
    created_at: float
    ended_at: float | None


@dataclass(frozen=True)
class Question:
    id: int
    room: str
    identity: str
    name: str
    text: str
    created_at: float

    def as_json(self) -> dict[str, object]:
        return {
            "id": self.id, "identity": self.identity, "name": self.name,
            "text": self.text, "created_at": self.created_at,
        }


@dataclass(frozen=True)
class Claim:
    room: str
    identity: str
    claim_hash: str
    role: str
    issued_at: float

    def matches(self, secret: str | None) -> bool:
        """Constant-time check of a presented claim secret against the stored hash."""
        return bool(secret) and hmac.compare_digest(self.claim_hash, hash_claim(secret or ""))


def hash_claim(secret: str) -> str:
    """Claims are stored hashed: a copied database does not let anyone take an identity."""
    return hashlib.sha256(secret.encode()).hexdigest()


class Store:
    """The app's only database handle."""

    def __init__(self, path: str | Path) -> None:
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._db.execute("PRAGMA busy_timeout=2000")
        self._db.executescript(SCHEMA)

    def close(self) -> None:
        self._db.close()

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
        row = self._db.execute("SELECT * FROM webinars WHERE room = ?", (room,)).fetchone()
        return Webinar(**row) if row else None

    def webinars(self) -> list[Webinar]:
        rows = self._db.execute("SELECT * FROM webinars ORDER BY created_at DESC, room")
        return [Webinar(**row) for row in rows]

    def delete_webinar(self, room: str) -> None:
        """Undo a creation that LiveKit refused (only ever for a webinar with no history)."""
        self._db.execute("DELETE FROM identity_claims WHERE room = ?", (room,))
        self._db.execute("DELETE FROM webinars WHERE room = ?", (room,))

    def set_speaker(self, room: str, speaker: str | None) -> None:
        self._db.execute("UPDATE webinars SET speaker = ? WHERE room = ?", (speaker, room))

    def end_webinar(self, room: str) -> None:
        self._db.execute(
            "UPDATE webinars SET state = 'ended', speaker = NULL, ended_at = ? WHERE room = ?",
            (time.time(), room),
        )

    # --- questions ---------------------------------------------------------------------
    def add_question(self, room: str, identity: str, name: str, text: str) -> Question:
        cur = self._db.execute(
            "INSERT INTO questions (room, identity, name, text, created_at) "
            "VALUES (?, ?, ?, ?, ?)",
            (room, identity, name, text, time.time()),
        )
        row = self._db.execute("SELECT * FROM questions WHERE id = ?", (cur.lastrowid,))
        return Question(**row.fetchone())

    def questions(self, room: str, after: int = 0, limit: int = 200) -> list[Question]:
        rows = self._db.execute(
            "SELECT * FROM questions WHERE room = ? AND id > ? ORDER BY id LIMIT ?",
            (room, after, limit),
        )
        return [Question(**row) for row in rows]

    # --- identity claims ---------------------------------------------------------------
    def claim(self, room: str, identity: str) -> Claim | None:
        row = self._db.execute(
            "SELECT * FROM identity_claims WHERE room = ? AND identity = ?", (room, identity)
        ).fetchone()
        return Claim(**row) if row else None

    def claims(self, room: str) -> dict[str, Claim]:
        rows = self._db.execute("SELECT * FROM identity_claims WHERE room = ?", (room,))
        return {row["identity"]: Claim(**row) for row in rows}

    def put_claim(self, room: str, identity: str, secret: str, role: str) -> None:
        self._db.execute(
            "INSERT INTO identity_claims (room, identity, claim_hash, role, issued_at) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT (room, identity) DO UPDATE SET "
            "claim_hash = excluded.claim_hash, role = excluded.role, "
            "issued_at = excluded.issued_at",
            (room, identity, hash_claim(secret), role, time.time()),
        )
