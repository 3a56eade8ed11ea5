"""Sends caption lines to the room as LiveKit text streams and keeps the final ones on disk.

Each line goes on ``protocol.CAPTION_TOPIC`` with the attributes
``CAPTION_SPEAKER_ATTR``, ``CAPTION_FINAL_ATTR`` and LiveKit's own ``lk.segment_id``
(a page replaces an interim line by its final); final lines are appended to
``<state_dir>/sessions/<room>/captions.jsonl`` (0600).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

from livekit import rtc
from loguru import logger

from broadcaster.config import Settings
from broadcaster.protocol import (
    CAPTION_FINAL_ATTR,
    CAPTION_SEQ_ATTR,
    CAPTION_SPEAKER_ATTR,
    CAPTION_TOPIC,
)

SEGMENT_ATTR = "lk.segment_id"
SEND_TIMEOUT_SECS = 5.0
#: segments whose line numbers are remembered (older ones are long finished)
SEQ_SEGMENTS_KEPT = 1024

RoomSource = rtc.Room | Callable[[], "rtc.Room | None"] | None
TextSender = Callable[..., Awaitable[None]]
"""``send(text, topic=..., attributes=...)``: e.g. ShardFanout.send_text."""


def captions_path(settings: Settings, room: str) -> Path:
    """Where a session's caption lines are kept."""
    return Path(settings.state_dir) / "sessions" / room / "captions.jsonl"


class CaptionPublisher:
    """Sends caption lines to the room and keeps the final ones on disk.

    Args:
        room: the bot's connected rtc.Room, or a callable returning it (e.g. the
            transport's room, which exists only once the pipeline runs), or None to
            only keep the file.
        log_path: the JSONL file (parents created); None keeps nothing on disk.
    """

    def __init__(self, room: RoomSource, log_path: str | Path | None = None) -> None:
        self._room = room
        self.log_path = Path(log_path) if log_path else None
        if self.log_path:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.sent = 0
        self.also: TextSender | None = None
        """Sends each caption to more rooms too (the audience shards)."""
        self._seq: OrderedDict[str, int] = OrderedDict()

    @classmethod
    def for_session(cls, settings: Settings, room_name: str, room: RoomSource) -> CaptionPublisher:
        """Make a publisher that keeps the session's captions under its state directory."""
        return cls(room, captions_path(settings, room_name))

    def room(self) -> rtc.Room | None:
        """Return the room to send to, if it exists and is connected."""
        try:  # e.g. the transport's room, which raises until the pipeline runs
            room = self._room() if callable(self._room) else self._room
        except Exception:
            return None
        return room if room is not None and room.isconnected() else None

    async def publish(
        self, text: str, *, speaker: str, final: bool, segment: str, source: str
    ) -> None:
        """Send one caption (and keep it, if final). Never raises: captions are best effort."""
        if final:
            self._keep(text, speaker=speaker, source=source)
        attributes = {
            CAPTION_SPEAKER_ATTR: speaker,
            CAPTION_FINAL_ATTR: "true" if final else "false",
            SEGMENT_ATTR: segment,
            CAPTION_SEQ_ATTR: str(self._next_seq(segment)),
        }
        if self.also is not None:  # the audience shards (broadcaster.bot.shard_fanout)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(
                    self.also(text, topic=CAPTION_TOPIC, attributes=attributes),
                    SEND_TIMEOUT_SECS)
        room = self.room()
        if room is None:
            logger.debug(f"captions: no connected room; not sent: {text[:60]!r}")
            return
        try:
            await asyncio.wait_for(
                room.local_participant.send_text(
                    text, topic=CAPTION_TOPIC, attributes=attributes, compress=False
                ),
                SEND_TIMEOUT_SECS,
            )
            self.sent += 1
        except Exception as exc:  # a lost caption must never stop the bot
            logger.warning(f"captions: send failed ({exc!r}): {text[:60]!r}")

    def _next_seq(self, segment: str) -> int:
        """Return the number of this segment's next line (receivers order lines by it)."""
        seq = self._seq.pop(segment, 0) + 1
        self._seq[segment] = seq
        while len(self._seq) > SEQ_SEGMENTS_KEPT:
            self._seq.popitem(last=False)
        return seq

    def _keep(self, text: str, *, speaker: str, source: str) -> None:
        if not self.log_path:
            return
        line = {
            "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "speaker": speaker,
            "source": source,
            "text": text,
        }
        try:
            # what was said in a webinar is private: the file is 0600 (and made so if an
            # older version created it 0644)
            fd = os.open(self.log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            if os.fstat(fd).st_mode & 0o777 != 0o600:
                os.fchmod(fd, 0o600)
            with os.fdopen(fd, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(line, ensure_ascii=False) + "\n")
        except OSError as exc:
            logger.warning(f"captions: cannot append to {self.log_path}: {exc}")
