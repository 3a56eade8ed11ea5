"""What the avatar is doing right now: speaking, listening or idle, and its mouth.

The control socket turns LiveAvatar commands into calls here; the publisher's
audio loop reads speech through :meth:`AvatarRuntime.read_audio` in real time
and its video loop asks :meth:`AvatarRuntime.visual` what to draw. Events are
emitted the way LiveAvatar emits them (``agent.speak_started`` /
``agent.speak_ended`` when audio is actually heard / done, ``agent.state_updated``
on every state change) through a plain callback, so this module knows nothing
about sockets and is easy to test.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from enum import StrEnum
from typing import Any

import numpy as np
from loguru import logger

from broadcaster.avatar.speech import MouthTrack, SpeechBuffer, block_level

Event = dict[str, Any]
EventSink = Callable[[Event], None]

#: a started utterance that gets no audio and no speak_end for this long is over
UNDERRUN_END_SECONDS = 2.0


class AgentState(StrEnum):
    """What the avatar is doing, as LiveAvatar's ``agent.state_updated`` reports it."""

    IDLE = "idle"
    LISTENING = "listening"
    SPEAKING = "speaking"


class AvatarRuntime:
    """Speech playout, listening flag and the resulting visual state of one avatar."""

    def __init__(
        self,
        emit: EventSink | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_buffer_seconds: float = 120.0,
    ) -> None:
        self.speech = SpeechBuffer(max_seconds=max_buffer_seconds)
        self.mouth = MouthTrack()
        self._emit = emit
        self._clock = clock
        self._listening = False
        self._state = AgentState.IDLE
        self._last_voiced = 0.0
        #: called on interrupt so the audio source drops what it has queued too
        self.on_flush: Callable[[], None] | None = None
        self.interrupts = 0

    # ---------------------------------------------------------------- events
    def set_sink(self, emit: EventSink | None) -> None:
        """Send events to ``emit`` (None: drop them, no client is connected)."""
        self._emit = emit

    def _send(self, event: Event) -> None:
        if self._emit is not None:
            try:
                self._emit(event)
            except Exception:  # a broken sink must never stop playout
                logger.exception("avatar event sink failed")

    @property
    def state(self) -> AgentState:
        """The current state (idle, listening or speaking)."""
        return self._state

    def _update_state(self) -> None:
        if self.speech.active:
            new = AgentState.SPEAKING
        elif self._listening:
            new = AgentState.LISTENING
        else:
            new = AgentState.IDLE
        if new is not self._state:
            old, self._state = self._state, new
            self._send(
                {"type": "agent.state_updated", "previous_state": old.value, "new_state": new.value}
            )

    # -------------------------------------------------------------- commands
    def speak(self, pcm: bytes, event_id: str | None) -> None:
        """Queue speech (PCM16 LE mono 24 kHz). Raises ValueError or BufferFull."""
        self.speech.push(pcm, event_id)
        self._last_voiced = self._clock()
        self._update_state()

    def speak_end(self, event_id: str | None) -> None:
        """Mark the end of an utterance: it plays out, then the avatar goes idle."""
        self.speech.end(event_id)
        self._update_state()

    def interrupt(self) -> None:
        """Silence now: drop queued speech, shut the mouth, report cut utterances."""
        self.interrupts += 1
        cut = self.speech.flush()
        if self.on_flush is not None:
            self.on_flush()
        self.mouth.close(self._clock())
        for event_id in cut:
            self._send(_speak_event("agent.speak_ended", event_id, interrupted=True))
        self._update_state()

    def start_listening(self) -> None:
        """Show the listening look (``agent.start_listening``)."""
        self._listening = True
        self._update_state()

    def stop_listening(self) -> None:
        """Drop the listening look (``agent.stop_listening``)."""
        self._listening = False
        self._update_state()

    # ----------------------------------------------------------------- media
    def read_audio(self, out: np.ndarray, play_at: float) -> None:
        """Fill ``out`` with the next block of audio, heard from ``play_at`` on."""
        played = self.speech.read(out)
        now = self._clock()
        if played.voiced:
            self._last_voiced = now
            self.mouth.add(play_at, block_level(out[: played.voiced]))
        else:
            self.mouth.add(play_at, 0.0)
            if self.speech.active and now - self._last_voiced > UNDERRUN_END_SECONDS:
                # The sender went quiet without speak_end: end what was started.
                self.speech.end_started()
        for event_id in played.started:
            self._send(_speak_event("agent.speak_started", event_id))
        for event_id in played.finished:
            self._send(_speak_event("agent.speak_ended", event_id))
        if played.started or played.finished or played.voiced == 0:
            self._update_state()

    def visual(self, t: float) -> tuple[float, str]:
        """(mouth openness 0..1, renderer state) for a frame shown at monotonic ``t``."""
        return self.mouth.at(t), self._state.value


def _speak_event(kind: str, event_id: str | None, *, interrupted: bool = False) -> Event:
    event: Event = {"type": kind, "event_id": event_id, "task": {"id": event_id}}
    if interrupted:
        event["interrupted"] = True
    return event
