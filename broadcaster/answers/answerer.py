"""The keyless responder's decisions: a turn in, what the avatar says and why out.

One :class:`Answerer` serves the bot (through the pipecat adapter in
broadcaster/bot/responder.py) and ``broadcaster ask`` alike, built by
:func:`build_answerer` from the same Settings, so what a host checks before going
live is what the avatar will say.

A turn is, in order: noise (ignored), a conversational act with no question
(a short reply, :mod:`broadcaster.answers.acts`), or a question, answered from the
best topic (:mod:`broadcaster.answers.retrieval`) or, below the calibrated
threshold, with the notes' fallback. The only state is the :class:`Dialogue`:
what was said last and where an interrupted answer stopped, for "go on" and
"say that again".
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field

from broadcaster.answers.acts import (
    DEFAULT_REPLIES,
    EVAL_ACTS,
    Turn,
    asks_opinion,
    question_like,
    said_in_passing,
    split_turn,
)
from broadcaster.answers.asking import troubled
from broadcaster.answers.notes import Notes, Topic, load_notes
from broadcaster.answers.retrieval import Hit, Retriever, Weights
from broadcaster.answers.rewrite import queries
from broadcaster.answers.text import normalize, words
from broadcaster.config import Settings

FALLBACK = "fallback"
CONVERSATION = "conversation"
LLM = "llm"

#: a turn of at most this many words that asks nothing is a fragment ("today", "the grades")
FRAGMENT_WORDS = 3
#: a statement that asks nothing is answered from the notes only above this confidence
STATEMENT_CONFIDENCE = 0.9

#: what Whisper "hears" in noise or silence; never worth an answer
NOISE = frozenset({"", "you", "so", "um", "uh", "hmm", "mm", "ah", "oh",
                   "thanks for watching", "thank you for watching", "please subscribe"})


@dataclass(frozen=True)
class Reply:
    """What the avatar says to a turn, and where it came from."""

    text: str
    source: str
    """The topic's heading, "fallback", "conversation" or "llm"."""
    topic: Topic | None = None
    score: float = 0.0
    """How sure the responder is that the notes answer the question (0-1)."""
    act: str | None = None
    """The conversational act replied to (finer than :data:`EVAL_ACTS`)."""
    question: str = ""
    """The question that was answered, social phrases removed (normalized)."""
    hits: tuple[Hit, ...] = ()
    """The best topics, for grounding an LLM and for logs."""

    @property
    def for_llm(self) -> bool:
        """Tell whether, with an LLM configured, it answers this turn.

        It does for a question the notes cover. Conversational turns and questions
        outside the notes are answered at once, as without an LLM (the bot and
        ``broadcaster ask`` both ask this).
        """
        return self.source not in (FALLBACK, CONVERSATION, LLM)

    @property
    def eval_act(self) -> str | None:
        """The act in the evaluation's terms (finer acts count as "other")."""
        if self.act is None:
            return None
        if self.act == "resume":
            return "go_on"
        return self.act if self.act in EVAL_ACTS else "other"


@dataclass
class Dialogue:
    """What the avatar said last, for "go on" and "say that again"."""

    last: str = ""
    """The last answer said (not conversational replies)."""
    unsaid: str = ""
    """The part of an interrupted answer not yet said; empty when it was said in full."""
    history: list[tuple[str, str]] = field(default_factory=list)
    """The last questions and answers (an LLM's context for follow-ups)."""
    keep: int = 0
    """How many exchanges ``history`` keeps. None by default: SmolLM2-135M given the last
    two exchanges repeated the previous answer to the next, unrelated question
    (bench/llm_answer.py); each question is grounded in its own topics instead."""

    def said(self, text: str, question: str = "") -> None:
        """Note an answer said in full (and, for an LLM's context, what it answered)."""
        self.last, self.unsaid = text, ""
        if question and self.keep > 0:
            self.history = [*self.history, (question, text)][-self.keep:]

    def interrupted(self, spoken_chars: int) -> None:
        """Keep the rest of an answer cut after about ``spoken_chars``, from that sentence."""
        if not self.last or spoken_chars >= len(self.last):
            self.unsaid = ""
            return
        starts = [0] + [m.end() for m in re.finditer(r"(?<=[.!?])\s+", self.last)]
        begin = max(s for s in starts if s <= max(0, spoken_chars))
        self.unsaid = self.last[begin:].strip()


@dataclass
class Answerer:
    """Turns in, :class:`Reply` s out: deterministic, offline, milliseconds."""

    notes: Notes
    weights: Weights = field(default_factory=Weights)
    max_chars: int = 600
    retriever: Retriever = field(init=False)
    _turns: dict[str, int] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        """Index the notes' topics (embeddings from the disk cache when they are there)."""
        self.retriever = Retriever(self.notes.topics, self.weights)

    def worth_answering(self, text: str) -> bool:
        """Tell silence and Whisper's noise hallucinations ("you", "so") from words."""
        return normalize(text) not in NOISE

    def reply(self, text: str, dialogue: Dialogue | None = None) -> Reply:
        """Decide what to say to ``text`` (a transcript), given what was said before."""
        turn = split_turn(normalize(text))
        direct = self.without_notes(turn, text, dialogue)
        if direct is not None:
            return direct
        match = self.retriever.match_any(queries(text, turn.question))
        hits, best = match.hits[:3], match.best
        asked = question_like(turn, text) or troubled(turn.question)
        if best is not None and not asked and match.confidence >= self.weights.min_confidence:
            if len(turn.question.split()) <= FRAGMENT_WORDS:
                # a bare fragment ("today", "pricing"): only a topic whose heading names it
                if best.features["heading"] < 1.0 - 1e-6:
                    return Reply(self.notes.fallback, FALLBACK, score=match.confidence,
                                 question=turn.question, hits=hits)
            elif match.confidence < STATEMENT_CONFIDENCE:
                # a statement, neither asked nor a problem ("I'm a bit nervous, this is my
                # first course"): answered from the notes only when they plainly cover it
                return self._social(turn.act or "remark", dialogue)
        if best is None or match.confidence < self.weights.min_confidence:
            if not question_like(turn, text):
                # a remark the notes don't cover, not a question ("one second, my dog is
                # barking", "I'll let you go"): "that's a good question" would be wrong
                return self._social(turn.act or "remark", dialogue)
            return Reply(self.notes.fallback, FALLBACK, score=match.confidence,
                         question=turn.question, hits=hits)
        return Reply(_clip(best.topic.answer, self.max_chars), best.topic.title,
                     topic=best.topic, score=match.confidence, question=turn.question,
                     hits=hits)

    def without_notes(self, turn: Turn, text: str,
                      dialogue: Dialogue | None = None) -> Reply | None:
        """Reply to a turn that is not looked up in the notes, else None.

        Social turns, a lead-in alone ("one more question"), a social phrase followed by
        a remark, and a question for the avatar's opinion (bench/conversation_fit.py
        fits the retrieval models on the other turns, through this same decision).
        """
        if not turn.question.strip() or (turn.act is not None and not words(turn.question)
                                         and not question_like(turn, text)):
            # nothing left, or only words that carry nothing ("perfect, thanks so much")
            if turn.act is not None:
                return self._social(turn.act, dialogue)
            if turn.asked:  # "one more question", "I've got another one": invite it
                return self._social("invite", dialogue)
            return Reply(self.notes.fallback, FALLBACK)
        if said_in_passing(turn, text):
            return self._social(turn.act or "remark", dialogue)
        if asks_opinion(turn.question):
            return Reply(self.notes.fallback, FALLBACK, question=turn.question)
        return None

    def known_answers(self) -> list[str]:
        """Every fixed text :meth:`reply` can say: the TTS synthesizes them ahead."""
        texts = [_clip(t.answer, self.max_chars) for t in self.notes.topics]
        texts.append(self.notes.fallback)
        for act in DEFAULT_REPLIES:
            texts.extend(self._replies(act))
        return list(dict.fromkeys(texts))

    def _replies(self, act: str) -> tuple[str, ...]:
        return self.notes.conversation.get(act) or (DEFAULT_REPLIES[act],)

    def _say(self, act: str) -> str:
        """Pick the host's replies for ``act`` in turn (round robin), else the built-in one."""
        replies = self._replies(act)
        n = self._turns.get(act, 0)
        self._turns[act] = n + 1
        return replies[n % len(replies)]

    def _social(self, act: str, dialogue: Dialogue | None) -> Reply:
        if act == "go_on" and dialogue is not None and dialogue.unsaid:
            rest = dialogue.unsaid
            return Reply(f"{self._say('resume')} {rest}", CONVERSATION, act="resume")
        if act == "connection" and dialogue is not None and dialogue.last:
            return Reply(f"{self._say('connection_intro')} {dialogue.last}", CONVERSATION,
                         act="connection")
        if act == "repeat" and dialogue is not None and dialogue.last:
            return Reply(f"{self._say('repeat_intro')} {dialogue.last}", CONVERSATION,
                         act="repeat")
        return Reply(self._say(act), CONVERSATION, act=act)


def _clip(text: str, max_chars: int) -> str:
    """Answers are cut at a sentence boundary below ``max_chars``."""
    if len(text) <= max_chars:
        return text
    cut = text[:max_chars]
    end = max(cut.rfind(". "), cut.rfind("? "), cut.rfind("! "))
    return cut[: end + 1] if end > 0 else cut.rsplit(" ", 1)[0] + "."


async def warm_answerer(settings: Settings) -> None:
    """Load what :func:`build_answerer` needs in a thread, not on the event loop.

    The embedding model (a second or more on a busy machine), WordLlama and the notes'
    embeddings (then on disk): building the bot's Answerer afterwards takes milliseconds.
    """
    await asyncio.to_thread(build_answerer, settings)


def build_answerer(settings: Settings, notes_path: str | None = None) -> Answerer:
    """Build the bot's Answerer for ``settings`` (the one construction path, bot and CLI)."""
    notes = load_notes(notes_path or settings.faq_path)
    return Answerer(notes, Weights(min_confidence=settings.answer_threshold))
