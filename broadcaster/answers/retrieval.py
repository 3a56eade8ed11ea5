"""Which topic of the notes a question is about, and how sure we are.

Signals, each good where the others are weak, combined into one score per topic:

- **coverage**: the IDF-weighted share of the question's content words that the
  topic has: stemmed (Snowball), through an everyday synonym
  (:data:`broadcaster.answers.text.SYNONYMS`), an acronym of the notes' own words
  ("sso" / "single sign-on"), or partly, by WordLlama similarity, through a close
  word ("kept" / "keep"). A word no topic has ("football") weighs the most and
  counts against every topic: that is what keeps out-of-scope questions low.
- **heading coverage**: the same, against the heading alone. Hosts phrase headings
  the way people ask, so a question that repeats the heading's words is about it.
- **semantic**: WordLlama static embeddings (shipped in its wheel, no network) of
  the question against the heading, the whole topic and each of its sentences
  (the best): paraphrases with few shared words still land.
- **bm25**: Okapi BM25 (``bm25s``) over the same stems, scaled by the best topic's:
  a ranking signal (its raw scale grows with the question, so not a confidence).
- **answer type**: "when" wants a time, "how much" a price, "who" a person
  (:mod:`broadcaster.answers.qtypes`); a topic with nothing of that type is
  pushed down, one with it up.

Weights and the "not in my notes" threshold are fitted on
bench/data/conversation/tune.jsonl (``python -m bench.conversation --fit``) and
kept as :class:`Weights`' defaults.
"""

from __future__ import annotations

import logging
import math
import re
import time
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from broadcaster.answers.notes import Topic
from broadcaster.answers.qtypes import evidence_types, question_types
from broadcaster.answers.text import STOPWORDS, SYNONYMS, normalize, stem, terms, words


@dataclass(frozen=True)
class Weights:
    """How the signals combine; the defaults are fitted on the tune set."""

    coverage: float = 0.4
    heading: float = 0.1
    semantic: float = 0.2
    bm25: float = 0.1
    answer_type: float = 0.1
    min_score: float = 0.26
    """Below this, the fallback: the question is not in the notes."""
    unknown: float = 1.0
    """How much more than the rarest word of the notes a word no topic has weighs."""


@dataclass(frozen=True)
class Hit:
    """One topic's score for a question, with its parts (for logs and the bench)."""

    topic: Topic
    score: float
    features: dict[str, float]


@lru_cache(maxsize=1)
def embedder() -> Any:
    """The WordLlama model in its wheel (its loader looks in the wrong folder by default)."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    import wordllama
    from wordllama import WordLlama

    # wordllama calls logging.basicConfig(level=INFO) on import: every library's INFO
    # records would start printing in the bot and in `broadcaster ask`; undo it
    for handler in root.handlers[:]:
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)

    return WordLlama.load(cache_dir=Path(wordllama.__file__).parent, disable_download=True)


def _sentences(text: str) -> list[str]:
    parts = [s.strip() for s in re.split(r"(?<=[.!?])\s+", text) if s.strip()]
    return parts or [text]


_GLUE = frozenset({"the", "a", "an", "and", "or", "of", "to", "is", "are", "be", "it", "we",
                   "you", "your", "our"})


def _acronyms(text: str) -> dict[str, set[str]]:
    """Initials of 2-4 consecutive content words → their stems ("sso" → single sign on)."""
    tokens = [t for t in re.split(r"[^a-z0-9]+", text.lower()) if t]
    out: dict[str, set[str]] = {}
    for n in (2, 3, 4):
        for i in range(len(tokens) - n + 1):
            run = tokens[i:i + n]
            if (run[0] in STOPWORDS or any(t in _GLUE or t.isdigit() for t in run)
                    or run[-1] in ("a", "an")):
                continue
            out.setdefault("".join(t[0] for t in run), set()).update(stem(t) for t in run)
    return out


class Retriever:
    """The notes' topics, indexed for lexical and semantic matching."""

    soft_floor = 0.45
    """Word similarity below which a near word earns nothing."""

    def __init__(self, topics: tuple[Topic, ...] | list[Topic],
                 weights: Weights | None = None) -> None:
        import bm25s

        started = time.perf_counter()
        self.topics = tuple(topics)
        self.weights = weights or Weights()
        docs = [terms(t.title) * 2 + terms(t.answer) for t in self.topics]
        self._doc_sets = [set(d) for d in docs]
        self._title_sets = [set(terms(t.title)) for t in self.topics]
        df = Counter(term for d in self._doc_sets for term in d)
        n = len(docs)
        self._idf = {t: math.log((n + 1) / (c + 0.5)) for t, c in df.items()}
        self._unknown_idf = math.log((n + 1) / 0.5) * self.weights.unknown
        self._bm25 = bm25s.BM25()
        self._bm25.index([d or ["_"] for d in docs], show_progress=False)
        self._acronyms = _acronyms(" ".join(t.title + " " + t.answer for t in self.topics))
        self._evidence = [evidence_types(t.title + " " + t.answer) for t in self.topics]
        model = embedder()
        self._titles = model.embed([normalize(t.title) for t in self.topics], norm=True)
        self._bodies = model.embed([normalize(t.title + " " + t.answer) for t in self.topics],
                                   norm=True)
        sents = [(i, normalize(s)) for i, t in enumerate(self.topics)
                 for s in _sentences(t.answer)]
        self._sent_owner = np.array([i for i, _ in sents])
        self._sents = model.embed([s for _, s in sents], norm=True)
        # every word of the notes, embedded alone, with the topics (and headings) it is in
        surface = sorted({w for t in self.topics for w in words(t.title + " " + t.answer)})
        self._word_vecs = model.embed(surface, norm=True) if surface else np.zeros((0, 256))
        self._word_in_doc = np.array([[stem(w) in d for w in surface] for d in self._doc_sets],
                                     dtype=float).reshape(n, len(surface))
        self._word_in_title = np.array(
            [[stem(w) in d for w in surface] for d in self._title_sets],
            dtype=float).reshape(n, len(surface))
        self.load_seconds = time.perf_counter() - started

    def rank(self, question: str) -> list[Hit]:
        """Every topic scored for ``question``, best first (ties: file order)."""
        w = self.weights
        said = words(question)
        coverage, heading = self._coverage(said)
        semantic = self._semantic(question)
        bm25 = self._bm25_scores(said)
        top = float(bm25.max()) if bm25.size and bm25.max() > 0 else 1.0
        wanted = question_types(normalize(question))
        hits = []
        for i, topic in enumerate(self.topics):
            kind = (1.0 if wanted & self._evidence[i] else -1.0) if wanted else 0.0
            f = {"coverage": float(coverage[i]), "heading": float(heading[i]),
                 "semantic": float(semantic[i]), "bm25": float(bm25[i] / top),
                 "answer_type": kind}
            score = (w.coverage * f["coverage"] + w.heading * f["heading"]
                     + w.semantic * f["semantic"] + w.bm25 * f["bm25"]
                     + w.answer_type * f["answer_type"])
            hits.append(Hit(topic, score, f))
        order = sorted(range(len(hits)), key=lambda i: (-hits[i].score, i))
        return [hits[i] for i in order]

    def _alternatives(self, word: str) -> set[str]:
        alts = {stem(word), *(stem(s) for s in SYNONYMS.get(word, ()))}
        if stem(word) not in self._idf:
            alts |= self._acronyms.get(word, set())
        return alts

    def _coverage(self, said: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """Per topic, and per heading: IDF-weighted share of the question's words it has."""
        n = len(self.topics)
        if not said:
            return np.zeros(n), np.zeros(n)
        doc_credit = np.zeros((len(said), n))
        title_credit = np.zeros((len(said), n))
        weight = np.zeros(len(said))
        vecs = embedder().embed(said, norm=True)
        for i, word in enumerate(said):
            alts = self._alternatives(word)
            known = [self._idf[a] for a in alts if a in self._idf]
            weight[i] = max(known) if known else self._unknown_idf
            sims = self._word_vecs @ vecs[i]
            sims = np.where(sims >= self.soft_floor, sims, 0.0)
            in_doc = np.array([bool(alts & d) for d in self._doc_sets], dtype=float)
            in_title = np.array([bool(alts & d) for d in self._title_sets], dtype=float)
            doc_credit[i] = np.maximum(in_doc, (self._word_in_doc * sims).max(axis=1,
                                                                               initial=0.0))
            title_credit[i] = np.maximum(in_title, (self._word_in_title * sims).max(
                axis=1, initial=0.0))
        total = weight.sum()
        return (weight @ doc_credit) / total, (weight @ title_credit) / total

    def _semantic(self, question: str) -> np.ndarray:
        text = normalize(question)
        if not text:
            return np.zeros(len(self.topics))
        q = embedder().embed([text], norm=True)[0]
        best = np.maximum(self._titles @ q, self._bodies @ q)
        np.maximum.at(best, self._sent_owner, self._sents @ q)
        return best

    def _bm25_scores(self, said: list[str]) -> np.ndarray:
        query = [a for w in said for a in self._alternatives(w) if a in self._idf]
        if not query:
            return np.zeros(len(self.topics))
        return np.asarray(self._bm25.get_scores(query), dtype=float)
