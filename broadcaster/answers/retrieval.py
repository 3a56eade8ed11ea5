"""Which topic of the notes a question is about, and how sure we are that the notes answer it.

Two decisions, each a small linear model over signals that are good where the others
are weak:

1. **Ranking** the topics. Per topic: sentence embeddings (bge-small-en-v1.5,
   :mod:`broadcaster.answers.encoder`; without its files, word signals only and their own
   fitted weights, :data:`LEXICAL_RANK`) of the question against the heading, the whole
   topic and its best sentence (paraphrases with no shared word land here); the
   word-level signals of :mod:`broadcaster.answers.lexical` (coverage, heading
   coverage, BM25); whether the topic holds the kind of answer asked for
   (:mod:`broadcaster.answers.qtypes`); and whether it is the notes' introduction
   (the text under the document's own title, whose heading names everything).
2. **Answering or not** ("not in my notes"): a logistic model over the best topic's
   signals, its lead over the second, and the share of the question's words that the
   notes never mention, gives a confidence between 0 and 1; below
   ``Weights.min_confidence`` (setting ``answer_threshold``) the fallback is said.

Both are fitted by ``python -m bench.conversation --fit`` on every turn of
bench/data/conversation (four sets, three notes files; the fit also reports how it
does on sets and notes files it was not fitted on) and kept as :class:`Weights`'
defaults. Turns the answerer replies to without the notes
(:meth:`broadcaster.answers.answerer.Answerer.without_notes`) are not fitted on.
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass, field

import numpy as np

from broadcaster.answers.encoder import SentenceEncoder, sentence_encoders
from broadcaster.answers.focus import counted_word, focus_word, priced_words
from broadcaster.answers.lexical import LexicalIndex, WordSignals
from broadcaster.answers.notes import Topic
from broadcaster.answers.qtypes import HARD, evidence_types, question_types
from broadcaster.answers.text import normalize, words

RANK_FEATURES = ("title", "body", "sentence", "title_m", "body_m", "sentence_m", "coverage",
                 "heading", "bm25", "answer_type", "intro")
"""Per topic: embedding similarity to its heading, to the whole topic, to its best
sentence (bge-small; ``*_m``: the same by all-MiniLM-L6-v2); word coverage of the topic,
of its heading; BM25; answer type (+1 / 0 / -1);
1 for the notes' introduction."""

ACCEPT_FEATURES = ("score", "margin", "title", "body", "sentence", "title_m", "body_m",
                   "sentence_m", "coverage", "answer_type",
                   "intro", "unknown", "unknown_max", "offtopic", "length", "focus", "lift_title",
                   "lift_body", "lift_sentence")
"""Per question, of its best topic: the ranking score and its lead over the second,
that topic's signals, the share of the question's words no topic has (and how unknown
the least known one is: ``unknown_max``), how much such a
word is what the question is about rather than what the topic is about (``offtopic``:
"can I pay with *paypal*" against a pricing topic), and the number of content words
(capped at 8, over 8); how much the best topic lacks the word the question asks for
(``focus``, :mod:`broadcaster.answers.focus`: "is there a *break*", "how many *credits*");
how far the closest heading, topic and sentence stand above the notes' average for this
question (``lift_*``: a question's similarities all rise or fall with its wording, so the
lift says more than the level)."""

QUESTION_FEATURES = ("unknown", "unknown_max", "offtopic", "length", "focus", "lift_title",
                     "lift_body", "lift_sentence")
"""The answering model's inputs that belong to the question, not to a topic."""


def _default_rank() -> dict[str, float]:
    return {"title": 0.414, "body": 1.027, "sentence": 0.41, "title_m": 0.232, "body_m": 0.769,
            "sentence_m": 0.484, "coverage": 0.404, "heading": 0.152, "bm25": 0.005,
            "answer_type": 0.13, "intro": -0.522}


def _default_accept() -> dict[str, float]:
    return {"score": 0.574, "margin": 3.37, "title": 8.16, "body": 3.785, "sentence": -0.864,
            "title_m": -0.22, "body_m": 0.252, "sentence_m": -1.467, "coverage": 1.36,
            "answer_type": 0.496, "intro": 0.0, "unknown": -0.436, "unknown_max": 0.855,
            "offtopic": -4.989, "length": -1.838, "focus": -0.933, "lift_title": -2.088,
            "lift_body": -0.64, "lift_sentence": 4.864}


LEXICAL_RANK = {"coverage": 0.657, "heading": 0.535, "bm25": -0.002, "answer_type": 0.379,
                "intro": -0.496}
LEXICAL_ACCEPT = {"score": 1.645, "margin": 3.274, "coverage": 1.03, "answer_type": -0.726,
                  "intro": 0.0, "unknown": -2.657, "unknown_max": 1.238, "length": -0.135,
                  "focus": -1.313}
LEXICAL_BIAS = -0.023
"""Fitted with the embedding model missing (``BROADCASTER_MODELS_DIR=/nonexistent python -m
bench.conversation --fit``): the word-level signals alone."""


@dataclass(frozen=True)
class Weights:
    """How the signals combine; the defaults are fitted (``bench.conversation --fit``)."""

    rank: dict[str, float] = field(default_factory=_default_rank)
    accept: dict[str, float] = field(default_factory=_default_accept)
    accept_bias: float = -6.473
    min_confidence: float = 0.5
    """Below this confidence the fallback is said: the question is not in the notes."""

    def without_embeddings(self) -> Weights:
        """Return the weights for word matching alone, if these are the fitted defaults.

        Weights fitted with the embeddings lean on them; without the model those would
        answer almost nothing. Weights given by hand are kept as they are.
        """
        if self.rank != _default_rank() or self.accept != _default_accept():
            return self
        return Weights(rank=dict(LEXICAL_RANK), accept=dict(LEXICAL_ACCEPT),
                       accept_bias=LEXICAL_BIAS, min_confidence=self.min_confidence)


@dataclass(frozen=True)
class Hit:
    """One topic's score for a question, with its parts (for logs and the bench)."""

    topic: Topic
    score: float
    features: dict[str, float]


@dataclass(frozen=True)
class Match:
    """The topics ranked for a question, and how sure we are the best one answers it."""

    hits: tuple[Hit, ...]
    confidence: float
    """0-1: the logistic model's belief that the notes answer the question."""
    features: dict[str, float]
    """The answering model's inputs (:data:`ACCEPT_FEATURES`)."""
    missing: tuple[str, ...] = ()
    """The question's words the best topic lacks (not even a near word)."""

    @property
    def best(self) -> Hit | None:
        """Return the best topic, if the notes have any."""
        return self.hits[0] if self.hits else None


def _missing(lex: WordSignals, topic: int) -> tuple[str, ...]:
    """List the question's words that ``topic`` does not have (not even a near word)."""
    if lex.credit is None:
        return ()
    return tuple(dict.fromkeys(w for w, c in zip(lex.words, lex.credit[:, topic], strict=True)
                               if c < MISSING_BELOW))


def _lacks_focus(question: str, lex: WordSignals, topic: int) -> float:
    """How much ``topic`` lacks the word the question asks for (0 when none is shown)."""
    focus = focus_word(normalize(question))
    if focus is None or lex.credit is None or focus not in lex.words:
        return 0.0
    return 1.0 - float(lex.credit[lex.words.index(focus), topic])


MISSING_BELOW = 0.5
TITLE_AS_QUERY = True


def _lift(sims: np.ndarray) -> float:
    """Return how far the best similarity stands above the mean of the others (0 if none)."""
    if sims.size < 2:
        return 0.0
    best = int(np.argmax(sims))
    return float(sims[best] - np.delete(sims, best).mean())

LACKS_ANSWER = 0.2
"""The confidence left to a question whose best topic cannot hold the kind of fact it
asks for (:meth:`Retriever._lacks_answer`): below any sensible threshold."""
"""A word a topic has less than this much of (near words earn their similarity) is one
the topic lacks."""


def sentences(text: str) -> list[str]:
    """Cut a topic's answer into its sentences."""
    parts = [s.strip() for s in re.split(r"(?<=[.!?])\s+", text) if s.strip()]
    return parts or [text]


class Retriever:
    """The notes' topics, indexed for lexical and semantic matching."""

    def __init__(self, topics: tuple[Topic, ...] | list[Topic],
                 weights: Weights | None = None) -> None:
        started = time.perf_counter()
        self.topics = tuple(topics)
        self.weights = weights or Weights()
        self.lexical = LexicalIndex(self.topics)
        self._evidence = [evidence_types(t.title + " " + t.answer) for t in self.topics]
        top_level = min((t.level for t in self.topics), default=1)
        self._intro = np.array([float(t.level == top_level == 1) for t in self.topics])
        self._intro_topics = [i for i, v in enumerate(self._intro) if v]
        pair = sentence_encoders()
        self.encoder: SentenceEncoder | None = pair[0] if pair else None
        self.encoder2: SentenceEncoder | None = pair[1] if pair else None
        sents = [(i, s) for i, t in enumerate(self.topics) for s in sentences(t.answer)]
        texts = ([t.title for t in self.topics]
                 + [f"{t.title}. {t.answer}" for t in self.topics] + [s for _, s in sents])
        n = len(self.topics)
        self._vecs = []
        for encoder in (self.encoder, self.encoder2):
            if encoder is not None:
                # headings are written as questions: compared as one question to another
                vecs = np.vstack([encoder.encode_cached(texts[:n], query=TITLE_AS_QUERY),
                                  encoder.encode_cached(texts[n:])])
            else:  # word matching only: every similarity is 0
                vecs = np.zeros((len(texts), 1), dtype=np.float32)
            self._vecs.append((vecs[:n], vecs[n:2 * n], vecs[2 * n:]))
        if self.encoder is None:
            self.weights = self.weights.without_embeddings()
        self._titles, self._bodies, self._sents = self._vecs[0]
        # the host's phrasings of a topic (Topic.asked): each compared as its heading is
        asked = [(i, p) for i, t in enumerate(self.topics) for p in t.asked]
        self._asked_owner = np.array([i for i, _ in asked], dtype=int)
        self._asked_vecs = [
            encoder.encode_cached([p for _, p in asked], query=TITLE_AS_QUERY)
            if encoder is not None and asked else None
            for encoder in (self.encoder, self.encoder2)]
        self.sentences = [s for _, s in sents]
        self._sent_owner = np.array([i for i, _ in sents], dtype=int)
        # one question's whole path now, not on the presenter's first question: with the
        # embeddings read from the disk cache the encoder has not run yet (its weights'
        # pages, BLAS's threads: up to a second on a busy machine)
        self.match("will this be recorded")
        self.load_seconds = time.perf_counter() - started

    def rank(self, question: str) -> list[Hit]:
        """Score every topic for ``question``, best first (ties: file order)."""
        return list(self.match(question).hits)

    def match(self, question: str) -> Match:
        """Rank the topics for ``question``; say how sure we are the best one answers it."""
        w = self.weights
        said = words(question)
        lex = self.lexical.signals(said)
        (title, body, sentence), (title_m, body_m, sentence_m) = (
            self._semantic(question, self.encoder, self._vecs[0], self._asked_vecs[0]),
            self._semantic(question, self.encoder2, self._vecs[1], self._asked_vecs[1]))
        wanted = question_types(normalize(question))
        hits = []
        for i, topic in enumerate(self.topics):
            kind = (1.0 if wanted & self._evidence[i] else -1.0) if wanted else 0.0
            f = {"title": float(title[i]), "body": float(body[i]),
                 "sentence": float(sentence[i]), "coverage": float(lex.coverage[i]),
                 "heading": float(lex.heading[i]), "bm25": float(lex.bm25[i]),
                 "answer_type": kind, "intro": float(self._intro[i]),
                 "title_m": float(title_m[i]), "body_m": float(body_m[i]),
                 "sentence_m": float(sentence_m[i])}
            hits.append(Hit(topic, sum(w.rank.get(k, 0.0) * f[k] for k in RANK_FEATURES), f))
        order = sorted(range(len(hits)), key=lambda i: (-hits[i].score, i))
        ranked = tuple(hits[i] for i in order)
        if not ranked:
            return Match((), 0.0, {})
        best = ranked[0]
        # one topic: nothing to stand out from (bge rates any two sentences ~0.4 alike)
        second = ranked[1].score if len(ranked) > 1 else best.score
        missing = _missing(lex, order[0])
        a = {"score": best.score, "margin": best.score - second, "unknown": lex.unknown,
             "unknown_max": lex.unknown_max,
             "offtopic": self._offtopic(question, missing, order[0]),
             "length": min(len(said), 8) / 8,
             "focus": _lacks_focus(question, lex, order[0]),
             "lift_title": _lift(title), "lift_body": _lift(body),
             "lift_sentence": _lift(sentence)}
        a.update({k: best.features[k] for k in ("title", "body", "sentence", "title_m", "body_m",
                                                "sentence_m", "coverage",
                                                "answer_type", "intro")})
        z = w.accept_bias + sum(w.accept.get(k, 0.0) * a[k] for k in ACCEPT_FEATURES)
        confidence = 1.0 / (1.0 + math.exp(-z))
        if self._lacks_answer(question, wanted, lex, order[0]):
            confidence = min(confidence, LACKS_ANSWER)
        return Match(ranked, confidence, a, missing)

    def _lacks_answer(self, question: str, wanted: set[str], lex: WordSignals,
                      best: int) -> bool:
        """Tell a topic that cannot hold the fact asked for, however close its words are.

        A price asked ("how much does the hotel cost") needs a price in the topic, and the
        thing priced named in it ("how much is *parking*" against a ticket price); a count
        of something ("how many *employees*") needs that thing named in it. The weaker
        answer-type cues (a time, a person) stay a feature of the model: "when" is often
        answered by a plan's order.
        """
        if "money" in wanted and "money" not in self._evidence[best]:
            return True
        if any(t in wanted and t not in self._evidence[best] for t in HARD):
            return True
        said = normalize(question)
        counted = counted_word(said)
        for thing in ((counted,) if counted else (),
                      priced_words(said) if "money" in wanted else ()):
            # the thing is missing when none of its words is in the topic, and it is not
            # what the whole notes are about ("how much is *plover*" at Plover's launch)
            have = [self._credit(lex, w, best) for w in thing]
            intro = [self._credit(lex, w, i) for w in thing for i in self._intro_topics]
            if have and max(have) < MISSING_BELOW and max(intro, default=0.0) < MISSING_BELOW:
                return True
        return False

    @staticmethod
    def _credit(lex: WordSignals, word: str, topic: int) -> float:
        """Tell how much ``topic`` has ``word`` of the question.

        1 when it is not a content word the index knows: nothing to hold against the topic.
        """
        if lex.credit is None or word not in lex.words:
            return 1.0
        return float(lex.credit[lex.words.index(word), topic])

    def match_any(self, questions: list[str]) -> Match:
        """Match a turn's readings (:func:`broadcaster.answers.rewrite.queries`).

        The whole question (first) when the notes answer it, else the reading the notes
        answer most surely: a reading only rescues a question; it never replaces an answer
        the whole question already gets.
        """
        best = self.match(questions[0])
        if best.confidence >= self.weights.min_confidence or len(questions) == 1:
            return best
        for q in questions[1:]:
            m = self.match(q)
            if m.confidence > best.confidence:
                best = m
        return best

    def _offtopic(self, question: str, unknown: tuple[str, ...], best: int) -> float:
        """Measure how much a word the notes lack is the question's subject.

        For each such word: its similarity to the question minus its similarity to the
        best topic; the largest. "hipaa" in "is plover hipaa compliant" is what the
        question is about; "hook" in "can I hook it up to my calendar" is not.
        """
        if not unknown or self.encoder is None:
            return 0.0
        q = self.encoder.encode_one(question)
        return float((self.encoder.encode_many(list(unknown)) @ (q - self._bodies[best])).max())

    def _semantic(self, question: str, encoder: SentenceEncoder | None,
                  vecs: tuple[np.ndarray, np.ndarray, np.ndarray],
                  asked: np.ndarray | None = None,
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Return ``question``'s similarity to each heading, topic and best sentence.

        A topic's heading counts as its closest form: the heading or a host's phrasing.
        """
        n = len(self.topics)
        if not normalize(question) or encoder is None:
            return np.zeros(n), np.zeros(n), np.zeros(n)
        titles, bodies, sents = vecs
        q = encoder.encode_one(question)
        best = np.full(n, -1.0)
        np.maximum.at(best, self._sent_owner, sents @ q)
        heading = titles @ q
        if asked is not None:
            np.maximum.at(heading, self._asked_owner, asked @ q)
        return heading, bodies @ q, best
