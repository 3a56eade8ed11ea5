"""What the avatar answers: the webinar's own notes by default, any LLM by configuration.

No instruction-tuned LLM ships in a package, so the keyless default answers from
the agenda / FAQ markdown file the host provides (``settings.faq_path``, a sample
in docs/sample-agenda.md): each heading is a topic, the text under it is the
spoken answer, and the best TF-IDF match between the transcript and the topics
wins; below a threshold the file's "Fallback" section is said instead. It is
deterministic: the same words always get the same answer.

:class:`Responder` is a drop-in for an LLM service in a pipecat pipeline: it takes
final ``TranscriptionFrame`` s and emits what an LLM emits
(``LLMFullResponseStartFrame``, ``LLMTextFrame``, ``LLMFullResponseEndFrame``),
which the TTS service aggregates into sentences and speaks.

:func:`make_responder` returns the processors for the slot between STT and TTS:
the Responder (plus pipecat's user-turn processor, for barge-in), or with
``settings.llm_base_url`` set, an OpenAI-compatible LLM with its context
aggregators.
"""

from __future__ import annotations

import asyncio
import math
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loguru import logger
from pipecat.frames.frames import (
    Frame,
    LLMFullResponseEndFrame,
    LLMFullResponseStartFrame,
    LLMTextFrame,
    TranscriptionFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

from broadcaster.bot.speaker_gate import SpeakerChangedFrame
from broadcaster.config import ConfigError, Settings

DEFAULT_FALLBACK = (
    "That's a good question, and it isn't covered in today's notes. "
    "The host will pick it up during the open questions."
)

_STOPWORDS = frozenset(
    """a about after again all am an and any are as at be been before being but by can
    could did do does doing for from had has have having he her here hers him his how i if
    in into is it its just know let like me more most my no nor not now of off on once only
    or other our ours out over please say so some such tell than that the their them then
    there these they this those to too under until up us very was we were what when where
    which while who whom why will with would you your yours yourself um uh okay ok well
    hey hi hello don doesn didn isn aren wasn weren won wouldn couldn haven hasn""".split()
)
#: things Whisper "hears" in noise or silence; never worth an answer
_NOISE = frozenset({"you", "thank you", "thanks for watching", "bye", "so", "okay", "um", "uh"})


def tokenize(text: str) -> list[str]:
    """Lower-case content words, lightly stemmed so "recorded" meets "recording"."""
    words = re.findall(r"[a-z0-9]+(?:'[a-z]+)?", text.lower())
    return [_stem(w) for w in (w.split("'")[0] for w in words) if w not in _STOPWORDS]


def _stem(word: str) -> str:
    if len(word) > 4 and word.endswith("ies"):
        word = word[:-3] + "y"
    elif len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        word = word[:-1]
    if len(word) > 5 and word.endswith("ing"):
        word = word[:-3]
    elif len(word) > 4 and word.endswith("ed"):
        word = word[:-2]
    if len(word) > 3 and word.endswith("e"):
        word = word[:-1]
    return word


def speakable(markdown: str) -> str:
    """Markdown body → plain sentences for TTS (list items become sentences)."""
    sentences: list[str] = []
    for raw in markdown.splitlines():
        item = re.match(r"^\s*(?:[-*+]|\d+[.)])\s+", raw)
        line = raw[item.end():] if item else raw
        line = line.strip().lstrip(">").strip()
        if not line or line.startswith(("```", "|")):
            continue
        line = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", line)  # links, images → their text
        line = re.sub(r"[*_`]+", "", line)
        if item and line[-1] not in ".!?:;":
            line += "."
        sentences.append(line)
    return re.sub(r"\s+", " ", " ".join(sentences)).strip()


@dataclass(frozen=True)
class FaqEntry:
    """One topic of the notes: a heading and what to say about it."""

    title: str
    answer: str
    level: int


@dataclass(frozen=True)
class Answer:
    text: str
    entry: FaqEntry | None
    """None: the fallback."""
    score: float


@dataclass
class FaqIndex:
    """The notes, parsed and indexed for TF-IDF cosine matching (small and exact)."""

    entries: list[FaqEntry]
    fallback: str = DEFAULT_FALLBACK
    title_weight: int = 3
    _vectors: list[dict[str, float]] = field(default_factory=list, repr=False)
    _idf: dict[str, float] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        docs = [
            Counter(tokenize(e.title) * self.title_weight + tokenize(e.answer))
            for e in self.entries
        ]
        n = len(docs)
        df = Counter(term for doc in docs for term in doc)
        self._idf = {t: math.log((n + 1) / (c + 1)) + 1.0 for t, c in df.items()}
        self._vectors = [self._weigh(doc) for doc in docs]

    @classmethod
    def parse(cls, markdown: str, **kwargs: Any) -> FaqIndex:
        """Headings are topics; a heading titled "Fallback" holds the no-match answer."""
        markdown = re.sub(r"<!--.*?-->", "", markdown, flags=re.S)
        entries: list[FaqEntry] = []
        fallback = DEFAULT_FALLBACK
        title, level, body = "", 0, []

        def close() -> None:
            nonlocal fallback
            answer = speakable("\n".join(body))
            if title.strip().lower().rstrip(":") == "fallback":
                fallback = answer or fallback
            elif title and answer:
                entries.append(FaqEntry(title=title, answer=answer, level=level))

        for line in markdown.splitlines():
            heading = re.match(r"^(#{1,6})\s+(.*?)\s*#*\s*$", line)
            if heading:
                close()
                level, title, body = len(heading.group(1)), heading.group(2), []
            else:
                body.append(line)
        close()
        return cls(entries=entries, fallback=fallback, **kwargs)

    @classmethod
    def load(cls, path: str | Path, **kwargs: Any) -> FaqIndex:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"faq_path={str(path)!r} cannot be read: {exc}") from exc
        index = cls.parse(text, **kwargs)
        logger.info(f"responder: {len(index.entries)} topics from {path}")
        return index

    def rank(self, question: str) -> list[tuple[float, FaqEntry]]:
        """Entries by cosine similarity to ``question``, best first (ties: file order)."""
        query = self._weigh(Counter(tokenize(question)))
        scored = [
            (sum(w * vec.get(t, 0.0) for t, w in query.items()), i)
            for i, vec in enumerate(self._vectors)
        ]
        scored.sort(key=lambda s: (-s[0], s[1]))
        return [(score, self.entries[i]) for score, i in scored]

    def _weigh(self, counts: Counter[str]) -> dict[str, float]:
        """Sublinear TF × IDF, L2-normalised (unknown terms get the highest IDF)."""
        top = math.log(len(self.entries) + 1) + 1.0
        vec = {t: (1.0 + math.log(c)) * self._idf.get(t, top) for t, c in counts.items()}
        norm = math.sqrt(sum(v * v for v in vec.values())) or 1.0
        return {t: v / norm for t, v in vec.items()}


class Responder(FrameProcessor):
    """Answer each finished question from the notes, like an LLM service would.

    Transcripts are answered at once unless the speaker is talking again (then they
    are merged with what follows: one question split by a pause gets one answer).
    A speaker change drops transcripts not yet answered.

    Args:
        index: the parsed notes.
        min_score: cosine similarity below which the fallback is said.
        max_chars: answers are cut at a sentence boundary below this length.
        hold_secs: after the speaker stops, how long a held transcript waits for the
            rest of the question before it is answered anyway.
    """

    def __init__(
        self,
        index: FaqIndex,
        *,
        min_score: float = 0.2,
        max_chars: int = 600,
        hold_secs: float = 1.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.index = index
        self.min_score = min_score
        self.max_chars = max_chars
        self.hold_secs = hold_secs
        self._pending: list[TranscriptionFrame] = []
        self._speaking = False
        self._hold_task: Any = None
        self.answers: list[Answer] = []

    @classmethod
    def from_file(cls, path: str | Path, **kwargs: Any) -> Responder:
        return cls(FaqIndex.load(path), **kwargs)

    def answer(self, question: str) -> Answer:
        """The deterministic answer to ``question`` (the fallback when nothing fits)."""
        ranked = self.index.rank(question)
        if ranked and ranked[0][0] >= self.min_score:
            score, entry = ranked[0]
            return Answer(_clip(entry.answer, self.max_chars), entry, score)
        return Answer(self.index.fallback, None, ranked[0][0] if ranked else 0.0)

    def known_answers(self) -> list[str]:
        """Every text :meth:`answer` can return: the TTS synthesizes them ahead."""
        return [_clip(e.answer, self.max_chars) for e in self.index.entries] + [
            self.index.fallback]

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        await self.push_frame(frame, direction)
        if direction is not FrameDirection.DOWNSTREAM:
            return
        if isinstance(frame, TranscriptionFrame):
            if _worth_answering(frame.text):
                self._pending.append(frame)
                if not self._speaking:
                    await self._respond()
            else:
                logger.debug(f"{self}: ignoring transcript {frame.text!r}")
        elif isinstance(frame, VADUserStartedSpeakingFrame):
            self._speaking = True
            await self._cancel_hold()
        elif isinstance(frame, VADUserStoppedSpeakingFrame):
            self._speaking = False
            if self._pending:
                await self._cancel_hold()
                self._hold_task = self.create_task(self._hold_then_respond())
        elif isinstance(frame, SpeakerChangedFrame):
            if self._pending:
                logger.info(f"{self}: speaker changed; dropping unanswered {frame.previous!r}")
            self._pending.clear()
            await self._cancel_hold()

    async def cleanup(self) -> None:
        await self._cancel_hold()
        await super().cleanup()

    async def _hold_then_respond(self) -> None:
        await asyncio.sleep(self.hold_secs)
        self._hold_task = None
        await self._respond()

    async def _cancel_hold(self) -> None:
        if self._hold_task is not None:
            task, self._hold_task = self._hold_task, None
            await self.cancel_task(task)

    async def _respond(self) -> None:
        if not self._pending:
            return
        await self._cancel_hold()
        question = " ".join(f.text.strip() for f in self._pending)
        self._pending.clear()
        answer = self.answer(question)
        self.answers.append(answer)
        topic = answer.entry.title if answer.entry else "fallback"
        logger.info(f"{self}: {question!r} -> [{topic}] ({answer.score:.2f})")
        await self.push_frame(LLMFullResponseStartFrame())
        await self.push_frame(LLMTextFrame(answer.text))
        await self.push_frame(LLMFullResponseEndFrame())


def _worth_answering(text: str) -> bool:
    normal = re.sub(r"[^a-z' ]+", "", text.lower()).strip()
    return bool(normal) and normal not in _NOISE


def _clip(text: str, max_chars: int) -> str:
    if len(text) <= max_chars:
        return text
    cut = text[:max_chars]
    end = max(cut.rfind(". "), cut.rfind("? "), cut.rfind("! "))
    return cut[: end + 1] if end > 0 else cut.rsplit(" ", 1)[0] + "."


# --- assembling the slot between STT and TTS ---------------------------------------------------


@dataclass
class ResponderChain:
    """What :func:`make_responder` hands the pipeline.

    Attributes:
        processors: in order, between the STT and the TTS.
        after_output: in order, after ``transport.output()`` (the LLM's assistant
            context aggregator, which records what was actually said); empty for
            the deterministic responder.
        responder: the deterministic Responder, when that is what answers.
    """

    processors: list[FrameProcessor]
    after_output: list[FrameProcessor] = field(default_factory=list)
    responder: Responder | None = None


def system_prompt(notes: str) -> str:
    """Instructions for an LLM that stands in for the notes-based responder."""
    return (
        "You are the AI avatar co-presenting a live webinar. The presenter speaks to you "
        "and the whole audience hears your answer, so reply in one to three short spoken "
        "sentences: plain words, no lists, no markdown, no emoji. Answer from the webinar "
        "notes below; if they don't cover the question, say so briefly and that the host "
        "will take it up during the open questions.\n\n--- webinar notes ---\n" + notes
    )


def make_responder(settings: Settings, *, turns: bool = True) -> ResponderChain:
    """The processors that turn transcripts into the words the TTS speaks.

    Args:
        turns: include pipecat's user-turn handling (UserStartedSpeakingFrame /
            UserStoppedSpeakingFrame and an interruption when the speaker starts,
            which is what makes the avatar stop on barge-in). The LLM path always
            has it (its user aggregator is a turn processor).
    """
    from pipecat.turns.user_start import VADUserTurnStartStrategy
    from pipecat.turns.user_stop import SpeechTimeoutUserTurnStopStrategy
    from pipecat.turns.user_turn_strategies import UserTurnStrategies

    def strategies() -> UserTurnStrategies:
        # A turn starts with the gated VAD only: a transcript never starts one, so a
        # late transcript can't interrupt the answer it is about to get. It ends on a
        # speech timeout rather than pipecat's default smart-turn model: no extra
        # inference on a small CPU, and the VAD's stop already bounds the turn.
        return UserTurnStrategies(
            start=[VADUserTurnStartStrategy()],
            stop=[SpeechTimeoutUserTurnStopStrategy()],
        )

    if not settings.llm_base_url:
        responder = Responder.from_file(settings.faq_path)
        processors: list[FrameProcessor] = []
        if turns:
            from pipecat.turns.user_turn_processor import UserTurnProcessor

            processors.append(UserTurnProcessor(user_turn_strategies=strategies()))
        processors.append(responder)
        return ResponderChain(processors=processors, responder=responder)

    from pipecat.processors.aggregators.llm_context import LLMContext
    from pipecat.processors.aggregators.llm_response_universal import (
        LLMContextAggregatorPair,
        LLMUserAggregatorParams,
    )
    from pipecat.services.openai.llm import OpenAILLMService

    try:
        notes = Path(settings.faq_path).read_text(encoding="utf-8")
    except OSError:
        logger.warning(f"responder: no notes at {settings.faq_path}; the LLM answers unaided")
        notes = "(none)"
    llm = OpenAILLMService(
        base_url=settings.llm_base_url,
        api_key=settings.llm_api_key or "none",  # local OpenAI-compatible servers take any key
        settings=OpenAILLMService.Settings(
            model=settings.llm_model, system_instruction=system_prompt(notes)
        ),
    )
    pair = LLMContextAggregatorPair(
        LLMContext(),
        # No vad_analyzer here: VAD runs once, after the speaker gate, upstream.
        user_params=LLMUserAggregatorParams(user_turn_strategies=strategies()),
    )
    logger.info(f"responder: LLM {settings.llm_model} at {settings.llm_base_url}")
    return ResponderChain(processors=[pair.user(), llm], after_output=[pair.assistant()])
