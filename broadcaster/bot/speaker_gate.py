"""Only the current speaker drives the bot.

Every participant's microphone reaches the bot as its own stream of
``UserAudioRawFrame`` (pipecat's LiveKit input tags each frame with the
participant identity), but one VAD and one STT can only follow one voice.
:class:`SpeakerGate` sits right after the transport input and lets through the
audio of the identity named in the room metadata's ``"speaker"`` field
(protocol.py) and nothing else: viewers, demoted speakers and the avatar
itself are dropped before VAD ever hears them.

The speaker changes live (host promote / demote). A change in the middle of an
utterance must not let the old speaker's half sentence reach the responder, so
the gate emits a :class:`~broadcaster.frames.SpeakerChangedFrame` in order with the audio, and the
stages after it drop their state:

- :class:`broadcaster.speech.vad.SpeakerVADProcessor` (VAD as its own processor,
  after the gate; in pipecat 1.14 the transport no longer runs VAD) resets the
  analyzer and, when it was mid-speech, ends the speech
  (``VADUserStoppedSpeakingFrame``) so turn logic downstream doesn't hang on a
  turn that will never finish;
- the STT from :func:`broadcaster.speech.make_stt` discards the buffered
  segment instead of transcribing it (see ``broadcaster.speech.segmented``);
- the responder drops transcripts it was holding.

Order in the pipeline::

    transport.input() → SpeakerGate → SpeakerVADProcessor → STT → ...
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from livekit import rtc
from loguru import logger
from pipecat.frames.frames import Frame, InputAudioRawFrame, UserAudioRawFrame
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

from broadcaster.frames import SpeakerChangedFrame
from broadcaster.sdk_internals import transport_room


def speaker_from_metadata(metadata: str | None) -> str | None:
    """Read the ``"speaker"`` of room metadata JSON (protocol.py); None if absent or bad."""
    if not metadata:
        return None
    try:
        data = json.loads(metadata)
    except (TypeError, ValueError):
        logger.warning(f"room metadata is not JSON; nobody has the floor: {metadata[:80]!r}")
        return None
    speaker = data.get("speaker") if isinstance(data, dict) else None
    return speaker if isinstance(speaker, str) and speaker else None


class SpeakerGate(FrameProcessor):
    """Pass the current speaker's audio; drop everyone else's.

    Args:
        speaker: identity that has the floor at start (None: nobody yet).
    """

    def __init__(self, speaker: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._speaker = speaker or None
        self._requested = self._speaker
        self._pending: set[asyncio.Task[None]] = set()
        self._room: Any = None
        self._warned_unattributed = False
        self.passed_frames = 0
        self.dropped_frames = 0

    @property
    def speaker(self) -> str | None:
        """The identity whose audio passes now (after pending changes are applied)."""
        return self._speaker

    @property
    def requested_speaker(self) -> str | None:
        """The latest identity asked for by :meth:`set_speaker`, applied or not yet."""
        return self._requested

    def set_speaker(self, identity: str | None) -> None:
        """Give the floor to ``identity`` (None: nobody). Safe from sync event callbacks.

        The switch is queued as a frame so it takes effect at one exact point in the
        audio stream, and every stage after the gate sees it at that same point.
        """
        identity = identity or None
        if identity == self._requested:
            return
        logger.info(f"{self}: speaker {self._requested!r} -> {identity!r}")
        self._requested = identity
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop yet (configured before the pipeline runs)
            self._speaker = identity
            return
        task = loop.create_task(self.queue_frame(SpeakerChangedFrame(speaker=identity)))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    def follow_room(self, room: rtc.Room) -> None:
        """Follow the ``"speaker"`` in ``room``'s metadata, now and on every change.

        Works on a room that is connected already (reads the metadata at once) or
        not yet (reads it on ``connected``), e.g. the transport's own rtc.Room.
        """
        if self._room is room:
            return
        self._room = room

        def on_metadata(_old: str, new: str) -> None:
            self.set_speaker(speaker_from_metadata(new))

        def on_connected() -> None:
            self.set_speaker(speaker_from_metadata(room.metadata))

        room.on("room_metadata_changed", on_metadata)
        room.on("connected", on_connected)
        if room.isconnected():
            on_connected()

    def follow_transport(self, transport: Any) -> None:
        """Follow the room of a pipecat ``LiveKitTransport`` once it has connected.

        The transport creates its rtc.Room only when the pipeline starts.
        """

        @transport.event_handler("on_connected")
        async def _on_connected(_transport: Any) -> None:
            self.follow_room(transport_room(transport))

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        """Pass the speaker's audio, apply speaker changes in order, drop the rest."""
        await super().process_frame(frame, direction)
        if isinstance(frame, SpeakerChangedFrame) and direction is FrameDirection.DOWNSTREAM:
            if frame.speaker == self._speaker:
                return
            frame.previous = self._speaker
            self._speaker = frame.speaker
            await self.push_frame(frame, direction)
        elif isinstance(frame, InputAudioRawFrame) and direction is FrameDirection.DOWNSTREAM:
            if self._passes(frame):
                self.passed_frames += 1
                await self.push_frame(frame, direction)
            else:
                self.dropped_frames += 1
        else:
            await self.push_frame(frame, direction)

    def _passes(self, frame: InputAudioRawFrame) -> bool:
        if not isinstance(frame, UserAudioRawFrame) or not frame.user_id:
            if not self._warned_unattributed:
                self._warned_unattributed = True
                logger.warning(
                    f"{self}: dropping audio without a participant identity; keep "
                    "LiveKitParams(audio_in_user_tracks=True) so each voice is its own stream"
                )
            return False
        return self._speaker is not None and frame.user_id == self._speaker
