"""A LiveKit participant that watches and listens, as a viewer's page would.

It subscribes to the tracks of one participant (or everyone's), and hands each
decoded video frame to :meth:`RoomViewer.on_video` and each audio frame to
:meth:`RoomViewer.on_audio`, with nothing between: a subclass records what its test
or benchmark needs (stamps, sizes, levels, receive times).
"""

from __future__ import annotations

import asyncio
import contextlib

from livekit import rtc

from broadcaster.room_connect import connect_room


class RoomViewer:
    """Receives video and audio in a LiveKit room; subclasses record it.

    Args:
        from_identity: only this participant's tracks (None: everyone's).
        video_track: only the video track of this name (None: any).
        want_audio: subscribe to audio too.
        audio_rate: sample rate of the mono audio handed to :meth:`on_audio`.
    """

    def __init__(self, *, from_identity: str | None = None, video_track: str | None = None,
                 want_audio: bool = True, audio_rate: int = 48_000) -> None:
        self.from_identity = from_identity
        self.video_track = video_track
        self.want_audio = want_audio
        self.audio_rate = audio_rate
        self.room = rtc.Room()
        self.tasks: list[asyncio.Task[None]] = []
        self.identities: set[str] = set()
        """Everyone whose track reached this viewer."""

    async def join(self, url: str, token: str, *, connect_timeout: float = 20.0) -> None:
        """Connect; tracks are handed over as they are subscribed."""
        self.room.on("track_subscribed", self._subscribed)
        await connect_room(self.room, url, token, seconds=connect_timeout)

    def _subscribed(self, track: rtc.Track, publication: rtc.RemoteTrackPublication,
                    participant: rtc.RemoteParticipant) -> None:
        self.identities.add(participant.identity)
        if self.from_identity and participant.identity != self.from_identity:
            return
        if track.kind == rtc.TrackKind.KIND_VIDEO:
            if self.video_track and publication.name != self.video_track:
                return
            self.tasks.append(asyncio.create_task(self._video(rtc.VideoStream(track))))
        elif track.kind == rtc.TrackKind.KIND_AUDIO and self.want_audio:
            stream = rtc.AudioStream(track, sample_rate=self.audio_rate, num_channels=1)
            self.tasks.append(asyncio.create_task(self._audio(stream)))

    async def _video(self, stream: rtc.VideoStream) -> None:
        async for event in stream:
            self.on_video(event)

    async def _audio(self, stream: rtc.AudioStream) -> None:
        async for event in stream:
            self.on_audio(event)

    def on_video(self, event: rtc.VideoFrameEvent) -> None:
        """Record a decoded video frame (called as it arrives)."""

    def on_audio(self, event: rtc.AudioFrameEvent) -> None:
        """Record an audio frame (called as it arrives)."""

    async def leave(self) -> None:
        """Stop receiving and disconnect."""
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        self.tasks.clear()
        with contextlib.suppress(Exception):
            await self.room.disconnect()
