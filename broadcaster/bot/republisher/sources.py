"""The republisher's LiveKit sources: made at start, and anew when the stage room moves.

When the stage room's node dies the bot joins the room again (broadcaster.bot.
stage_keeper) and publishes new tracks there. A source whose track was published in
the lost room sent nothing through a second track (measured on the 3-node cluster:
the new publisher transport's bytes sent stayed at the DTLS handshake), so the
republisher captures into new sources from then on and closes the old ones a little
later, once no capture is in flight.
"""

from __future__ import annotations

import asyncio

from livekit import rtc

from broadcaster.bot.republisher.audio import AudioOut
from broadcaster.bot.republisher.encoding import RepublishEncoding, audio_options

#: how long an old source stays open after the capture moved away from it
CLOSE_AFTER_SECONDS = 5.0


def new_sources(encoding: RepublishEncoding, audio: AudioOut
                ) -> tuple[rtc.VideoSource, rtc.AudioSource]:
    """Return a video source of the published size and an audio source like ``audio``."""
    return (rtc.VideoSource(encoding.width, encoding.height),
            rtc.AudioSource(audio.sample_rate, audio.channels, queue_size_ms=audio.queue_ms))


async def close_later(source: rtc.VideoSource | rtc.AudioSource) -> None:
    """Close ``source`` once no capture can still be in flight into it."""
    await asyncio.sleep(CLOSE_AFTER_SECONDS)
    await source.aclose()


async def publish_tracks(room: rtc.Room, video: rtc.VideoSource, audio: rtc.AudioSource,
                         names: tuple[str, str], video_options: rtc.TrackPublishOptions,
                         seconds: float) -> list[rtc.LocalTrackPublication]:
    """Publish a video track of ``video`` and an audio track of ``audio`` in ``room``.

    ``publish_track`` hangs (never raises) without the grant, so each is bounded.
    """
    tracks = ((rtc.LocalVideoTrack.create_video_track(names[0], video), video_options),
              (rtc.LocalAudioTrack.create_audio_track(names[1], audio), audio_options()))
    return [await asyncio.wait_for(room.local_participant.publish_track(track, options),
                                   seconds) for track, options in tracks]
