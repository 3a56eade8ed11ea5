"""The questions inside a turn: a preamble dropped, an indirect frame undone, two split.

People on a live stream rarely ask bare questions. "So a lot of people in the chat are
asking, and I was wondering myself, how much is this going to cost us", "could you
remind everyone when the recordings go up", "does it run on a Mac, and is there an
Android app": the words that say what is asked are a part of the turn, and the rest
(a preamble, a frame around an embedded question, a second question) dilutes every
signal the retriever has, the embedding most of all.

:func:`queries` lists what to look up, the whole question first: the turn from its
first asking clause on (the preamble dropped), the embedded question of a frame
("... remind everyone *when* ...", "... wondering *whether* ..."), and each asking
clause of a turn that asks two things. The answerer looks every one up and keeps
the one the notes answer most surely. It is syntax (clause boundaries, a verb of
asking or knowing before a question word), not a list of phrasings.
"""

from __future__ import annotations

import re

from broadcaster.answers.asking import asks
from broadcaster.answers.text import normalize, words

#: where speech recognition's punctuation, or a joining word before a question, cuts a turn
_CLAUSE_CUT = re.compile(r"[,;:?!.]+\s*|\s+-+\s+")
_AUX = (r"is|are|was|were|do|does|did|will|would|can|could|should|has|have|what|when|where"
        r"|who|which|why|how")
#: "... on a mac *and is there* an android app": a second question with no comma
_JOINED_QUESTION = re.compile(r" (?:and|but|or|also|plus)(?: also)? (?=(?:" + _AUX + r")\b)")
#: joining words before a clause's first word ("and", "so"), dropped from a candidate
_JOIN = re.compile(r"^(?:(?:and|so|but|or|also|plus|then|now|anyway|well|ok|okay|right)\s)+")

#: a frame around an embedded question: a verb of asking, knowing or saying (with its
#: object) right before the question word or "if/whether" ("remind everyone *when*",
#: "wondering myself *how much*", "want to know *which*", "not sure *whether*")
_FRAME = re.compile(
    r"^.*?\b(?:know|knows|knew|wonder|wondering|wondered|ask|asks|asking|asked|remind|"
    r"tell|explain|clarify|confirm|check|say|sure|curious|idea|question)"
    r"(?: (?:me|us|you|everyone|everybody|people|folks|them|all|again|myself|ourselves|"
    r"the (?:audience|viewers|group|chat)))*"
    r"(?: is| was| about)? (?=(?:what|when|where|who|which|why|how|if|whether)\b)")
#: "... she says it is great, my question is: does it make sense for an old house"
_SAID_QUESTION = re.compile(r"^.*?\b(?:my|the|our|one|a|first|second|other) questions? (?:is|was"
                            r"|would be) (?=[a-z])")
_IF = re.compile(r"^(?:if|whether)\s")

#: the most candidates looked up for one turn (each is an embedding: ~3-5 ms)
MAX_QUERIES = 4


def clauses(raw: str) -> list[str]:
    """Cut a transcript into its clauses (normalized).

    At punctuation, or before a question joined on with "and" ("... and is there ...").
    """
    out = []
    for part in _CLAUSE_CUT.split(raw):
        for piece in _JOINED_QUESTION.split(normalize(part)):
            piece = _JOIN.sub("", piece).strip()
            if piece:
                out.append(piece)
    return out


def unframe(question: str) -> str:
    """Return the embedded question of a framed one, else ``question``.

    "could you remind everyone when existing customers get moved over" -> "when existing
    customers get moved over"; "I was wondering whether we get the slides" -> "we get the
    slides". Nothing is cut when what is left would have no content word.
    """
    m = _FRAME.match(question) or _SAID_QUESTION.match(question)
    if m is None or m.end() == 0:
        return question
    rest = _IF.sub("", question[m.end():])
    return rest if words(rest) else question


def queries(raw: str, question: str) -> list[str]:
    """List what to look up for a turn: ``question`` (social phrases peeled) first.

    Then shorter readings of it: from its first asking clause, each of two questions,
    each with an indirect frame undone.
    """
    out = [question]
    parts = [c for c in clauses(raw) if f" {c} " in f" {question} "]
    asking = [i for i, c in enumerate(parts) if asks(c) and words(c)]
    if asking:
        first = asking[0]
        if first > 0:  # a preamble before the first question: drop it
            out.append(" ".join(parts[first:]))
        if len(asking) > 1:  # two questions: each with what follows it
            bounds = [*asking, len(parts)]
            out.extend(" ".join(parts[a:b]) for a, b in zip(bounds, bounds[1:], strict=False))
    out = [question, *(unframe(q) for q in out)]
    return list(dict.fromkeys(q for q in out if words(q)))[:MAX_QUERIES] or [question]
