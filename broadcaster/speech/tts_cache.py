"""Piper with a phrase cache: answers known in advance are spoken without synthesis.

The notes-based responder says a fixed set of answers; synthesizing their first
sentence is the largest single wait between a transcript and the avatar's first
word (Piper: p50 383 ms under load on 2 cores, bench/speech_latency.py). So the
bot synthesizes every answer's sentences once, in the background, at start, and
``run_tts`` streams cached audio for any sentence it has heard before. Text that
is not cached (LLM answers, a new answer) is synthesized as usual and kept.

The cache is keyed by the sentence exactly as pipecat's TTS hands it over (its
sentence aggregator is replayed on the known answers to get the same cuts),
whitespace-normalized; it is bounded in bytes and forgets the least recently
used sentence first. The answers' audio is kept on disk between runs
(:mod:`broadcaster.speech.phrase_store`), so a restarted bot synthesizes nothing.

Synthesizing ahead takes a few seconds of CPU (37 sentences of the sample notes:
5.3 s on an idle 2-core machine), so it goes first sentences first (they decide
when the avatar starts talking; the rest is synthesized while it talks) and it
steps aside while a turn is under way: from the speaker's first word until the
answer's audio is made, Whisper and the answer's own synthesis get the CPU.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import AsyncGenerator, AsyncIterator, Iterable
from typing import Any

from loguru import logger
from pipecat.frames.frames import (
    ErrorFrame,
    Frame,
    LLMFullResponseEndFrame,
    StartFrame,
    UserStartedSpeakingFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.processors.frame_processor import FrameDirection
from pipecat.services.piper.tts import PiperTTSService
from pipecat.utils.text.simple_text_aggregator import SimpleTextAggregator

from broadcaster.sdk_internals import piper_voice, stream_tts_audio
from broadcaster.speech.phrase_store import PhraseStore, store_key

#: synthesizing ahead pauses this long after the speaker starts (until the answer's end
#: or the speaker's stop shortens it), after the speaker stops (the transcript and the
#: answer come within ~1 s), and between an answer's sentences
TURN_HOLD_SECS = 30.0
ANSWER_WAIT_SECS = 3.0
SENTENCE_GAP_SECS = 0.5


def cache_key(text: str) -> str:
    """Return ``text`` as the cache keys it (whitespace normalized)."""
    return " ".join(text.split())


async def sentences(text: str) -> list[str]:
    """``text`` cut into sentences the way pipecat's TTS service cuts it."""
    aggregator = SimpleTextAggregator()
    cut = [a.text async for a in aggregator.aggregate(text)]
    rest = await aggregator.flush()
    if rest is not None and rest.text.strip():
        cut.append(rest.text)
    return [s for s in (cache_key(c) for c in cut) if s]


class PhraseCache:
    """Sentence → Piper audio chunks (PCM16 at the voice's rate), LRU, bounded in bytes."""

    def __init__(self, max_bytes: int = 64 * 1024 * 1024) -> None:
        self.max_bytes = max_bytes
        self._items: OrderedDict[str, tuple[bytes, ...]] = OrderedDict()
        self.bytes = 0
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        """Count the cached sentences."""
        return len(self._items)

    def __contains__(self, text: str) -> bool:
        """Tell whether ``text`` is cached."""
        return cache_key(text) in self._items

    def get(self, text: str) -> tuple[bytes, ...] | None:
        """Return the cached chunks of ``text`` (None: not cached); counts hits and misses."""
        key = cache_key(text)
        chunks = self._items.get(key)
        if chunks is None:
            self.misses += 1
            return None
        self._items.move_to_end(key)
        self.hits += 1
        return chunks

    def peek(self, text: str) -> tuple[bytes, ...] | None:
        """Return the cached chunks of ``text`` without counting or reordering."""
        return self._items.get(cache_key(text))

    def put(self, text: str, chunks: Iterable[bytes]) -> None:
        """Keep ``text``'s chunks, forgetting the least recently used beyond the bound."""
        key, chunks = cache_key(text), tuple(chunks)
        size = sum(len(c) for c in chunks)
        if not key or not size or size > self.max_bytes:
            return
        old = self._items.pop(key, None)
        if old is not None:
            self.bytes -= sum(len(c) for c in old)
        self._items[key] = chunks
        self.bytes += size
        while self.bytes > self.max_bytes:
            _, dropped = self._items.popitem(last=False)
            self.bytes -= sum(len(c) for c in dropped)


class CachedPiperTTSService(PiperTTSService):
    """``PiperTTSService`` that remembers what it said and pre-synthesizes known answers.

    Args:
        prewarm: texts (whole answers) to synthesize in the background once the
            pipeline starts; requests for other text are served meanwhile.
        cache_bytes: the cache's bound (PCM at the voice's rate, ~44 kB per second).
        store: where the answers' audio is kept between runs (None: not kept), keyed
            by the answers, ``voice`` and the versions (:mod:`.phrase_store`).
    """

    def __init__(self, *, prewarm: Iterable[str] = (), cache_bytes: int = 64 * 1024 * 1024,
                 store: PhraseStore | None = None, voice: str = "", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.cache = PhraseCache(cache_bytes)
        self.store = store
        self.store_key = store_key(prewarm, voice)
        self.loaded = 0
        """Sentences read from the store at start."""
        self._prewarm_texts = list(prewarm)
        self._prewarm_task: asyncio.Task[None] | None = None
        self.prewarmed = asyncio.Event()
        self._hold_until = 0.0  # monotonic: synthesizing ahead waits until then
        self._in_flight = 0  # run_tts calls under way

    async def start(self, frame: StartFrame) -> None:
        """Start Piper, then synthesize the known answers in the background."""
        await super().start(frame)
        if self._prewarm_texts and self._prewarm_task is None:
            self._prewarm_task = self.create_task(self._prewarm(), name="tts-prewarm")
        elif not self._prewarm_texts:
            self.prewarmed.set()

    async def stop(self, frame: Any) -> None:
        """Stop synthesizing ahead, then Piper."""
        await self._stop_prewarm()
        await super().stop(frame)

    async def cancel(self, frame: Any) -> None:
        """Stop synthesizing ahead, then Piper."""
        await self._stop_prewarm()
        await super().cancel(frame)

    async def _stop_prewarm(self) -> None:
        if self._prewarm_task is not None:
            await self.cancel_task(self._prewarm_task)
            self._prewarm_task = None

    def _synthesize(self, text: str) -> list[bytes]:
        return [chunk.audio_int16_bytes for chunk in piper_voice(self).synthesize(text)]

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        """Step aside for a turn under way; the rest as pipecat's TTS."""
        now = time.monotonic()
        if isinstance(frame, (VADUserStartedSpeakingFrame, UserStartedSpeakingFrame)):
            self._hold_until = now + TURN_HOLD_SECS  # a question is coming: step aside
        elif isinstance(frame, VADUserStoppedSpeakingFrame):
            self._hold_until = now + ANSWER_WAIT_SECS  # transcription, then the answer
        elif isinstance(frame, LLMFullResponseEndFrame):
            self._hold_until = now + SENTENCE_GAP_SECS  # the answer's sentences follow
        await super().process_frame(frame, direction)

    async def _step_aside(self) -> None:
        # a deadline that keeps moving (every turn frame pushes it): polled, not awaited
        while self._in_flight or time.monotonic() < self._hold_until:  # noqa: ASYNC110
            await asyncio.sleep(0.1)

    async def _prewarm(self) -> None:
        started, count = time.monotonic(), 0
        cut = [await sentences(answer) for answer in self._prewarm_texts]
        firsts = [c[0] for c in cut if c]
        rest = [s for c in cut for s in c[1:]]
        try:
            if self.store is not None:
                saved = await asyncio.to_thread(self.store.load, self.store_key)
                for text, chunks in saved.items():
                    self.cache.put(text, chunks)
                self.loaded = len(saved)
            for sentence in [*firsts, *rest]:
                if sentence in self.cache:
                    continue
                await self._step_aside()
                self.cache.put(sentence, await asyncio.to_thread(self._synthesize, sentence))
                count += 1
            logger.info(f"{self}: {self.loaded} answer sentences read from disk, {count} "
                        f"synthesized ahead in {time.monotonic() - started:.1f} s "
                        f"({self.cache.bytes / 1e6:.1f} MB)")
            if count and self.store is not None:
                kept = {s: c for s in [*firsts, *rest] if (c := self.cache.peek(s))}
                await asyncio.to_thread(self.store.save, self.store_key, kept)
        except Exception as exc:  # a bad voice shows at the first answer too; don't die here
            logger.warning(f"{self}: could not synthesize answers ahead: {exc}")
        finally:
            self.prewarmed.set()

    async def run_tts(self, text: str, context_id: str) -> AsyncGenerator[Frame, None]:
        """Speak ``text``: cached audio at once, else Piper's (then kept)."""
        self._in_flight += 1
        try:
            async for frame in self._run_tts(text, context_id):
                yield frame
        finally:
            self._in_flight -= 1
            self._hold_until = max(self._hold_until, time.monotonic() + SENTENCE_GAP_SECS)

    async def _run_tts(self, text: str, context_id: str) -> AsyncGenerator[Frame, None]:
        cached = self.cache.get(text)
        if cached is None:
            async for frame in self._synthesize_and_keep(text, context_id):
                yield frame
            return
        await self.start_tts_usage_metrics(text)

        async def replay() -> AsyncIterator[bytes]:
            for chunk in cached:
                yield chunk

        async for frame in stream_tts_audio(
            self, replay(), in_sample_rate=piper_voice(self).config.sample_rate,
            context_id=context_id,
        ):
            await self.stop_ttfb_metrics()
            yield frame
        await self.stop_ttfb_metrics()

    async def _synthesize_and_keep(self, text: str,
                                   context_id: str) -> AsyncGenerator[Frame, None]:
        """Piper as pipecat runs it (chunk by chunk), keeping the chunks when complete."""
        kept: list[bytes] = []
        chunks = iter(piper_voice(self).synthesize(text))

        async def stream() -> AsyncIterator[bytes]:
            while (chunk := await asyncio.to_thread(next, chunks, None)) is not None:
                kept.append(chunk.audio_int16_bytes)
                yield chunk.audio_int16_bytes

        try:
            await self.start_tts_usage_metrics(text)
            async for frame in stream_tts_audio(
                self, stream(), in_sample_rate=piper_voice(self).config.sample_rate,
                context_id=context_id,
            ):
                await self.stop_ttfb_metrics()
                yield frame
        except Exception as exc:
            logger.error(f"{self} exception: {exc}")
            yield ErrorFrame(error=f"Piper could not say {text[:40]!r}: {exc}")
            return
        finally:
            await self.stop_ttfb_metrics()
        self.cache.put(text, kept)
