"""Session rollovers as a viewer saw them: the picture held, and how far it moved, at each.

The bot's keeper logs every overlapped switch ("... by the next session opened X s
ahead; picture held Y s", Y measured in the republisher from the old session's last
frame to the new one's first) and every sequential one ("rolling over at a pause"
alone). Matched by wall-clock time against a :class:`~probes.stage_watch.StageWatcher`,
each switch gets the largest frame-to-frame change the viewer saw around it: a jump
(a different pose in the new session) stands out against the changes of normal frames.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
from livekit import rtc

from broadcaster.bot.sent_speech import QUIET_PEAK
from probes.stage_watch import Seen, StageWatcher

_STAMP = r"(\d\d):(\d\d):(\d\d\.\d+) INFO +broadcaster\.bot\.avatar_keeper: "
OVERLAPPED = re.compile(_STAMP + r"avatar session near its end: rolling over at a pause, by "
                        r"the next session opened (\S+) s ahead; picture held (\S+) s")
SEQUENTIAL = re.compile(_STAMP + r"avatar session near its end: rolling over at a pause$")
#: the republisher's line at a switch: the first frame of the new session entered it then
SWITCH_FRAME = re.compile(r"come from another session from the frame entered at (\d+) us")
#: a switch's frames at the viewer: from this long before its log line (written right
#: after the switch) to this long after (the new session's first frame reaches the viewer
#: ~0.1 s after the switch: encode, SFU, decode)
BEFORE, AFTER = 0.2, 0.4


@dataclass
class Switch:
    """One overlapped rollover."""

    at: float
    """Seconds of the (local) day of the keeper's log line, just after the switch."""
    ahead_s: float
    held_s: float
    change: float | None = None
    """The largest frame-to-frame change the viewer saw around it (None: no frames)."""
    gap: float | None = None
    """The longest time without a frame at the viewer around it."""


def day_seconds(wall: float) -> float:
    """Seconds since local midnight of a time.time() value (the log's clock)."""
    lt = time.localtime(wall)
    return lt.tm_hour * 3600 + lt.tm_min * 60 + lt.tm_sec + wall % 1.0


def _at(m: re.Match[str]) -> float:
    return int(m[1]) * 3600 + int(m[2]) * 60 + float(m[3])


def switches(lines: Iterable[str]) -> tuple[list[Switch], int]:
    """(overlapped switches, count of sequential rollovers) in the bot's log lines."""
    out, sequential = [], 0
    for line in lines:
        line = line.rstrip()
        if m := OVERLAPPED.search(line):
            out.append(Switch(_at(m), float(m[4]), float(m[5])))
        elif SEQUENTIAL.search(line):
            sequential += 1
    return out, sequential


def judge(seen: list[Seen], found: list[Switch], t0: float, t1: float) -> list[float]:
    """Fill each switch's ``change`` and ``gap``; return the baseline for ``change``.

    The baseline: the largest frame-to-frame change in each window of the same length
    (BEFORE + AFTER) away from every switch, over the frames in [t0, t1] (monotonic), so
    a switch's window is compared with windows like it, not with single frames.
    """
    after_slate, last_slate = set(), {}  # a frame right after a slate "moves" a lot
    for i, s in enumerate(seen):
        if last_slate.get(s.track) and not s.slate:
            after_slate.add(i)
        last_slate[s.track] = s.slate
    frames = [(day_seconds(s.wall), s) for i, s in enumerate(seen)
              if t0 <= s.t <= t1 and not s.slate and i not in after_slate]
    near: set[int] = set()
    for sw in found:
        idx = [i for i, (d, _) in enumerate(frames) if sw.at - BEFORE <= d <= sw.at + AFTER]
        near.update(idx)
        sw.change = max((frames[i][1].change for i in idx), default=None)
        times = [frames[i][1].t for i in idx]
        sw.gap = max((b - a for a, b in zip(times, times[1:], strict=False)), default=None)
    baseline: list[float] = []
    window: list[float] = []
    start = None
    for i, (d, s) in enumerate(frames):
        if i in near:
            window, start = [], None
            continue
        if start is None:
            start = d
        if d - start > BEFORE + AFTER:
            if window:
                baseline.append(max(window))
            window, start = [], d
        window.append(s.change)
    return baseline


def frames_around(seen: list[Seen], sw: Switch) -> list[tuple[float, float]]:
    """(seconds from the switch's log line, change) of every frame in its window."""
    return [(round(day_seconds(s.wall) - sw.at, 3), round(s.change, 2)) for s in seen
            if not s.slate and sw.at - BEFORE <= day_seconds(s.wall) <= sw.at + AFTER]


def switch_walls(lines: Iterable[str]) -> list[int]:
    """Wall-clock µs at which each switch's first new-session frame entered the republisher."""
    return [int(m[1]) for line in lines if (m := SWITCH_FRAME.search(line))]


def switch_jumps(seen: list[Seen], walls: list[int]) -> list[float]:
    """Return the change of the first frame a viewer saw from each switch's new session.

    That frame is the first whose republisher stamp is at or after the switch (a frame
    dropped on the way hands the measure to the next one); switches with no such frame
    seen are left out. Exactly the switch's own jump: a window around it also holds the
    avatar's normal movement.
    """
    stamped = sorted((s.entered_us, s.change) for s in seen if s.entered_us and not s.slate)
    out = []
    for wall in walls:
        change = next((c for us, c in stamped if us >= wall), None)
        if change is not None and any(us < wall for us, _ in stamped):
            out.append(change)
    return out


# ------------------------------------------------------------------ what was heard
#: the bot's line at the end of each utterance it sent the avatar (SpeechHandover)
SENT = re.compile(_STAMP.replace("avatar_keeper", "speech_handover")
                  + r"avatar utterance sent: (\S+) s, voiced (\S+) s")
#: silence longer than this ends an answer (its sentences' pauses are shorter)
ANSWER_GAP = 1.5


class ListeningWatcher(StageWatcher):
    """A :class:`StageWatcher` that also listens to the bot: its voiced 10-ms blocks."""

    def __init__(self, bot: str) -> None:
        super().__init__(bot)
        self.want_audio = True
        self.heard: list[tuple[float, int]] = []
        """(time.time() at arrival, voiced 10-ms blocks in the audio frame)."""

    def on_audio(self, event: rtc.AudioFrameEvent) -> None:
        """Note how much of the frame is voiced (the measure SentSpeech uses)."""
        frame = event.frame
        pcm = np.frombuffer(frame.data, np.int16)
        block = frame.sample_rate // 100
        n = pcm.size // block
        voiced = 0
        if n:
            peaks = np.abs(pcm[: n * block].reshape(n, block).astype(np.int32)).max(axis=1)
            voiced = int((peaks >= QUIET_PEAK).sum())
        self.heard.append((time.time(), voiced))


def answers_heard(heard: list[tuple[float, int]]) -> list[tuple[float, float, float]]:
    """(first, last voiced moment as day seconds, voiced seconds) of each answer heard."""
    out: list[tuple[float, float, float]] = []
    start = last = None
    voiced = 0
    for wall, n in heard:
        if not n:
            continue
        d = day_seconds(wall)
        if last is not None and d - last > ANSWER_GAP:
            out.append((start or last, last, voiced / 100))
            start, voiced = None, 0
        start = d if start is None else start
        last = d
        voiced += n
    if last is not None:
        out.append((start or last, last, voiced / 100))
    return out


def utterances_sent(lines: Iterable[str]) -> list[tuple[float, float, float]]:
    """(day seconds of its end, seconds sent, voiced seconds sent) of each utterance."""
    return [(_at(m), float(m[4]), float(m[5])) for line in lines if (m := SENT.search(line))]


def heard_vs_sent(heard: list[tuple[float, float, float]], sent: list[tuple[float, float, float]],
                  found: list[Switch]) -> list[dict[str, Any]]:
    """Compare each answer heard with the utterances the bot sent while it played (voiced time).

    An utterance's line is logged once pipecat sent its last piece: while the answer is
    heard. An answer cut at a rollover is heard shorter than it was sent (up to the ~4 s
    a session holds ahead), one said twice longer; the encoders' edges differ by ~0.1 s.
    """
    out = []
    for start, end, voiced in heard:
        mine = [u for u in sent if start - 1.0 <= u[0] <= end + 1.0]
        if not mine:
            continue
        sent_voiced = sum(u[2] for u in mine)
        inside = [sw.at for sw in found if start <= sw.at <= end]
        out.append({"at": round(start, 2), "utterances": len(mine),
                    "sent_voiced_s": round(sent_voiced, 3), "heard_voiced_s": voiced,
                    "heard_minus_sent_s": round(voiced - sent_voiced, 3),
                    "switches_inside": len(inside)})
    return out
