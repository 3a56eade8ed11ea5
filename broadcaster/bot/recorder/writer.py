"""The MP4 container and its H.264 + AAC encoders (PyAV); used from the worker thread only."""

from __future__ import annotations

import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from loguru import logger

from broadcaster.bot.recorder.fmp4 import FragmentAppender
from broadcaster.bot.recorder.mixer import AUDIO_RATE
from broadcaster.bot.recorder.stats import RecorderStats

VIDEO_TIME_BASE = Fraction(1, 90_000)
AUDIO_TIME_BASE = Fraction(1, AUDIO_RATE)


@dataclass(frozen=True)
class RecordingOptions:
    """How the MP4 is encoded."""

    fps: float = 25.0
    preset: str = "veryfast"
    crf: int = 23
    threads: int = 1
    """x264 threads (0: x264 decides, 1.5x the cores). One is the least CPU per frame and
    keeps up with 720p25 at ``veryfast`` (about 5 ms a frame) in its own thread."""
    keyframe_seconds: float = 2.0
    audio_bitrate: int = 96_000
    fragmented: bool = False
    """Fragmented MP4 (``frag_keyframe+empty_moov``): the ``.part`` file stays playable
    up to its last fragment even if the process dies before closing it."""
    continuous: bool = False
    """With ``fragmented``: a run goes on in the webinar's latest file (one file per
    webinar across bot restarts, :mod:`broadcaster.bot.recorder.fmp4`)."""


class Writer:
    """Owns the container and the encoders; every method runs in the worker thread."""

    def __init__(self, path: Path, width: int, height: int, options: RecordingOptions,
                 stats: RecorderStats, metadata: dict[str, str], offset_s: float = 0.0) -> None:
        self.path = path
        self.options = options
        self.stats = stats
        self.width, self.height = width & ~1, height & ~1
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        container_options = {}
        if options.fragmented:
            container_options["movflags"] = "frag_keyframe+empty_moov+default_base_moof"
        self.sink: FragmentAppender | None = None
        if options.fragmented and options.continuous:
            # FFmpeg writes into the webinar's file through us (owner-only, appended)
            self.sink = FragmentAppender(path, offset_s)
            self.container = av.open(self.sink, "w", format="mp4", options=container_options)
        else:
            # the broadcast's voices and faces are the host's, nobody else's: the file
            # exists (owner-only) before FFmpeg opens it, and keeps that mode when renamed
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600))
            self.container = av.open(str(path), "w", format="mp4", options=container_options)
        for key, value in metadata.items():
            self.container.metadata[key] = value
        rate = Fraction(options.fps).limit_denominator(1001)
        video = self.container.add_stream(
            "libx264", rate=rate, options={"preset": options.preset, "crf": str(options.crf)}
        )
        video.width, video.height = self.width, self.height
        video.pix_fmt = "yuv420p"
        video.time_base = VIDEO_TIME_BASE
        video.codec_context.time_base = VIDEO_TIME_BASE
        video.codec_context.gop_size = max(1, round(options.keyframe_seconds * options.fps))
        # No B-frames: decode order = presentation order, so a pause in the video (or the
        # final hold frame) keeps its length in the MP4 track (see docs/recording.md).
        video.codec_context.max_b_frames = 0
        video.codec_context.thread_count = options.threads
        self.video = video
        audio = self.container.add_stream("aac", rate=AUDIO_RATE)
        audio.codec_context.layout = "mono"
        audio.codec_context.bit_rate = options.audio_bitrate
        audio.time_base = AUDIO_TIME_BASE
        self.audio = audio
        self.last_video: av.VideoFrame | None = None
        self.last_pts = -1
        self.audio_samples = 0

    def encode_video(self, pts_s: float, vf: av.VideoFrame) -> None:
        """Encode one picture at ``pts_s`` (scaled to the recording's size if it changed)."""
        if (vf.width, vf.height) != (self.width, self.height) or vf.format.name != "yuv420p":
            if (vf.width, vf.height) != (self.width, self.height):
                self.stats.video_frames_rescaled += 1
                if self.stats.video_frames_rescaled == 1:
                    logger.warning(f"recorder: frames are now {vf.width}x{vf.height}; scaling "
                                   f"to the recording's {self.width}x{self.height}")
            vf = vf.reformat(width=self.width, height=self.height, format="yuv420p")
        pts = max(round(pts_s / VIDEO_TIME_BASE), self.last_pts + 1)
        vf.pts = pts
        vf.time_base = VIDEO_TIME_BASE
        self.container.mux(self.video.encode(vf))
        self.last_pts = pts
        self.last_video = vf
        self.stats.video_frames_encoded += 1

    def encode_audio(self, samples: np.ndarray) -> None:
        """Encode mixed mono float32 samples, right after the previous ones."""
        af = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="fltp", layout="mono")
        af.sample_rate = AUDIO_RATE
        af.pts = self.audio_samples
        af.time_base = AUDIO_TIME_BASE
        self.audio_samples += len(samples)
        self.container.mux(self.audio.encode(af))

    def close(self, end_s: float) -> None:
        """Hold the last picture until ``end_s``, flush both encoders, write the index."""
        interval = 1.0 / self.options.fps
        if self.last_video is not None:
            last_s = float(self.last_pts * VIDEO_TIME_BASE)
            if end_s - last_s > 1.5 * interval:  # one more sample so the track lasts
                self.encode_video(end_s - interval, self.last_video)
        self.container.mux(self.video.encode(None))
        self.container.mux(self.audio.encode(None))
        self.container.close()
        if self.sink is not None:
            self.sink.close()
