"""Words as speech recognition hands them over, made comparable with the notes.

Transcripts arrive lower-case or not, with or without punctuation, with fillers
("um", "you know") and contractions; the notes are written prose. Both go through
:func:`normalize` and :func:`terms` so that "What's the plan?" and "whats the plan"
are the same query, and "recorded" meets "recording" (Snowball stemming).

:data:`SYNONYM_GROUPS` is a small thesaurus of everyday equivalents that people say
for the words hosts write (taped / recorded, deck / slides, subtitles / captions). It
is about how people speak at an online event, not about one notes file: no entry
names anything a particular notes file says (a price, a language, a product). Most
paraphrase is left to the sentence embeddings (:mod:`broadcaster.answers.encoder`).
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

import Stemmer

#: words that carry no topic (question scaffolding, pronouns, fillers)
STOPWORDS = frozenset(
    """a about above after again against all also am an and any are as at be because been
    before being below between both but by can could did do does doing down during each
    few for from further had has have having he her here hers herself him himself his how
    i if in into is it its itself just let me more most my myself no nor not now of off on
    once only or other our ours ourselves out over own please same say she should so some
    such tell than that the their theirs them themselves then there these they this those
    through to too under until up us very was we were what when where which while who whom
    why will with would you your yours yourself yourselves um uh er erm ah okay ok well hey
    hi hello yeah yes like really actually basically gonna wanna gotta kind sort something
    anything thing things get got going go know think want wanted wondering wonder quick
    curious maybe might may shall must need im ive id youre thats
    whats theres dont doesnt didnt isnt arent wasnt cant wont wouldnt couldnt shouldnt
    lets sure guys everyone folks anyone one bit much many""".split()
)

#: spoken fillers removed before anything else looks at a transcript
_FILLERS = re.compile(
    r"\b(?:um+|uh+|uhm|er+m?|ah+|hmm+|mm+|you know|i mean|kind of|sort of|like i said"
    r"|by the way|btw)\b"
)

#: groups of everyday words people use for the same thing at an online event (each word
#: of a group stands for the others). Kept to what any webinar, launch or course says in
#: other words; entries that only served one example notes file's wording (non-profits,
#: schools, offline, migrating, roadmaps, "built on") were removed in round 2 after they
#: measured no better, and worse on notes they were not written for (bench/conversation.py)
SYNONYM_GROUPS: tuple[tuple[str, ...], ...] = (
    ("record", "recording", "recorded", "tape", "taped", "replay", "rewatch"),
    ("slides", "deck", "presentation"),
    ("captions", "subtitles", "transcript"),
    ("microphone", "mic", "mike", "mute", "muted", "unmute"),
    ("install", "download"),
    ("price", "pricing", "cost", "costs", "pay", "fee", "expensive", "cheap"),
    ("speakers", "presenter", "presenters", "presenting", "host", "hosting"),
    ("schedule", "timing"),
    ("start", "starts", "begin", "begins"),
    ("end", "ends", "finish", "wrap"),
    ("audience", "attendees", "viewers"),
    ("help", "support", "contact"),
    ("agenda", "program", "rundown", "outline"),
    ("sound", "audio"),
    ("speak", "talk", "chat"),
    # round 7: what attendees say for the words hosts write; each group measured on the
    # tuning sets (removing it loses 1-5 turns, docs/notes.md round 7); groups that moved
    # nothing there were left out
    ("software", "tech", "technology", "stack", "tooling", "framework", "frameworks"),
    ("connect", "connects", "integrate", "integrates", "integration", "integrations", "hook",
     "sync"),
    ("outline", "syllabus", "curriculum", "module", "modules"),
    ("deadline", "deadlines", "extension", "late", "overdue"),
    ("lecture", "lectures", "lesson", "lessons", "class", "classes", "session", "sessions"),
    ("grade", "grades", "graded", "grading", "mark", "marks", "score"),
)

#: word → the words it may stand for
SYNONYMS: dict[str, tuple[str, ...]] = {}
for _group in SYNONYM_GROUPS:
    for _word in _group:
        SYNONYMS[_word] = tuple(dict.fromkeys(
            SYNONYMS.get(_word, ()) + tuple(w for w in _group if w != _word)))

_CONTRACTED = {"re": "are", "ve": "have", "ll": "will", "d": "would", "m": "am"}
#: contractions as speech recognition often writes them, without the apostrophe
_BARE = {"whats": "what is", "whos": "who is", "hows": "how is", "wheres": "where is",
         "whens": "when is", "thats": "that is", "theres": "there is", "heres": "here is",
         "its": "it", "im": "i am",
         "ive": "i have", "youre": "you are", "theyre": "they are", "dont": "do not",
         "doesnt": "does not", "didnt": "did not", "isnt": "is not", "arent": "are not",
         "cant": "can not", "wont": "will not", "wouldnt": "would not", "couldnt": "could not",
         "shouldnt": "should not", "wasnt": "was not", "werent": "were not", "lets": "let us",
         "ill": "i will", "youll": "you will", "id": "i would", "youve": "you have",
         "cannot": "can not", "gonna": "going to", "wanna": "want to", "gotta": "got to"}
_BARE_CONTRACTIONS = re.compile(r"\b(?:" + "|".join(_BARE) + r")\b")

_SPELLED = re.compile(r"\b[a-z](?: [a-z]\b)+")

_stemmer = Stemmer.Stemmer("english")


def normalize(text: str) -> str:
    """Lower case, apostrophes and punctuation gone, fillers out, one space."""
    text = unicodedata.normalize("NFKD", text.lower().replace("’", "'"))
    text = "".join(c for c in text if not unicodedata.combining(c))  # Tomás → tomas
    text = re.sub(r"\b(ca|wo)n't\b", lambda m: {"ca": "can", "wo": "will"}[m.group(1)] + " not",
                  text)
    text = re.sub(r"n't\b", " not", text)
    text = re.sub(r"'(re|ve|ll|d|m)\b", lambda m: " " + _CONTRACTED[m.group(1)], text)
    # what's -> what is (the sentence encoder reads it); Plover's -> Plover
    text = re.sub(r"\b(what|that|it|there|here|who|where|how|when)'s\b", r"\1 is", text)
    text = re.sub(r"'s\b", "", text)
    text = _BARE_CONTRACTIONS.sub(lambda m: _BARE[m.group(0)], text)
    text = re.sub(r"\bq\s*(?:&|and|n)\s*a\b", "questions", text)  # "q and a", "q&a"
    text = re.sub(r"[^a-z0-9 ]+", " ", text)
    text = _FILLERS.sub(" ", text)
    # speech recognition spells acronyms out: "a p i", "i o s", "t a s" -> api, ios, tas
    text = _SPELLED.sub(lambda m: m.group(0).replace(" ", ""), text)
    return " ".join(text.split())


@lru_cache(maxsize=4096)
def stem(word: str) -> str:
    """Snowball-stem one word (cached: the same few hundred words come back)."""
    return _stemmer.stemWord(word)


_NUMBERS = {w: str(i) for i, w in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
    "fifteen sixteen seventeen eighteen nineteen twenty".split())}
_NUMBERS.update({"thirty": "30", "forty": "40", "fifty": "50", "hundred": "100"})
del _NUMBERS["one"]  # "which one", "quick one": mostly not a number when said


def words(text: str) -> list[str]:
    """Content words of ``text`` (normalized, stopwords out, number words as digits).

    "one" is a number only after a content word ("plover one", "version one"), not in
    "which one" or "a quick one".
    """
    out: list[str] = []
    previous = ""
    for w in normalize(text).split():
        if w == "one" and previous and previous not in STOPWORDS:
            out.append("1")
        elif w not in STOPWORDS and (len(w) > 1 or w.isdigit()):
            out.append(_NUMBERS.get(w, w))
        previous = w
    return out


def terms(text: str) -> list[str]:
    """Stemmed content words of ``text``."""
    return [stem(w) for w in words(text)]


def expanded_terms(text: str) -> list[str]:
    """:func:`terms` plus the stems of everyday synonyms of the words said."""
    said = words(text)
    out = [stem(w) for w in said]
    for w in said:
        out.extend(stem(s) for s in SYNONYMS.get(w, ()))
    return out
