"""A topic's sentences cut into the pieces a single fact sits in.

A long notes sentence often lists several facts ("New in this version: boards and a
timeline view share the same tasks, tasks can repeat on a schedule, and every team gets
a weekly summary email"). Embedded whole, one fact is diluted by the others, so a
question about just that fact ("can a task come back every week") sits no closer to
the sentence than to any other. Cut at ``;``, ``:``, ``,`` and a list's "and", each
piece carries one fact; pieces too short to say anything (fewer than
:data:`MIN_WORDS` content words: "Firefox", "5 projects") are put back on a
neighbour, so a list of names stays one piece.

Round 10's experiment (bench/conversation_r10.py, docs/notes.md): measured as inputs to
the responder's models and not adopted, so it lives here, not in broadcaster/answers.
"""

from __future__ import annotations

import re

from broadcaster.answers.text import words

MIN_WORDS = 3
"""A piece with fewer content words joins its neighbour."""

_HARD = re.compile(r"(\s*[;:]\s+|\s+[–—-]\s+)")
_COMMA = re.compile(r"(,\s+)")
_AND = re.compile(r"(\s+(?:and|or)\s+)", re.IGNORECASE)
_LEAD = re.compile(r"^(?:and|or|but|so|then)\s+", re.IGNORECASE)


def _split(text: str, pattern: re.Pattern[str]) -> list[str]:
    """Cut ``text`` at ``pattern``, keeping short parts joined to a neighbour.

    A part too short to stand alone stays joined (with its own separator) to the part
    before it, the first part to the one after.
    """
    cut = pattern.split(text)
    out: list[str] = [cut[0]]
    for sep, part in zip(cut[1::2], cut[2::2], strict=True):
        if len(words(part)) < MIN_WORDS or len(words(out[-1])) < MIN_WORDS:
            out[-1] = f"{out[-1]}{sep}{part}"
        else:
            out.append(part)
    return [p for p in out if p.strip()]


def clauses(sentence: str) -> list[str]:
    """Cut one sentence into its clauses and list items (the sentence itself if one).

    A list's "and" is cut only in a comma list's last item ("…, prices and release
    dates"), not inside a clause ("boards and a timeline view share …").
    """
    out: list[str] = []
    for hard in _split(sentence.strip(), _HARD):
        soft = _split(hard, _COMMA)
        for i, item in enumerate(soft):
            for piece in (_split(item, _AND) if len(soft) > 1 and i == len(soft) - 1
                          else [item]):
                piece = _LEAD.sub("", piece.strip().rstrip(".!?"))
                if piece:
                    out.append(piece)
    return out


def pieces(sentences: list[str]) -> list[str]:
    """Every sentence and, when it holds more than one, its clauses (each once)."""
    out: dict[str, None] = {}
    for s in sentences:
        out[s] = None
        parts = clauses(s)
        if len(parts) > 1:
            out.update(dict.fromkeys(parts))
    return list(out)
