"""Record the broadcast as viewers see it: one MP4 (H.264 + AAC) written with PyAV.

:class:`Recorder` is a pipecat ``FrameProcessor`` for the end of the pipeline::

    ... → HeyGenVideoService → LiveKitRepublisher(forward_media=True) → Recorder

It records

- the avatar's video (``OutputImageRawFrame``; :class:`~broadcaster.frames.I420AvatarFrame`
  planes go to the encoder as they are: no RGB, no copy),
- the avatar's speech (``SpeechOutputAudioRawFrame``, 48 kHz mono) and any other
  ``OutputAudioRawFrame`` that reaches it (e.g. TTS audio in a pipeline with no avatar),
- the current speaker's voice (``InputAudioRawFrame`` / ``UserAudioRawFrame``: the
  speaker gate lets only the speaker's audio through, and pipecat's STT passes audio
  on by default), resampled to 48 kHz and mixed with the avatar's.

Timing: every frame is stamped with ``time.monotonic()`` when it reaches the recorder
(one clock for audio and video, so the file keeps the sync the republisher publishes
with). Video goes on a constant-rate grid at ``fps`` (:class:`VideoClock`: snapped to
the nearest slot within half a frame, re-anchored after a gap, frames faster than
``fps`` dropped); each audio source is laid on a continuous sample timeline
(:class:`AudioMixer`: jitter absorbed, silence in gaps, sources summed). Time 0 of
the file is the first video frame.

Encoding runs in a worker thread behind a bounded queue: the pipeline never waits
for the encoder; when it falls behind, new frames are dropped and counted
(:class:`RecorderStats`). ``EndFrame`` / ``CancelFrame`` drain the queue and close
the file (moov atom written). The file is written as ``<name>.mp4.part`` and renamed
to ``<name>.mp4`` when complete, with a ``<name>.json`` sidecar (wall-clock start,
duration, counters) and a ``<name>.vtt`` of the session's captions when a captions
file is given.

Modules, one job each: ``processor`` (the FrameProcessor), ``clock`` (the video
grid), ``mixer`` (the audio timeline), ``queue`` (what the encoder thread is handed),
``worker`` (the encoder thread), ``convert`` (frames to PyAV), ``writer`` (the MP4
and its encoders), ``files`` (paths), ``sidecars`` (JSON and WebVTT), ``stats``.

See docs/recording.md for the design and the measurements.
"""

from broadcaster.bot.recorder.clock import VideoClock
from broadcaster.bot.recorder.files import RecordingFile, recording_dir, safe_name
from broadcaster.bot.recorder.mixer import AUDIO_RATE, AudioMixer
from broadcaster.bot.recorder.processor import Recorder
from broadcaster.bot.recorder.stats import RecorderStats
from broadcaster.bot.recorder.writer import RecordingOptions

__all__ = [
    "AUDIO_RATE",
    "AudioMixer",
    "Recorder",
    "RecorderStats",
    "RecordingFile",
    "RecordingOptions",
    "VideoClock",
    "recording_dir",
    "safe_name",
]
