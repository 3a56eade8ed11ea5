"""Speech from Debian's flite: Whisper transcribes its voices without error (DESIGN.md)."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import wave
from functools import lru_cache
from pathlib import Path

import numpy as np
import soxr


def have_flite() -> bool:
    """Whether Debian's flite is installed (``apt-get install flite``)."""
    return shutil.which("flite") is not None


@lru_cache(maxsize=64)
def flite(text: str, rate: int, *, voice: str | None = None, trim: bool = False) -> np.ndarray:
    """``text`` spoken by flite, as int16 mono samples at ``rate`` (cached: do not modify).

    ``voice``: a flite voice (``"slt"``, ...; None: flite's default). ``trim``: cut the
    leading and trailing silence, so the clip starts on the first word and ends on the
    last.
    """
    program = shutil.which("flite")
    if program is None:
        raise RuntimeError("Debian's flite is not installed (apt-get install flite)")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "say.wav"
        voice_args = ["-voice", voice] if voice else []
        subprocess.run([program, *voice_args, "-t", text, "-o", str(path)], check=True)
        with wave.open(str(path)) as w:
            assert w.getnchannels() == 1 and w.getsampwidth() == 2
            src_rate = w.getframerate()
            pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    if src_rate != rate:
        pcm = soxr.resample(pcm, src_rate, rate)
    pcm = np.asarray(pcm, dtype=np.int16)
    if trim:
        loud = np.flatnonzero(np.abs(pcm.astype(np.int32)) > 500)
        if loud.size:
            pcm = pcm[loud[0] : loud[-1] + 1].copy()
    return pcm
