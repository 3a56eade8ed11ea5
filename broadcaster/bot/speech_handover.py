"""Hand the avatar's speech to the next session before a rollover: no word lost, same look.

A rollover switches from the current avatar session to the next one, opened beside it.
Before this, the next one heard nothing of the answer being said: at the switch the
viewer lost what the current session had been sent but not said yet (pipecat sends up
to ~4 s ahead), and the picture went from the speaking look to the idle one.

:class:`SpeechHandover` (the avatar service's base) keeps, per session, what it was
sent of the current utterance and how far it has said it (:class:`SentSpeech`). Asked
to :meth:`hand_over`, it waits for a pause in what the current session is saying (a
pause between sentences), then sends the rest of the utterance to the next session at
once and from then on **mirrors** every piece of speech (and its end, and an interrupt)
to it: both sessions say the same words at the same moment, both look the same
(speaking or idle), so the switch, at a frame where the pictures match, changes neither
what is heard nor what is seen. The next session takes over the current one's pacing at
the switch. When no pause comes in time (``by``), the rest is handed over where the
current session is: the two then speak in step, a few milliseconds apart.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine
from typing import Any

from loguru import logger
from pipecat.services.heygen.client import HeyGenClient

from broadcaster.bot.sent_speech import BYTES_PER_S, SentSpeech, voiced_blocks
from broadcaster.sdk_internals import (
    HeyGenVideoServiceHooks,
    Said,
    Speak,
    heygen_send_speech,
    heygen_take_pacing,
    wrap_speech,
)


class SpeechHandover(HeyGenVideoServiceHooks):
    """``HeyGenVideoServiceHooks`` whose next session says what the current one would."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._sent: dict[int, SentSpeech] = {}  # id(client) -> its utterance
        self._mirror: HeyGenClient | None = None  # the next session, told everything too
        self._mirror_lock = asyncio.Lock()  # the handed rest goes before mirrored pieces
        self._utterance: tuple[str | None, int, int] = (None, 0, 0)  # id, bytes, voiced
        self.handovers: list[tuple[str, float]] = []
        """(how, seconds of the utterance handed over) per handover: "pause", "late", "idle"."""

    @property
    def mirrored(self) -> bool:
        """Whether the next session is told every piece of speech already."""
        return self._mirror is not None and self._mirror is self.standby

    def ledger(self, client: HeyGenClient) -> SentSpeech:
        """Return what ``client`` was sent of its current utterance."""
        return self._sent.setdefault(id(client), SentSpeech())

    def speech_in_flight(self) -> bool:
        """Whether the current session is saying (or will say) an utterance."""
        client = self.client
        return client is not None and self.ledger(client).in_flight(time.monotonic())

    # ------------------------------------------------------------------ the hooks
    def adapt_client(self, client: HeyGenClient) -> None:
        """Account for every piece of speech sent to ``client``; mirror it when asked."""
        super().adapt_client(client)
        self._sent[id(client)] = SentSpeech()

        async def speak(audio: bytes, event_id: str, own: Speak) -> None:
            self._count(audio, event_id)
            self.ledger(client).sent(audio, event_id, time.monotonic())
            mirror = self._mirror if client is self.client else None
            if mirror is not None:
                async with self._mirror_lock:
                    self.ledger(mirror).sent(audio, event_id, time.monotonic())
                    await self._tell(mirror, heygen_send_speech(mirror, audio, event_id))
            await own(audio, event_id)

        async def end(event_id: str, own: Said) -> None:
            self._count(b"", event_id, done=True)
            self.ledger(client).end(event_id)
            await own(event_id)
            mirror = self._mirror if client is self.client else None
            if mirror is not None:
                async with self._mirror_lock:
                    self.ledger(mirror).end(event_id)
                    await self._tell(mirror, mirror.agent_speak_end(event_id))

        async def interrupt(event_id: str | None, own: Said) -> None:
            self.ledger(client).reset()
            await own(event_id)  # type: ignore[arg-type]
            mirror = self._mirror if client is self.client else None
            if mirror is not None:
                self.ledger(mirror).reset()
                await self._tell(mirror, mirror.interrupt(event_id))

        wrap_speech(client, speak=speak, end=end, interrupt=interrupt)

    async def _tell(self, mirror: HeyGenClient, sending: Coroutine[Any, Any, None]) -> None:
        """Send to the next session; a failure stops the mirroring, never pipecat's speech."""
        try:
            await sending
        except Exception as e:  # its socket broke: the keeper will find it dead
            logger.warning(f"the next avatar session stopped taking speech ({e}); not mirrored")
            if self._mirror is mirror:
                self._mirror = None

    def _count(self, audio: bytes, event_id: str, *, done: bool = False) -> None:
        """Count what pipecat sends of each utterance; log it at its end (for benches)."""
        known, size, voiced = self._utterance
        if known != event_id:
            size, voiced = 0, 0
        self._utterance = (event_id, size + len(audio), voiced + voiced_blocks(audio))
        if done and size:
            logger.info(f"avatar utterance sent: {size / BYTES_PER_S:.2f} s, voiced "
                        f"{voiced / 100:.2f} s")
            self._utterance = (None, 0, 0)

    def switch_now(self) -> HeyGenClient | None:
        """Switch (HeyGenVideoServiceHooks); the new session goes on with the old's pacing."""
        old = super().switch_now()
        new = self.client
        if old is not None and new is not None and new is self._mirror:
            heygen_take_pacing(new, old)
        self._mirror = None
        if old is not None:
            self._sent.pop(id(old), None)
        return old

    async def drop_standby(self) -> None:
        """Stop mirroring to the next session before it is closed."""
        if self._mirror is not None and self._mirror is self.standby:
            self._mirror = None
        if (standby := self.standby) is not None:
            self._sent.pop(id(standby), None)
        await super().drop_standby()

    # ------------------------------------------------------------------ the handover
    async def hand_over(self, by: float) -> bool:
        """Make the next session say what the current one will: at a pause, by ``by`` at last.

        Returns once the next session is mirrored (True), or False when there is no next
        session (any more). ``by`` is monotonic; at or after it, the rest of the current
        utterance is handed over at once.
        """
        current, standby = self.client, self.standby
        if standby is None or current is None:
            return False
        while not self.mirrored:
            if self.standby is not standby or self.client is not current:
                return False
            now = time.monotonic()
            said = self.ledger(current)
            if not said.in_flight(now):
                self._mirror = standby  # the next utterance goes to both from its start
                self.handovers.append(("idle", 0.0))
                logger.info("the avatar is not speaking: its next utterance goes to the "
                            "next session too until the switch")
                return True
            pause = said.pause_ahead(now)
            if pause is not None and pause <= by:
                if pause - now > 0.01:
                    await asyncio.sleep(min(pause - now, 0.2))  # (more may be sent meanwhile)
                    continue
                await self._hand_rest(current, standby, "pause")
            elif now >= by:
                await self._hand_rest(current, standby, "late")
            else:
                await asyncio.sleep(min(0.05, by - now))
        return True

    async def _hand_rest(self, current: HeyGenClient, standby: HeyGenClient, how: str) -> None:
        """Send the rest of the current utterance to ``standby``; mirror from now on."""
        said = self.ledger(current)
        async with self._mirror_lock:
            if self.mirrored:  # handed over meanwhile (the keeper's late switch)
                return
            now = time.monotonic()
            rest = bytes(said.audio[said.played(now):])
            event_id, ended = said.event_id, said.ended
            self._mirror = standby
            theirs = self.ledger(standby)
            theirs.reset(event_id)
            if rest and event_id is not None:
                theirs.sent(rest, event_id, now)
                await self._tell(standby, heygen_send_speech(standby, rest, event_id))
            if ended and event_id is not None and self._mirror is standby:
                theirs.end(event_id)
                await self._tell(standby, standby.agent_speak_end(event_id))
        seconds = len(rest) / BYTES_PER_S
        self.handovers.append((how, seconds))
        logger.info(f"the rest of the avatar's utterance ({seconds:.2f} s) handed to the next "
                    f"session at {'a pause' if how == 'pause' else 'once (no pause in time)'}; "
                    "its speech mirrored there until the switch")


class Handover:
    """The keeper's side: one handover per rollover, begun once the next session is open.

    Works with any avatar; one without ``hand_over`` (a stand-in) counts as handed over.
    """

    def __init__(self, avatar: object) -> None:
        self.avatar = avatar
        self._task: asyncio.Task[bool] | None = None

    def start(self, by: float) -> None:
        """Have the next session say what the current one will, from a pause before ``by``."""
        hand_over = getattr(self.avatar, "hand_over", None)
        if hand_over is not None and self._task is None:
            self._task = asyncio.create_task(hand_over(by), name="avatar-speech-handover")

    def done(self) -> bool:
        """Whether the next session says what the current one does (or cannot be told)."""
        avatar = self.avatar
        return not hasattr(avatar, "hand_over") or bool(getattr(avatar, "mirrored", False))

    async def cancel(self) -> None:
        """Stop waiting for a pause (the rollover is done, dropped or forced)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def now(self) -> None:
        """Hand the speech over at once if it was not yet (a late switch: no pause came)."""
        hand_over = getattr(self.avatar, "hand_over", None)
        if hand_over is not None and not self.done():
            try:
                await hand_over(time.monotonic())
            except Exception as e:  # the next session's socket went away: switch anyway
                logger.warning(f"handing the speech to the next avatar session failed: {e}")
