"""Publish a pipecat pipeline's avatar video and speech into a LiveKit room.

Why not pipecat's ``LiveKitTransport`` output: it wants RGB frames (so the avatar's
I420 frames are converted to RGB and back: 1.2-1.4 ms CPU per 720p frame with the
copies and its executor hop, bench/republish_hop.py, plus page faults), resizes with
PIL when sizes differ (10+ ms), publishes with SDK default encodings, and freezes the
track whenever the avatar stalls. This processor:

- captures :class:`~broadcaster.frames.I420AvatarFrame` with zero copies
  and zero conversions (``rtc.VideoSource.capture_frame(video_frame)``), and plain
  RGB/RGBA/BGRA/ARGB/I420 ``OutputImageRawFrame`` too, so it works in any pipeline;
- publishes a CAMERA track and a MICROPHONE track with explicit encoding
  (:class:`RepublishEncoding`);
- holds a steady frame rate: frames are captured the moment they arrive, at most
  ``fps`` per second (a backlog collapses to its newest frame instead of being
  fast-forwarded); when the source stalls the last frame is repeated at ``fps``,
  and after ``slate_after`` seconds a precomputed "Reconnecting" slate is shown;
- keeps audio and video in sync by capturing both directly as they arrive (the
  avatar delivers them in sync) and bounding the audio queue of continuous speech
  streams (``max_audio_lag``); see docs/republisher.md for the measurements;
- stamps every published frame with LiveKit frame metadata (``frame_id`` = publish
  sequence number, ``user_timestamp`` = wall-clock microseconds when the frame
  entered the republisher) so receivers can measure age and losses.

Modules, one job each: ``processor`` (the FrameProcessor: room, tracks, frame
routing), ``video`` (paced, stamped capture), ``pacer`` (when to capture what),
``slate``, ``audio`` (speech capture, sync, muting), ``encoding`` (what goes on the
wire), ``stats`` (counters for metrics), ``malloc`` (glibc tuning).

See docs/republisher.md for an example of dropping it into a pipeline.
"""

from broadcaster.bot.republisher.encoding import RepublishEncoding, audio_options
from broadcaster.bot.republisher.malloc import tune_malloc
from broadcaster.bot.republisher.pacer import Capture, Kind, PacedFrame, VideoPacer
from broadcaster.bot.republisher.processor import LiveKitRepublisher
from broadcaster.bot.republisher.slate import make_slate
from broadcaster.bot.republisher.stats import RepublisherStats

__all__ = [
    "Capture",
    "Kind",
    "LiveKitRepublisher",
    "PacedFrame",
    "RepublishEncoding",
    "RepublisherStats",
    "VideoPacer",
    "audio_options",
    "make_slate",
    "tune_malloc",
]
