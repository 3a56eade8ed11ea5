"""An answer made of countable "words": tones of their own pitch, decoded back at a listener.

A word lost (cut with an avatar session's buffered speech) or said twice (by two
sessions) is exactly what a listener notices; with real speech that needs a
recognizer. Here word ``k`` is a ``WORD_S`` tone at ``BASE_HZ + k * STEP_HZ``, words
are ``GAP_S`` apart and sentences ``PAUSE_S``; :func:`decode_words` splits what was
heard at its silences and names each piece by its pitch. Opus and resampling keep a
tone's pitch, so the decode is exact through the avatar service and LiveKit.
"""

from __future__ import annotations

import numpy as np

WORD_S, GAP_S, PAUSE_S = 0.3, 0.12, 0.55
BASE_HZ, STEP_HZ = 400.0, 50.0
AMPLITUDE = 0.3
#: a 10-ms block louder than this (peak, int16) is part of a word
LOUD = 1000
#: quiet blocks that end a word (shorter dips are one word)
QUIET_BLOCKS = 6


def tone_answer(words: int, per_sentence: int, rate: int) -> bytes:
    """PCM16 mono at ``rate``: ``words`` tones, ``per_sentence`` to a sentence."""
    parts = []
    t = np.arange(int(WORD_S * rate)) / rate
    ramp = np.minimum(1.0, np.minimum(t, WORD_S - t) / 0.01)  # no clicks at the edges
    for k in range(words):
        tone = AMPLITUDE * 32767 * ramp * np.sin(2 * np.pi * (BASE_HZ + k * STEP_HZ) * t)
        parts.append(tone.astype(np.int16))
        last = k == words - 1
        gap = 0.0 if last else PAUSE_S if (k + 1) % per_sentence == 0 else GAP_S
        parts.append(np.zeros(int(gap * rate), np.int16))
    return np.concatenate(parts).tobytes()


def decode_words(pcm: np.ndarray, rate: int, words: int) -> list[int]:
    """Return the words heard in ``pcm`` (int16 mono), in order (-1: a sound, no word)."""
    return [word for word, _ in word_spans(pcm, rate, words)]


def word_spans(pcm: np.ndarray, rate: int, words: int) -> list[tuple[int, float]]:
    """(word, seconds it sounded) of each word heard in ``pcm``: a cut word is short."""
    block = rate // 100
    n = pcm.size // block
    loud = np.abs(pcm[: n * block].reshape(n, block).astype(np.int32)).max(axis=1) > LOUD
    out: list[tuple[int, float]] = []
    start, quiet = None, 0
    for i, on in enumerate([*loud, *([False] * QUIET_BLOCKS)]):
        if on:
            if start is None:
                start = i
            quiet = 0
        elif start is not None:
            quiet += 1
            if quiet >= QUIET_BLOCKS:
                end = i - quiet + 1
                out.append((_word(pcm[start * block:end * block], rate, words),
                            (end - start) / 100))
                start, quiet = None, 0
    return out


def _word(piece: np.ndarray, rate: int, words: int) -> int:
    if piece.size < rate // 20:  # under 50 ms: a click, not a word
        return -1
    spectrum = np.abs(np.fft.rfft(piece.astype(np.float64) * np.hanning(piece.size)))
    hz = float(np.argmax(spectrum)) * rate / piece.size
    k = round((hz - BASE_HZ) / STEP_HZ)
    return k if 0 <= k < words and abs(hz - BASE_HZ - k * STEP_HZ) < STEP_HZ / 3 else -1
