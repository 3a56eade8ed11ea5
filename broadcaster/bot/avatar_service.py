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

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from livekit import rtc
from loguru import logger
from pipecat.frames.frames import ImageRawFrame
from pipecat.services.heygen.client import HeyGenClient
from pipecat.services.heygen.video import HeyGenVideoService

from broadcaster.frames import I420AvatarFrame


class FastHeyGenVideoService(HeyGenVideoService):
    """``HeyGenVideoService`` that emits :class:`I420AvatarFrame` instead of RGB frames.

    Drop-in replacement: same constructor, same audio (``SpeechOutputAudioRawFrame``
    at 48 kHz mono, untouched), same control flow. Only the client's video loop is
    replaced, on the client instance, before the client starts reading video (the
    client creates its video task only after ``_on_participant_connected``, which
    this class overrides). Downstream consumers must accept ``format == "I420"``;
    pipecat's own LiveKit output does not (use ``LiveKitRepublisher``).
    """

    def __init__(self, *args: Any, receive_media: bool = True, **kwargs: Any) -> None:
        """``receive_media=False`` (direct mode): the avatar publishes into the stage room
        itself, so the client does not join any LiveKit room to receive its media; the
        control socket (speech, interrupt, listening) works as usual."""
        super().__init__(*args, **kwargs)
        self.receive_media = receive_media

    async def setup(self, setup: Any) -> None:
        if self.receive_media:
            await super().setup(setup)
            return
        with _no_media_join():
            await super().setup(setup)

    async def _on_participant_connected(self, participant_id: str) -> None:
        if self._client is not None and "_process_video_frames" not in vars(self._client):
            client = self._client
            client._process_video_frames = (  # type: ignore[method-assign]
                lambda stream: self._read_i420_frames(client, stream)
            )
        await super()._on_participant_connected(participant_id)

    async def _read_i420_frames(self, client: Any, stream: rtc.VideoStream) -> None:
        """The client's video loop (``HeyGenClient._process_video_frames``), minus the
        RGB conversion and the bytes copy."""
        try:
            logger.debug("Starting I420 video frame processing...")
            async for event in stream:
                try:
                    if client._transport_ready and client._video_frame_callback:
                        frame = I420AvatarFrame.wrap(event.frame, event.timestamp_us)
                        await client._video_frame_callback(frame)
                except Exception as e:  # one bad frame must not end the stream
                    logger.error(f"Error processing individual video frame: {e}")
        except Exception as e:
            logger.error(f"Error processing video frames: {e}")
        finally:
            logger.debug("I420 video frame processing ended.")

    async def _on_participant_video_frame(self, video_frame: ImageRawFrame) -> None:
        if isinstance(video_frame, I420AvatarFrame):
            await self.push_frame(video_frame)  # already an OutputImageRawFrame: no rebuild
        else:
            await super()._on_participant_video_frame(video_frame)


@contextmanager
def _no_media_join() -> Iterator[None]:
    """While pipecat's ``HeyGenVideoService.setup`` builds and starts its client, make
    the client's LiveKit join a no-op (pipecat 1.14 joins in ``HeyGenClient.setup``
    and has no switch for it). Without this, in direct mode it would join the stage
    room and relay the first audio and video tracks it finds, whoever publishes them."""
    original = HeyGenClient._livekit_connect

    async def skip(client: HeyGenClient) -> None:
        logger.info("direct mode: the avatar publishes into the stage room itself; "
                    "not joining a room to receive its media")

    HeyGenClient._livekit_connect = skip  # type: ignore[method-assign]
    try:
        yield
    finally:
        HeyGenClient._livekit_connect = original  # type: ignore[method-assign]
