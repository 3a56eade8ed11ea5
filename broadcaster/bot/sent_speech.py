"""What an avatar session was sent of the utterance it is saying, and how far it has said it.

pipecat sends the first ~3 s of an utterance at once, then one second per second, so a
session holds up to ~4 s it has not said yet. A rollover hands that rest to the next
session; for that the bot must know, without asking the service, where the session is
in the utterance: it plays what it gets in real time, from when the audio arrives or
when the audio before it ends, whichever is later (a session short of audio waits).
:class:`SentSpeech` keeps that account per session, and finds the pauses (between
sentences) in what is still to come, where a handover is inaudible.
"""

from __future__ import annotations

import bisect

import numpy as np

RATE = 24_000  # LiveAvatar's wire format: PCM16 LE mono 24 kHz
BYTES_PER_S = RATE * 2
BLOCK = RATE // 100 * 2  # 10 ms, in bytes
#: a 10-ms block whose peak is below this (int16) is silence
QUIET_PEAK = 300
#: a pause long enough to hand over in (between sentences, not between words)
MIN_PAUSE_S = 0.2
#: hand over this far into a pause: the word before it is fully said
INTO_PAUSE_S = 0.05


class SentSpeech:
    """The current utterance of one session: its audio, and when each piece plays."""

    def __init__(self) -> None:
        self.event_id: str | None = None
        self.audio = bytearray()
        self._starts: list[float] = []  # play start of each piece (monotonic)
        self._offsets: list[int] = []  # its byte offset in ``audio``
        self._quiet: list[bool] = []  # per 10-ms block of ``audio``
        self.play_end = 0.0
        self.ended = False

    def reset(self, event_id: str | None = None) -> None:
        """Forget the utterance (a new one begins, or it was interrupted)."""
        self.__init__()  # type: ignore[misc]
        self.event_id = event_id

    def sent(self, audio: bytes, event_id: str | None, now: float) -> None:
        """Note ``audio`` of ``event_id`` sent at ``now``; it plays after what came before."""
        if event_id != self.event_id or self.ended:
            self.reset(event_id)
        if not audio:
            return
        start = max(now, self.play_end)
        self._starts.append(start)
        self._offsets.append(len(self.audio))
        self.audio += audio
        self.play_end = start + len(audio) / BYTES_PER_S
        whole = len(self.audio) // BLOCK * BLOCK
        done = len(self._quiet) * BLOCK
        if whole > done:
            blocks = np.frombuffer(self.audio, "<i2", (whole - done) // 2, done)
            peaks = np.abs(blocks.reshape(-1, BLOCK // 2).astype(np.int32)).max(axis=1)
            self._quiet.extend((peaks < QUIET_PEAK).tolist())

    def end(self, event_id: str | None) -> None:
        """Note the utterance complete (``agent.speak_end``)."""
        if event_id == self.event_id:
            self.ended = True

    def in_flight(self, now: float) -> bool:
        """Whether the session is saying (or still to be sent) part of this utterance."""
        return bool(self.audio) and (not self.ended or now < self.play_end)

    def played(self, now: float) -> int:
        """Bytes of the utterance the session has played by ``now`` (even, so whole samples)."""
        i = bisect.bisect_right(self._starts, now) - 1
        if i < 0:
            return 0
        end = self._offsets[i + 1] if i + 1 < len(self._offsets) else len(self.audio)
        at = self._offsets[i] + int((now - self._starts[i]) * BYTES_PER_S)
        return min(at, end) // 2 * 2

    def time_of(self, offset: int) -> float:
        """When the session plays byte ``offset`` of the utterance."""
        i = max(0, bisect.bisect_right(self._offsets, offset) - 1)
        return self._starts[i] + (offset - self._offsets[i]) / BYTES_PER_S

    def pause_ahead(self, now: float, min_pause: float = MIN_PAUSE_S,
                    into: float = INTO_PAUSE_S) -> float | None:
        """When the session will be ``into`` s into its next pause of ``min_pause`` s or more.

        A pause it is in now counts while at least ``min_pause - into`` of it is left.
        None: no such pause in what it was sent so far.
        """
        need = round(min_pause * 100)
        first = self.played(now) // BLOCK
        i, n = max(0, first - need), len(self._quiet)
        while i < n:
            if not self._quiet[i]:
                i += 1
                continue
            j = i
            while j < n and self._quiet[j]:
                j += 1
            if j - i >= need:  # a pause: blocks [i, j)
                at = max(self.time_of(i * BLOCK) + into, now)
                if self.time_of(j * BLOCK) - at >= min_pause - into - 0.005:
                    return at
            i = j
        return None

def voiced_blocks(audio: bytes) -> int:
    """10-ms blocks of PCM16 24 kHz ``audio`` that are not silence (whole blocks only)."""
    n = len(audio) // BLOCK
    if not n:
        return 0
    blocks = np.frombuffer(audio, "<i2", n * BLOCK // 2).reshape(n, BLOCK // 2)
    return int((np.abs(blocks.astype(np.int32)).max(axis=1) >= QUIET_PEAK).sum())
