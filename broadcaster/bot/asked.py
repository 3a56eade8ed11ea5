"""Questions the host or the speaker picked for the avatar ("ask the avatar").

The web app sends each with LiveKit's server API on ``protocol.ASK_TOPIC``, to the bot
only. A data packet with no participant as its sender can only come from a holder of
the API secret (LiveKit's server SDKs), so that is the only kind the bot takes: a
participant's packet on the topic is dropped (and nobody but the bot may publish data
anyway, docs/security.md). Each becomes an :class:`AudienceQuestionFrame` for the
responder, which says who asked, the question, then its answer.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from livekit import rtc
from loguru import logger
from pipecat.frames.frames import Frame
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

from broadcaster.frames import AudienceQuestionFrame
from broadcaster.protocol import ASK_TOPIC
from broadcaster.sdk_internals import transport_room

MAX_NAME_CHARS = 64
MAX_TEXT_CHARS = 2000
#: the same question sent again within this many ids is said once (a retried send)
SEEN_IDS = 256


def parse_ask(data: bytes) -> AudienceQuestionFrame | None:
    """Return the question in a packet from the web app, or None when it is not one."""
    try:
        body = json.loads(data)
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    if not isinstance(body, dict):
        return None
    qid, name, text = body.get("id"), body.get("name"), body.get("text")
    if (not isinstance(qid, int) or isinstance(qid, bool) or not isinstance(name, str)
            or not isinstance(text, str)):
        return None
    name, text = name.strip()[:MAX_NAME_CHARS], " ".join(text.split())[:MAX_TEXT_CHARS]
    if not name or not text:
        return None
    return AudienceQuestionFrame(question_id=qid, asker=name, text=text)


class AskedQuestions(FrameProcessor):
    """Puts the web app's chosen questions into the pipeline, before the responder."""

    def __init__(self, **kwargs: Any) -> None:
        """Create it; :meth:`follow_transport` connects it to the bot's room."""
        super().__init__(**kwargs)
        self.received = 0
        self._seen: list[int] = []
        self._room: rtc.Room | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def follow_transport(self, transport: Any) -> None:
        """Listen in the room of a pipecat ``LiveKitTransport`` once it has connected."""

        @transport.event_handler("on_connected")
        async def _on_connected(_transport: Any) -> None:
            self.follow_room(transport_room(transport))

    def follow_room(self, room: rtc.Room) -> None:
        """Take questions from ``room``'s data packets on the ask topic."""
        if self._room is room:
            return
        self._room = room
        room.on("data_received", self.on_data)

    def on_data(self, packet: rtc.DataPacket) -> None:
        """Queue a question from the web app; drop anything else on the topic."""
        if packet.topic != ASK_TOPIC:
            return
        if packet.participant is not None:
            logger.warning(f"{self}: dropped a question sent by participant "
                           f"{packet.participant.identity!r} (only the web app asks)")
            return
        frame = parse_ask(packet.data)
        if frame is None:
            logger.warning(f"{self}: dropped a malformed question packet")
            return
        if frame.question_id in self._seen:
            return
        self._seen = [*self._seen[-(SEEN_IDS - 1):], frame.question_id]
        self.received += 1
        logger.info(f"{self}: {frame.asker} asks (question {frame.question_id})")
        task = asyncio.get_running_loop().create_task(self.queue_frame(frame))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        """Pass every frame on (questions were queued in as frames of this processor)."""
        await super().process_frame(frame, direction)
        await self.push_frame(frame, direction)
