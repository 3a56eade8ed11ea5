"""What kind of answer a question wants, and whether a topic's text has one.

"When does the demo start?" wants a time, "how much is it?" a price, "who is
hosting?" a person. A topic that holds no time cannot answer a "when", however
many words it shares with the question. This is the classic expected-answer-type
cue of question answering, done with patterns: the question's wording gives the
type, and the topic's text (as the host wrote it, with its capitals and digits)
shows whether it has something of that type.
"""

from __future__ import annotations

import re

_MONTHS = (r"january|february|march|april|may|june|july|august|september|october|november|"
           r"december|jan|feb|mar|apr|jun|jul|aug|sep|sept|oct|nov|dec")
_DAYS = r"monday|tuesday|wednesday|thursday|friday|saturday|sunday"

#: type → pattern on the normalized question
QUESTION: dict[str, re.Pattern[str]] = {
    "duration": re.compile(r"\bhow long\b|\bduration\b|\blength of\b|\bhow many (?:minutes|hours)"),
    "time": re.compile(r"^(?:so |and |but )?when\b|\bwhat time\b|\bwhat date\b|\bwhich day\b"
                       r"|\bhow soon\b|\bwhen (?:is|are|do|does|will|can|did)\b"
                       r"|\bwhat (?:day|month|year)\b|\bstart(?:s|ing)? at\b|\bby when\b"),
    # "how much" asks a price unless a noun follows ("how much electricity", "time")
    "money": re.compile(r"\bhow much(?= (?:is|are|was|does|do|did|will|would|should|can|could"
                        r"|it|this|that|they|for|to|money|extra|more|less|of a|on)\b| *$)"
                        r"|\bcost\b|\bprice\b|\bpricing\b|\bfee\b|\bcharge\b"
                        r"|\bpay\b|\bexpensive\b|\bcheap\b|\bafford"),
    # "who" asks for a person at the start ("who is hosting"), not in a relative clause
    # ("a transcript for people who are hard of hearing")
    "person": re.compile(r"^(?:so |and |but |then |ok |okay )?who\b"
                         r"|\b(?:tell me|know|ask|wondering|wonder) who\b"
                         r"|\bwhat (?:is|are) (?:the|your) names?\b"),
    "number": re.compile(r"\bhow many\b|\bhow big\b|\bhow large\b|\bmaximum\b|\blimit\b"),
    "language": re.compile(r"\blanguages?\b|\btranslat|\bin (?:my|your|other) language"
                           r"|\b(?:speak|speaks|understand|understands|in|into|support|supports)"
                           r" (?:english|german|french|spanish|italian|portuguese|dutch|polish"
                           r"|japanese|chinese|mandarin|korean|arabic|hindi|russian|turkish)\b"),
    "place": re.compile(r"^(?:so |and |but )?where\b|\bwhich (?:country|countries|city|region)"
                        r"|\bwhat (?:country|city|region|location)\b"),
    # the facts below are asked for by name; a topic without one cannot answer (HARD)
    "email": re.compile(r"\be ?mail address|\b(?:what|which) is (?:the |your |his |her |their "
                        r"|\w+ )?e ?mail\b|\be ?mail (?:him|her|them|you)\b|\bby e ?mail\b"
                        r"|\b(?:get|have|give me|share|send me) (?:the |your |his |her |\w+ )?"
                        r"e ?mail\b"),
    "phone": re.compile(r"\bphone\b|\btelephone\b|\bnumber (?:to|i can|we can|for) (?:call|ring)"
                        r"|\b(?:call|ring) you\b|\bhotline\b"),
    "office": re.compile(r"\b(?:head ?office|headquarter(?:s|ed)|hq)\b|\boffices?\b(?! hours)"
                         r"|\bwhere (?:is|are) (?:you|they|the company|your company|\w+ labs?)"
                         r"(?: guys)? (?:based|located)\b"),
    "next_event": re.compile(r"\b(?:next|another|follow ?up|upcoming|future|second)"
                             r" (?:\w+ )?(?:webinar|webinars|town hall|meetup|event|launch event"
                             r"|conference|edition)\b"),
}

HARD = ("email", "phone", "office", "next_event", "language")
"""Answer types whose fact the best topic must hold, or the fallback is said: an e-mail
address, a phone number, where the company's office is, a future event, a language. A topic near in
words but without it ("what's Dana's e-mail" against the speakers) answers something else."""

#: type → pattern on a topic's original text (case kept)
EVIDENCE: dict[str, re.Pattern[str]] = {
    "duration": re.compile(r"\b(?:\d+|one|two|three|four|five|ten|twenty|thirty|forty|"
                           r"fifty|an?|half an?)\s+(?:minutes?|hours?|days?|weeks?|months?)\b"
                           r"|\bfrom \d{1,2}(?::\d\d)?\s*(?:am|pm)? (?:to|until) \d", re.I),
    "time": re.compile(r"\b\d{1,2}(?::\d\d)?\s*(?:am|pm)\b|\b\d{1,2}:\d\d\b|\b(?:" + _MONTHS
                       + r")\b|\b(?:" + _DAYS + r")\b|\btoday\b|\btomorrow\b|\bquarter\b"
                       r"|\bnext (?:week|month|year)\b|\bwithin (?:a|one|\d+) (?:day|week)",
                       re.I),
    "money": re.compile(r"[$€£¥]|\b(?:euros?|dollars?|pounds?|usd|eur|gbp|cents?|free|"
                        r"fee|fees|price|prices|pricing|cost|costs|per (?:user|month|year|"
                        r"seat))\b", re.I),
    "person": re.compile(r"\b[A-Z][a-zà-ÿ]+ [A-Z][a-zà-ÿ]+\b(?<!\. [A-Z][a-z])"),
    "number": re.compile(r"\b\d[\d,.]*\b|\b(?:one|two|three|four|five|six|seven|eight|nine|"
                         r"ten|hundred|thousand|thousands|million|dozen)\b", re.I),
    "language": re.compile(r"\b(?:English|German|French|Spanish|Italian|Portuguese|Dutch|"
                           r"Polish|Swedish|Danish|Norwegian|Finnish|Japanese|Chinese|Mandarin|"
                           r"Korean|Arabic|Hindi|Russian|Turkish|Greek|Hebrew)\b"),
    "place": re.compile(r"\b(?:in|at|from|under|on) (?:the )?[A-Z][a-z]+|\b(?:box|page|menu|"
                        r"button|tab|settings|centre|center|office|room|data centres?)\b"),
    "email": re.compile(r"\b[\w.+-]+@[\w-]+\.[\w.]+"),
    "phone": re.compile(r"\b(?:phone|call|ring|extension|line|hotline)\b[^.]*\d"
                        r"|\+?\d[\d ()-]{6,}\d"),
    "office": re.compile(r"\b(?:head ?office|headquarters|offices? (?:in|at)|based in)\b", re.I),
    "next_event": re.compile(r"\b(?:next|upcoming|follow-up|follow up) (?:webinar|town hall|meetup"
                             r"|event|conference|edition)s?\b", re.I),
}


def question_types(normalized: str) -> set[str]:
    """List the answer types ``normalized`` (a normalized question) asks for."""
    return {t for t, rx in QUESTION.items() if rx.search(normalized)}


def evidence_types(text: str) -> set[str]:
    """List the answer types ``text`` (a topic's heading and answer, as written) gives."""
    return {t for t, rx in EVIDENCE.items() if rx.search(text)}
