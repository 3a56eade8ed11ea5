"""When each word of the avatar's reply is heard by a viewer.

Our TTS (Piper, flite, the OpenAI-compatible services) gives no word timing: it hands
over a sentence's audio, then the sentence's text. So the words are placed inside
their sentence's *voiced* audio (leading and trailing silence trimmed), in proportion
to an estimate of how long each takes to say (letters, digits spoken as words, a pause
after punctuation). Sentence starts are exact; a word inside a sentence is off by a
fraction of a word.

TTS runs far faster than real time, so its audio clock is not the viewer's. The reply's
timeline is anchored where the viewer's audio really is: the moment the republisher
publishes the reply's first voiced audio (its ``BotStartedSpeakingFrame``, sent
upstream), minus that audio's offset in the TTS audio. Without that signal (direct
mode, no republisher) a fixed latency after the first TTS audio stands in; once the
republisher has signalled, a reply's words wait for its own signal (the previous
reply's latency can be 0.4 s short), for at most ``ANCHOR_GRACE_SECS`` past the guess. A sentence
whose audio came late (an LLM streaming slower than speech) cannot play before it
arrived plus the pipeline's latency: that gap is kept too.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

#: the avatar's voice reaches the republisher about this long after the TTS made it
#: (avatar service round trip); used only until the republisher's own signal arrives
FALLBACK_LATENCY_SECS = 0.45
#: a viewer hears published audio this long after the republisher captured it (LiveKit's
#: source queue, Opus, the SFU, the viewer's jitter buffer), while a text stream arrives
#: within a few ms: captions wait for it (bench/caption_sync.py: with 0.06 s words showed
#: 64 ms early at p50 on loopback)
PLAYOUT_DELAY_SECS = 0.12
#: a reply whose voice signal is expected but late is captioned this long after the guess
#: (a voice that never comes, e.g. an avatar gone, still gets its captions)
ANCHOR_GRACE_SECS = 1.5
#: a 10 ms block this loud (RMS, int16: -44.6 dBFS, where the avatar's mouth opens) is
#: speech. The republisher starts the avatar speaking at the same level, so the reply's
#: anchor and its TTS lead mean the same instant; at pipecat's silence peak (20) a faint
#: sound before the voice started both 0.37 s early (bench/caption_sync.py)
SPEECH_RMS = 190.0

_DIGIT_WORD = 4.0  # "2026" is said as "twenty twenty-six": a digit weighs ~ 4 letters
_WORD_GAP = 1.5
_PAUSE = {",": 3.0, ";": 4.0, ":": 4.0, "—": 4.0, "–": 4.0}


def word_weight(word: str) -> float:
    """Estimate how long ``word`` takes to say, in letter-equivalents."""
    letters = sum(c.isalpha() for c in word)
    digits = sum(c.isdigit() for c in word)
    pause = _PAUSE.get(word[-1], 0.0) if word else 0.0
    return max(1.0, letters + _DIGIT_WORD * digits) + _WORD_GAP + pause


def split_words(text: str) -> list[str]:
    """Split ``text`` into the words the caption shows (whitespace-separated)."""
    return text.split()


def word_starts(words: list[str], start: float, end: float) -> list[float]:
    """Start time of each word when ``words`` are said evenly-by-weight in [start, end]."""
    if not words:
        return []
    weights = np.array([word_weight(w) for w in words])
    before = np.concatenate([[0.0], np.cumsum(weights)[:-1]])
    span = max(0.0, end - start)
    return [float(start + span * b / weights.sum()) for b in before]


def block_rms(samples: np.ndarray) -> float:
    """RMS of int16 samples (0 for none)."""
    if samples.size == 0:
        return 0.0
    x = samples.astype(np.float64)
    return float(np.sqrt(np.dot(x, x) / x.size))


def voiced_blocks(pcm: bytes, sample_rate: int, channels: int) -> tuple[float, float] | None:
    """(first, last) second of speech (10 ms blocks at SPEECH_RMS) in ``pcm``, or None."""
    samples = np.frombuffer(pcm, np.int16)
    if channels > 1:
        samples = samples[: samples.size - samples.size % channels].reshape(-1, channels)[:, 0]
    block = max(1, sample_rate // 100)
    n = samples.size // block
    if n == 0:
        loud = block_rms(samples) >= SPEECH_RMS
        return (0.0, samples.size / sample_rate) if loud else None
    x = samples[: n * block].astype(np.float64).reshape(n, block)
    voiced = np.flatnonzero(np.sqrt((x * x).mean(axis=1)) >= SPEECH_RMS)
    if voiced.size == 0:
        return None
    return float(voiced[0] * block / sample_rate), float((voiced[-1] + 1) * block / sample_rate)


@dataclass
class Sentence:
    """One sentence's audio on the TTS clock and when it reached the captions."""

    start: float
    """TTS seconds into the reply where its audio begins."""
    arrived: float
    """``time.monotonic()`` when its first audio reached the caption processor."""


@dataclass
class ReplyClock:
    """Maps the TTS clock of one reply to the time a viewer hears it (monotonic s)."""

    segment: str
    generation: int
    first_audio: float | None = None
    """Monotonic time the reply's first TTS audio arrived."""
    lead: float | None = None
    """TTS seconds before the reply's first voiced audio."""
    anchor: float | None = None
    """Monotonic time the republisher published the first voiced audio."""
    sentences: list[Sentence] = field(default_factory=list)
    fallback_latency: float = FALLBACK_LATENCY_SECS
    playout_delay: float = PLAYOUT_DELAY_SECS
    expect_anchor: bool = False
    """The republisher signals when a reply's voice starts (it did for an earlier one):
    words wait for this reply's own signal instead of trusting the last reply's latency,
    which can be short by 0.4 s (bench/caption_sync.py), up to ``ANCHOR_GRACE_SECS``
    past the guess."""

    def latency(self) -> float:
        """TTS audio arriving here → published, as measured for this reply (or guessed)."""
        if self.anchor is None or self.first_audio is None:
            return self.fallback_latency
        return self.anchor - self.first_audio - (self.lead or 0.0)

    def heard_at(self, offset: float, sentence: int) -> float | None:
        """Monotonic time a viewer hears TTS second ``offset`` (inside sentence ``sentence``).

        Sentences play back to back unless one's audio arrived late (then it starts
        when it arrived plus the latency).
        """
        if self.first_audio is None or not self.sentences:
            return None
        latency = self.latency()
        first = self.sentences[0]
        play = max(self.first_audio + latency + first.start, first.arrived + latency)
        for prev, cur in zip(self.sentences, self.sentences[1 : sentence + 1], strict=False):
            play = max(play + cur.start - prev.start, cur.arrived + latency)
        base = self.sentences[min(sentence, len(self.sentences) - 1)].start
        at = play + (offset - base) + self.playout_delay
        if self.expect_anchor and self.anchor is None:
            return at + ANCHOR_GRACE_SECS  # no sooner than the signal (it wakes the sender)
        return at
