"""Word-level signals: which of a question's words a topic has, and how rare they are.

- **coverage**: the IDF-weighted share of the question's content words that the
  topic has: stemmed (Snowball), through an everyday synonym
  (:data:`broadcaster.answers.text.SYNONYMS`), an acronym of the notes' own words
  ("sso" / "single sign-on"), or partly, by WordLlama word similarity, through a
  close word ("kept" / "keep"). A word no topic has ("paypal") weighs the most and
  counts against every topic.
- **heading coverage**: the same, against the heading alone.
- **bm25**: Okapi BM25 (``bm25s``) over the same stems, scaled by the best topic's.
- **unknown**: the weighted share of the question's words that no topic has at all:
  a question about something the notes never mention.

WordLlama (static word embeddings shipped in its wheel) only judges how close two
single words are; sentences are compared by :mod:`broadcaster.answers.encoder`.
"""

from __future__ import annotations

import logging
import math
import re
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from broadcaster.answers.notes import Topic
from broadcaster.answers.text import STOPWORDS, SYNONYMS, stem, terms, words


@lru_cache(maxsize=1)
def word_model() -> Any:
    """Load the WordLlama model in its wheel (its loader looks in the wrong folder)."""
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


_GLUE = frozenset({"the", "a", "an", "and", "or", "of", "to", "is", "are", "be", "it", "we",
                   "you", "your", "our"})


def acronyms(text: str) -> dict[str, set[str]]:
    """Map initials of 2-4 consecutive content words to their stems ("sso")."""
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


@dataclass(frozen=True)
class WordSignals:
    """The word-level signals of one question, one value per topic (and one overall)."""

    coverage: np.ndarray
    heading: np.ndarray
    bm25: np.ndarray
    unknown: float
    unknown_max: float = 0.0
    """How unknown the question's least known word is (1: no topic has anything near it)."""
    unknown_words: tuple[str, ...] = ()
    """The question's words that no topic has (no stem, synonym or acronym)."""
    words: tuple[str, ...] = ()
    """The question's content words, in order (the rows of ``credit``)."""
    credit: np.ndarray | None = None
    """(words, topics): how much each topic has each word (1: itself or a synonym)."""


class LexicalIndex:
    """The notes' words, indexed for exact, synonym, acronym and near-word matching."""

    soft_floor = 0.45
    """Word similarity below which a near word earns nothing."""

    def __init__(self, topics: tuple[Topic, ...], unknown_weight: float = 1.0) -> None:
        import bm25s

        self.n = len(topics)
        # the host's phrasings of a topic (Topic.asked) count as its heading
        headings = [" ".join((t.title, *t.asked)) for t in topics]
        docs = [terms(h) * 2 + terms(t.answer) for h, t in zip(headings, topics, strict=True)]
        self._doc_sets = [set(d) for d in docs]
        self._title_sets = [set(terms(h)) for h in headings]
        df = Counter(term for d in self._doc_sets for term in d)
        self.idf = {t: math.log((self.n + 1) / (c + 0.5)) for t, c in df.items()}
        self._unknown_idf = math.log((self.n + 1) / 0.5) * unknown_weight
        self._bm25 = bm25s.BM25()
        self._bm25.index([d or ["_"] for d in docs], show_progress=False)
        self._acronyms = acronyms(" ".join(t.title + " " + t.answer for t in topics))
        model = word_model()
        # every word of the notes, embedded alone, with the topics (and headings) it is in
        surface = sorted({w for h, t in zip(headings, topics, strict=True)
                          for w in words(h + " " + t.answer)})
        self._word_vecs = model.embed(surface, norm=True) if surface else np.zeros((0, 256))
        self._word_in_doc = np.array([[stem(w) in d for w in surface] for d in self._doc_sets],
                                     dtype=float).reshape(self.n, len(surface))
        self._word_in_title = np.array(
            [[stem(w) in d for w in surface] for d in self._title_sets],
            dtype=float).reshape(self.n, len(surface))

    def alternatives(self, word: str) -> set[str]:
        """List the stems that count as ``word``: its own, its synonyms', an acronym's."""
        alts = {stem(word), *(stem(s) for s in SYNONYMS.get(word, ()))}
        if stem(word) not in self.idf:
            alts |= self._acronyms.get(word, set())
            if word.endswith("s"):  # "tas": the plural of an acronym ("ta")
                alts |= self._acronyms.get(word[:-1], set())
        return alts

    def signals(self, said: list[str]) -> WordSignals:
        """Score every topic for ``said``, a question's content words.

        ``said`` comes from :func:`broadcaster.answers.text.words`; the result has the
        coverage, heading coverage, BM25 and the unknown share.
        """
        n = self.n
        if not said:
            return WordSignals(np.zeros(n), np.zeros(n), np.zeros(n), 0.0)
        doc_credit = np.zeros((len(said), n))
        title_credit = np.zeros((len(said), n))
        weight = np.zeros(len(said))
        unknown = np.zeros(len(said))
        vecs = word_model().embed(said, norm=True)
        query: list[str] = []
        for i, word in enumerate(said):
            alts = self.alternatives(word)
            known = [a for a in alts if a in self.idf]
            query.extend(known)
            weight[i] = max(self.idf[a] for a in known) if known else self._unknown_idf
            sims = self._word_vecs @ vecs[i]
            sims = np.where(sims >= self.soft_floor, sims, 0.0)
            unknown[i] = 0.0 if known else 1.0 - float(sims.max(initial=0.0))
            in_doc = np.array([bool(alts & d) for d in self._doc_sets], dtype=float)
            in_title = np.array([bool(alts & d) for d in self._title_sets], dtype=float)
            doc_credit[i] = np.maximum(in_doc, (self._word_in_doc * sims).max(axis=1,
                                                                               initial=0.0))
            title_credit[i] = np.maximum(in_title, (self._word_in_title * sims).max(
                axis=1, initial=0.0))
        total = weight.sum()
        bm25 = (np.asarray(self._bm25.get_scores(query), dtype=float) if query
                else np.zeros(n))
        top = float(bm25.max()) if bm25.size and bm25.max() > 0 else 1.0
        return WordSignals(coverage=(weight @ doc_credit) / total,
                           heading=(weight @ title_credit) / total, bm25=bm25 / top,
                           unknown=float(weight @ unknown / total),
                           unknown_max=float(unknown.max(initial=0.0)),
                           unknown_words=tuple(dict.fromkeys(
                               w for w, u in zip(said, unknown, strict=True) if u > 0)),
                           words=tuple(said), credit=doc_credit)
