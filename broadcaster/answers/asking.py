"""Whether what is left of a turn asks something, and whether it reports a problem.

Word order tells a question from a remark without a model: an auxiliary before its
subject ("*can I* watch it later"), a question word opening a question ("*what were
you* saying") rather than a relative clause ("that's *what I* needed", "carry on
*where you* left off"), a request ("tell me", "any tips"). A problem report ("the
picture is stuck") is looked up in the notes as a question would be.
"""

from __future__ import annotations

import re

_QUESTION_START = re.compile(
    r"^(?:what|when|where|who|whom|whose|which|why|how|is|are|am|was|were|do|does|did|will"
    r"|would|can|could|should|shall|may|might|have|has|had|tell|explain|describe|give|show"
    r"|walk|any|anything|anyone|please|i (?:would (?:like|love)|want|need|am looking for|"
    r"was hoping)|we (?:would (?:like|love)|want|need))\b")

_WH = r"\b(?:what|when|where|who|which|why|how)\b"

#: a question asked inside a sentence ("I might be away, can I get an extension")
_ASKED_INSIDE = re.compile(
    # an auxiliary before its subject, not after one ("*this is my* first course")
    # ("part of *it can I* watch" asks: "it" is an object there)
    _WH + r"|(?<!\bthis )(?<!\bthat )(?<!\bthere )(?<!\bi )(?<!\bwe )(?<!\byou )"
    r"(?<!\bthey )(?<!\bhe )(?<!\bshe )(?<!\bwhich )(?<!\bwho )"
    r"(?:\b(?:can|could|do|does|did|will|would|should|may|shall)|(?<!\bit )\b(?:is|are|am))"
    r" (?:i|we|you|they|it|there|he|she|this|that|my|our)\b|"
    r"\bany (?:ideas|tips|advice|suggestions|thoughts|recommendations)\b|"
    # asking by saying so ("I'm curious about the captions", "more details on pricing")
    r"\b(?:curious|interested|wondering) (?:about|in|if|whether)\b|"
    # an embedded question after a verb of asking or knowing ("someone wants to know *if*
    # there is a trial", "people keep asking *whether*", "wondering *when* it ships")
    r"\b(?:know|knows|asking|asks|asked|ask|wonder|wonders|wondered|check|confirm)"
    r" (?:if|whether)\b|"
    r"\b(?:wondering|wonders|wondered|to know|asking|asked|asks) (?:me |us |you )?"
    r"(?:what|when|where|who|which|why|how)\b|"
    r"\b(?:info|information|details|detail) (?:on|about)\b")

#: a wh-word that opens a relative clause, not a question: the subject comes before any
#: verb ("that's *what I* needed", "carry on *where you* left off", "I love *how quickly
#: you* answer"); a question inverts it ("what *were you* saying") or asks the subject
_RELATIVE = re.compile(_WH + r"(?: (?:[a-z]+ly|much|many|long|often|far))? (?:i|you|we|they"
                       r"|he|she|it)\b(?! (?:think|reckon|mean)\b)")


def asks(text: str) -> bool:
    """Tell whether ``text`` (normalized) asks something.

    A question word used as one, an auxiliary before its subject, a request.
    """
    for m in _ASKED_INSIDE.finditer(text):
        if not _RELATIVE.match(text, m.start()):
            return True
    return bool(_QUESTION_START.match(text)) and not _RELATIVE.match(text)


#: words of a problem report ("sorry, there's no sound", "hi, my video is stuck")
_TROUBLE = re.compile(
    r"\b(?:no|not|never|cannot|nothing|nobody|stuck|froze|frozen|freezes|freezing|broken|"
    r"missing|black|blank|silent|muted|error|problem|issue|trouble|wrong|fail|fails|failed|"
    r"failing|crash|crashed|crashes|crashing|keeps|anymore)\b")


def troubled(text: str) -> bool:
    """Tell a problem report ("the picture is stuck"): looked up as a question would be."""
    return bool(_TROUBLE.search(text))
