"""The word a question is about, when its wording shows it.

"Is there a *break* during tonight's session?", "what *version* of LiveKit is it?",
"how many *credits* is the course worth?", "can I pay with *PayPal*?": the word after
"is there", "what/which", "how many", "have a", "pay with" is the thing asked for; the
rest ("tonight's session", "the course") only places it. A topic that shares every word
but that one does not answer the question, however close its other signals are: the
answerer says the fallback (:meth:`broadcaster.answers.answerer.Answerer.reply`).
"""

from __future__ import annotations

import re

from broadcaster.answers.text import words

#: what comes right before the asked-for thing (normalized text)
_BEFORE = re.compile(
    r"\b(?:(?:is|are|was|were) there(?: going to be)?|will there be|(?:^|\band )(?:what|which)"
    r"|how many|(?:have|has|offer|offers|get|give) (?:a|an|any)|(?:pay|paying|payment) "
    r"(?:with|in|by|via|using|through))"
    r"(?: (?:a|an|any|some|the|kind of|sort of|type of))? (?=[a-z])")

#: nouns after "what"/"which" that only shape the question ("what time", "which part")
_GENERIC = frozenset({
    "time", "times", "day", "days", "date", "kind", "sort", "type", "way", "part", "bit",
    "thing", "things", "happens", "happen", "else", "exactly", "about", "point", "one",
    "ones", "much", "many", "long", "level", "topics", "topic"})


def _word_after(pattern: re.Pattern[str], question: str) -> str | None:
    """Return the first word after ``pattern``'s match in ``question``, unless it is generic."""
    m = pattern.search(question)
    if m is None:
        return None
    rest = words(question[m.end():])
    if not rest or rest[0] in _GENERIC:
        return None
    return rest[0]


def focus_word(question: str) -> str | None:
    """Return the content word ``question`` (normalized) asks for, if its wording shows one."""
    return _word_after(_BEFORE, question)


_COUNTED = re.compile(r"\bhow many (?:of (?:the|your|our) )?(?=[a-z])")


def counted_word(question: str) -> str | None:
    """Return what "how many" counts in ``question`` (normalized): "how many *credits*"."""
    return _word_after(_COUNTED, question)


_PRICED = re.compile(r"\bhow much (?:is|are|does|do|will|would|did|was|were) (?:a |an |the |one "
                     r"|your |my |our )?(?=[a-z])|\b(?:cost|price|fee) (?:of|for) (?:a |an |the "
                     r"|one |your |my |our )?(?=[a-z])")


def priced_words(question: str) -> tuple[str, ...]:
    """Return what a price question prices: "how much is *parking*", "the cost of an *extra user*".

    The first one or two content words of the phrase; empty when none is shown.
    """
    m = _PRICED.search(question)
    if m is None:
        return ()
    phrase = []
    for w in question[m.end():].split():
        content = words(w)
        if not content:
            break
        phrase.append(content[0])
        if len(phrase) == 2:
            break
    if not phrase or phrase[0] in _GENERIC or phrase[0] in ("cost", "costs", "price", "charge"):
        return ()
    return tuple(phrase)
