"""What the republished tracks look like on the wire: size, rate, codec, bitrate, layers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from livekit import rtc


@dataclass(frozen=True)
class RepublishEncoding:
    """What the republished video track looks like on the wire.

    Default: ONE layer at the full size, ``max_bitrate`` 1.7 Mbps, ``max_framerate``
    = fps. Every viewer gets the full resolution from its first frame (with simulcast
    the SFU starts new viewers on the lowest layer and its bandwidth estimate can drop
    them to 360p on a busy host), and encoding costs ~25% less CPU.
    ``simulcast=True`` publishes the SDK's three layers for 16:9 instead: full size
    (capped at ``max_bitrate``), 640x360 and 320x180, so the SFU can serve viewers on
    weak links (bench/republish_cpu.py measures both).

    ``degradation_preference``: what the encoder gives up when it runs short of CPU (or
    bandwidth). MAINTAIN_RESOLUTION: viewers keep the full picture and get fewer frames;
    libwebrtc's default scaled a busy machine's viewers down to 960x540 and below
    (tests/test_cpu_pressure.py). A talking head is read more than watched for motion.
    """

    width: int = 1280
    height: int = 720
    fps: float = 25.0
    codec: str = "VP8"
    max_bitrate: int = 1_700_000
    simulcast: bool = False
    degradation_preference: rtc.DegradationPreference = (
        rtc.DegradationPreference.MAINTAIN_RESOLUTION)
    scalability_mode: str = ""
    """SVC (``video_svc``, e.g. "L3T1"): one VP9 stream with spatial layers."""

    @classmethod
    def from_settings(cls, settings: Any, *, simulcast: bool = False) -> RepublishEncoding:
        """Build from ``broadcaster.config.Settings`` (video_* including ``video_svc``)."""
        svc = getattr(settings, "video_svc", "")
        return cls(
            width=settings.video_width,
            height=settings.video_height,
            fps=float(settings.video_fps),
            codec="VP9" if svc else settings.video_codec.upper(),
            max_bitrate=settings.video_max_bitrate,
            simulcast=simulcast,
            scalability_mode=svc,
        )

    def video_options(self) -> rtc.TrackPublishOptions:
        """Camera source, this codec and bitrate; frame metadata (id + timestamp).

        No frame metadata with ``scalability_mode``: browsers then decode nothing.
        """
        options = rtc.TrackPublishOptions(
            source=rtc.TrackSource.SOURCE_CAMERA,
            video_codec=rtc.VideoCodec.Value(self.codec.upper()),
            video_encoding=rtc.VideoEncoding(
                max_bitrate=self.max_bitrate, max_framerate=self.fps
            ),
            simulcast=self.simulcast,
            # livekit types the field by its proto enum; the public IntEnum has its values
            degradation_preference=self.degradation_preference,  # type: ignore[arg-type]
        )
        if self.scalability_mode:
            options.scalability_mode = self.scalability_mode
        if not self.scalability_mode:
            # the metadata rides as a trailer on every encoded frame; on VP9 spatial layers
            # a browser (livekit-client without a frame-metadata worker) decoded none of
            # the frames, in the stage room or a shard (tests/test_shard_relay_browser.py)
            options.frame_metadata_features.extend(
                [rtc.FrameMetadataFeature.FMF_FRAME_ID,
                 rtc.FrameMetadataFeature.FMF_USER_TIMESTAMP]
            )
        return options


def audio_options() -> rtc.TrackPublishOptions:
    """Microphone source; Opus with the SDK's defaults (as pipecat's own output)."""
    return rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE)
