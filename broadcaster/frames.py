"""The frames broadcaster adds to pipecat's, in one place (as pipecat's ``frames/frames.py``).

Each is made by one processor and read by others further down the pipeline:

- :class:`SpeakerChangedFrame`: the speaker gate (``bot.speaker_gate``) → VAD, STT, responder;
- :class:`SpeechOnsetFrame` / :class:`SpeechOnsetCancelledFrame`: the VAD (``speech.vad``)
  → the republisher, which ducks the avatar's speech on a barge-in and gives it back;
- :class:`SpeechPausedFrame` / :class:`SpeechResumedFrame`: the VAD → local Whisper,
  which starts transcribing at the pause and drops that run when the speaker goes on;
- :class:`AudienceQuestionFrame`: the web app's "ask the avatar" (``bot.asked``) → responder;
- :class:`I420AvatarFrame`: the avatar service (``bot.avatar_service``) → republisher,
  recorder.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from livekit import rtc
from pipecat.frames.frames import DataFrame, OutputImageRawFrame, SystemFrame

I420 = "I420"
"""``ImageRawFrame.format`` of planar YUV 4:2:0 (Y, then U, then V; no row padding)."""


@dataclass
class SpeakerChangedFrame(SystemFrame):
    """The identity whose audio the speaker gate passes changed.

    A SystemFrame, so it stays in order with the audio frames (SystemFrames too).

    Parameters:
        speaker: the new speaker, or None when nobody has the floor.
        previous: the speaker before the change.
    """

    speaker: str | None = None
    previous: str | None = None


@dataclass
class SpeechOnsetFrame(SystemFrame):
    """The VAD heard what may be the start of speech, before it confirms it.

    Sent at its first confident window (``VADUserStartedSpeakingFrame`` follows
    ``vad_start_secs`` later), so the avatar's audio can duck at once on a barge-in;
    a :class:`SpeechOnsetCancelledFrame` follows when it was only a noise.
    """


@dataclass
class SpeechOnsetCancelledFrame(SystemFrame):
    """The onset the VAD heard did not become speech (a cough, a click)."""


@dataclass
class SpeechPausedFrame(SystemFrame):
    """The speaker has been quiet for a few VAD windows: the utterance may be over.

    The VAD says so for sure ``vad_stop_secs`` after its last voiced window; this
    lets a local STT start transcribing before then. A :class:`SpeechResumedFrame`
    follows if the speaker goes on.
    """


@dataclass
class SpeechResumedFrame(SystemFrame):
    """The speaker went on after a :class:`SpeechPausedFrame`."""


@dataclass
class AudienceQuestionFrame(DataFrame):
    """A question from the audience that the host or the speaker chose for the avatar.

    Parameters:
        question_id: the web app's id of the question.
        asker: who asked (the avatar says it; ``name`` is pipecat's frame name).
        text: the question.
    """

    question_id: int = 0
    asker: str = ""
    text: str = ""


@dataclass
class I420AvatarFrame(OutputImageRawFrame):
    """An avatar frame that carries the decoded LiveKit frame, untouched.

    ``image`` is the I420 planar buffer (Y plane ``w*h`` bytes, then U and V of
    ``(w/2)*(h/2)`` bytes each), a zero-copy view of ``video_frame``'s own data;
    ``format`` is ``"I420"``. Processors that want RGB can call
    ``frame.video_frame.convert(rtc.VideoBufferType.RGB24)``; a republisher passes
    ``video_frame`` straight to ``rtc.VideoSource.capture_frame``.

    Holding the frame is safe for as long as you like: the LiveKit SDK copies
    each decoded picture into a Python-owned ``bytearray`` and releases the
    decoder's buffer before the frame reaches Python, so a decoder that reuses
    its buffers cannot change pixels under a held frame.
    """

    video_frame: rtc.VideoFrame | None = None
    timestamp_us: int = 0
    """The frame's render time as scheduled by the receiving WebRTC stack (its clock is
    CLOCK_MONOTONIC in microseconds on Linux, i.e. ``time.monotonic_ns() // 1000``;
    usually a few ms after the frame reaches Python)."""
    received_ns: int = field(default=0)
    """``time.monotonic_ns()`` when the decoded frame reached Python."""
    source: int = 0
    """Which avatar session's client decoded it (a change marks a switch of sessions)."""

    @classmethod
    def wrap(cls, video_frame: rtc.VideoFrame, timestamp_us: int = 0,
             source: int = 0) -> I420AvatarFrame:
        """Wrap a decoded frame; converts only in the rare case it is not I420 already."""
        if video_frame.type != rtc.VideoBufferType.I420:
            video_frame = video_frame.convert(rtc.VideoBufferType.I420)
        return cls(
            image=video_frame.data,  # type: ignore[arg-type]  # memoryview: zero copy
            size=(video_frame.width, video_frame.height),
            format=I420,
            video_frame=video_frame,
            timestamp_us=timestamp_us,
            received_ns=time.monotonic_ns(),
            source=source,
        )

    def __str__(self) -> str:
        """Name, size and format; never the pixels."""
        return f"{self.name}(size: {self.size}, format: {self.format})"
