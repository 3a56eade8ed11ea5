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

from typing import Any

from livekit import rtc
from loguru import logger
from pipecat.services.heygen.client import HeyGenClient

from broadcaster.frames import I420AvatarFrame
from broadcaster.sdk_internals import (
    HeyGenVideoServiceHooks,
    replace_video_loop,
    skip_media_join,
)


class FastHeyGenVideoService(HeyGenVideoServiceHooks):
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

    def adapt_client(self, client: HeyGenClient) -> None:
        """Swap in the I420 video loop; in direct mode, skip the media join."""
        replace_video_loop(client, lambda stream: self._read_i420_frames(client, stream))
        if not self.receive_media:
            skip_media_join(client)

    async def _read_i420_frames(self, client: HeyGenClient, stream: rtc.VideoStream) -> None:
        """Run the client's video loop, minus the RGB conversion and the bytes copy."""
        try:
            logger.debug("Starting I420 video frame processing...")
            async for event in stream:
                try:
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
