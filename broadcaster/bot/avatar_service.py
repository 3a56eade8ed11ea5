"""pipecat's HeyGen/LiveAvatar video service, emitting avatar frames without the RGB round trip.

pipecat 1.14's HeyGen client converts every decoded avatar frame from I420 to
RGB24 and copies it into ``bytes`` (0.3-0.38 ms per 720p frame), and its
LiveKit output then converts RGB back to I420 inside ``capture_frame``. Video
encoders want I420, so both conversions are pure waste for a republisher.

:class:`~broadcaster.frames.I420AvatarFrame` is an ``OutputImageRawFrame`` that keeps
the decoded ``rtc.VideoFrame`` itself (no conversion, no copy);
:class:`FastHeyGenVideoService` is ``HeyGenVideoService`` emitting it. Everything
else, audio included, is the parent's behaviour. The pipecat package itself is not modified.
"""

from __future__ import annotations

import asyncio
from typing import Any

from livekit import rtc
from loguru import logger
from pipecat.services.heygen.client import HeyGenClient

from broadcaster.bot.picture_match import SAME_PICTURE, pictures_apart
from broadcaster.bot.speech_handover import SpeechHandover
from broadcaster.frames import I420AvatarFrame
from broadcaster.sdk_internals import replace_video_loop, skip_media_join

#: a switch waits this long at most for a frame of the next session matching the picture
SWITCH_WAIT = 0.4


class FastHeyGenVideoService(SpeechHandover):
    """``HeyGenVideoService`` that emits :class:`I420AvatarFrame` instead of RGB frames.

    Drop-in replacement: same constructor, same audio (``SpeechOutputAudioRawFrame``
    at 48 kHz mono, untouched), same control flow. Only the video loop of the client
    this service creates is replaced, on that client, before it starts. Downstream
    consumers must accept ``format == "I420"``; pipecat's own LiveKit output does not
    (use ``LiveKitRepublisher``).

    Args:
        receive_media: False in direct mode: the avatar publishes into the stage room
            itself, so this service's client joins no LiveKit room to receive its
            media (it would relay the first tracks it finds there, whoever publishes
            them); the control socket (speech, interrupt, listening) works as usual.
    """

    def __init__(self, *args: Any, receive_media: bool = True, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.receive_media = receive_media
        self._latest: dict[int, rtc.VideoFrame] = {}  # id(client) -> its last frame
        self._switching: asyncio.Future[None] | None = None  # a switch waits for a frame

    async def switch_to_standby(self) -> HeyGenClient | None:
        """Switch to the next session at its first frame showing the current picture.

        At most ``SWITCH_WAIT`` s later; then at once. Two sessions of one avatar show
        the same pose at the same moment, but each steps its sway at its own frame ticks
        and reaches the bot with its own delay: switching at a frame whose picture
        differs adds a step (or takes one back). At a matching frame, the viewer sees
        only the two encoders' noise change.
        """
        if self.standby is None:
            return None
        old = self.client
        done = self._switching = asyncio.get_running_loop().create_future()
        try:
            await asyncio.wait_for(asyncio.shield(done), SWITCH_WAIT)
        except TimeoutError:
            logger.info(f"no frame of the next avatar session matched the current picture "
                        f"in {SWITCH_WAIT} s: switching anyway")
        finally:
            self._switching = None
        if self.standby is not None:
            self.switch_now()
        return old

    def _switch_at(self, client: HeyGenClient, frame: rtc.VideoFrame) -> None:
        """Switch now if a switch waits and ``frame``, the next session's, matches."""
        done = self._switching
        if done is None or done.done() or client is not self.standby:
            return
        current = self._latest.get(id(self.client))
        apart = None if current is None else pictures_apart(current, frame)
        if apart is None or apart <= SAME_PICTURE:
            self.switch_now()
            done.set_result(None)

    def standby_match(self) -> float | None:
        """How far the next session's picture is from the current one's (mean |Δ luma|).

        Compares the two sessions' latest decoded frames (None: either has none yet).
        A rollover switches once this is small: the next stream has settled.
        """
        standby, current = self.standby, self.client
        if standby is None or current is None:
            return None
        a, b = self._latest.get(id(current)), self._latest.get(id(standby))
        return None if a is None or b is None else pictures_apart(a, b)

    def _note_frame(self, client: HeyGenClient, frame: rtc.VideoFrame) -> None:
        """Keep the latest frame of each session while a next one is open (no copy)."""
        if self.standby is None:
            if self._latest:
                self._latest.clear()
            return
        self._latest[id(client)] = frame

    def adapt_client(self, client: HeyGenClient) -> None:
        """Swap in the I420 video loop; in direct mode, skip the media join."""
        super().adapt_client(client)
        replace_video_loop(client, lambda stream: self._read_i420_frames(client, stream))
        if not self.receive_media:
            skip_media_join(client)

    async def _read_i420_frames(self, client: HeyGenClient, stream: rtc.VideoStream) -> None:
        """Run the client's video loop, minus the RGB conversion and the bytes copy."""
        try:
            logger.debug("Starting I420 video frame processing...")
            async for event in stream:
                try:
                    self._note_frame(client, event.frame)
                    self._switch_at(client, event.frame)
                    if self.pass_frame(client):  # the current session's, output ready
                        await self.push_frame(
                            I420AvatarFrame.wrap(event.frame, event.timestamp_us,
                                                 source=id(client)))
                except Exception as e:  # one bad frame must not end the stream
                    logger.error(f"Error processing individual video frame: {e}")
        except Exception as e:
            logger.error(f"Error processing video frames: {e}")
        finally:
            logger.debug("I420 video frame processing ended.")
