"""Conversational turns: greetings, thanks, "can you hear me", "hold on", "go on", goodbyes.

A presenter talking to the avatar says many things that are not questions. Each
of them gets a short, natural reply (never the "not in my notes" fallback), and a
turn that starts or ends with one ("hi, quick question: will it be recorded?")
is answered for its question. Acts are found by phrase patterns on the
normalized transcript (:func:`broadcaster.answers.text.normalize`): they are a
small closed set of everyday formulas, which patterns catch exactly and in
microseconds, where a similarity model confuses "hold on" with "go on".

:func:`split_turn` peels social phrases off both ends of a turn and returns the
acts found and the rest (the question, possibly empty).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from broadcaster.answers.asking import asks, troubled
from broadcaster.answers.rewrite import clauses
from broadcaster.answers.text import normalize

#: act → its default reply (hosts override these in their notes, docs/notes.md)
DEFAULT_REPLIES: dict[str, str] = {
    "greeting": "Hello, and welcome! What would you like to know?",
    "thanks": "You're welcome!",
    "hearing_check": "Yes, I can hear you clearly.",
    "hold_on": "Sure, take your time.",
    "go_on": "Please go ahead, I'm listening.",
    "resume": "Right, as I was saying.",
    "goodbye": "Thank you for joining us. Goodbye!",
    "praise": "Thank you, I'm glad it helps.",
    "acknowledgement": "Great.",
    "apology": "No problem at all.",
    "repeat": "Sorry, I haven't said anything yet. What would you like to know?",
    "repeat_intro": "Of course.",
    "connection": "Sorry, the connection must have dropped for a moment. I'm here now: "
                  "what would you like to know?",
    "connection_intro": "Sorry about that. Here it is again.",
    "invite": "Of course, go ahead.",
    "remark": "I see. What would you like to ask me?",
    "ready": "Ready when you are. What would you like to know?",
}

#: the acts of the evaluation format (bench/conversation.py); finer acts map onto "other"
EVAL_ACTS = ("greeting", "thanks", "hearing_check", "hold_on", "go_on", "goodbye")

_ALL = r"(?: there| everyone| everybody| all| folks| guys| avatar| again| team| y all| you all)*"
_POLITE = (r"(?:(?:okay|ok|alright|right|yes|yeah|yep|sure|so|well|oh|and|but|sorry|please|"
           r"avatar|hey avatar|(?:can|could|would|will) you(?: please)?)\s)*")
_OKAY = r"(?: okay| ok| alright| all right| well| clearly| now| fine| there)*"
_SIDE = r"(?: (?:on|at|from) (?:your|the other) (?:side|end))?"
_WHERE = (r"(?: (?:at|in|on|from|over|watching|joining|listening)(?: (?:the|this|that|your|their)"
          r")?(?: very)?(?: [a-z]+){0,2}?(?: (?:back|front|room|hall|row|rows|call|line|stream|"
          r"there|zoom|home|side|end|corner|seats))?| online| at home| remotely)?")
"""Where the listeners are: "the people *at the very back*", "everyone *watching online*"."""
_LISTENERS = (r"(?:the |all the |all of the |any of the |those |our )?(?:[a-z]+ )?"
              r"(?:people|folks|everyone|everybody|anyone|anybody|audience|viewers|attendees|"
              r"room|hall|guests|listeners|crowd|team)" + _WHERE)
"""Whoever is listening, in any words: "the folks at the back", "the viewers at home"."""

#: act → patterns that match a whole phrase (on normalized text)
PATTERNS: dict[str, tuple[str, ...]] = {
    "hearing_check": (
        r"(?:hello |hi )?(?:can|could|do|did) (?:you|everyone|everybody|you all|you guys|"
        r"people|anyone|anybody) (?:still )?(?:hear|see|get|read) (?:me|us)" + _OKAY + _SIDE,
        r"(?:hello |hi )?(?:can|could|do|does|did) " + _LISTENERS + r" (?:still )?(?:hear|see) "
        r"(?:me|us)" + _OKAY + _WHERE + _OKAY,
        r"(?:are|is) (?:you|everyone|everybody|anyone|you all|you guys) (?:still )?(?:getting|"
        r"receiving|reading|hearing) (?:me|us|my (?:audio|voice|sound|mic))" + _OKAY + _SIDE,
        # the speaker's own sound: "did my voice drop out", "is my mic cutting out"
        r"(?:did|has|have|is|was|am) (?:my|the|i) ?(?:voice|audio|sound|mic|microphone|mike|"
        r"connection|signal|line)? (?:just )?(?:drop|dropped|dropping|cut|cutting|break|breaking"
        r"|go|going|cut out|drop out|breaking up)(?: out| up)?(?: (?:just )?(?:then|there|again|"
        r"for a (?:sec|second|moment|bit)))*",
        r"(?:are you|is everyone|is everybody|is anyone|are you all|are you guys) (?:still )?"
        r"able to (?:hear|see) (?:me|us)" + _OKAY + _SIDE,
        r"(?:you|everyone) (?:hear|hearing) me(?: okay| ok)?",
        r"(?:is|are) (?:my |the )?(?:mic|microphone|audio|sound|camera|mike|voice|video)s? "
        r"(?:still )?(?:working|on|ok|okay|alright|all right|fine|good|clear|loud enough|"
        r"coming through|coming across|getting through)" + _SIDE + r"(?: now)?",
        r"am i (?:audible|on|live|coming through|muted|on mute)(?: now)?",
        r"is (?:this|it|(?:this|the|my) (?:mic|microphone|mike|audio|sound))(?: thing)? (?:on|"
        r"working|live)(?: now| yet)?",
        r"(?:hello )?(?:are you|is anyone|is anybody|anyone|anybody) (?:still )?(?:there|here|"
        r"with me|listening|online)",
        r"(?:mic |sound )?(?:check|testing)(?: (?:one two|testing|one two three|mic))*",
        r"how(?: is| s)? (?:my )?(?:audio|sound)",
        # "am I still connected or did I lose you", "did I drop out"
        r"(?:am i|are we) (?:still )?(?:connected|online|live|here|there|on)(?: (?:or|and) (?:did|"
        r"have) (?:i|we) (?:lose|lost|drop|dropped) (?:you|out|off)(?: there)?)?",
        r"(?:or )?(?:did|have) (?:i|we) (?:just )?(?:lose|lost|drop|dropped) (?:you|out|off)"
        r"(?: there| again| for a (?:sec|second|moment|bit))*",
        r"(?:is )?my (?:audio|voice|sound|mic|microphone) (?:is )?(?:coming|getting) (?:through|"
        r"across)(?: okay| ok| alright| fine)?",
    ),
    "hold_on": (
        r"(?:hold|hang) on(?: a (?:sec|second|moment|minute|bit))?(?: please)?",
        r"(?:wait|stop)(?: wait| stop)*(?: a (?:sec|second|moment|minute))?(?: please)?"
        r"(?: (?:there|right there|for a (?:sec|second|moment|minute)|a sec))?",
        r"(?:just )?(?:one|a|give me a|give me one|just a) (?:sec|second|moment|minute|mo)"
        r"(?: please)?",
        r"sorry to (?:interrupt|cut you off|jump in)",
        r"(?:can i |let me |let us |may i |i want to |i would like to )"
        r"(?:ask|try) (?:you )?(?:something|a question|another question|one more thing|"
        r"something else|a different question|another thing)(?: else)?(?: instead)?",
        r"let me (?:think|check|see|look)(?: (?:for a (?:sec|second|moment)|about it|that))?",
        # "I need to find my notes", "let me grab my notes", "I'm just checking something"
        r"(?:i (?:just )?(?:need|have|want) to|let me(?: just)?|i am (?:just )?(?:going to|trying "
        r"to)) (?:find|grab|get|check|pull up|look (?:up|at)|open|look for) (?:my|the|a|some)?"
        r" ?(?:notes|page|slide|question|questions|list|paper|something|thing|place)"
        r"(?: (?:i was on|here|real quick|quickly))?",
        r"(?:pause|stop talking|be quiet|quiet please|not so fast|slow down)",
        r"bear with me(?: (?:a|one) (?:sec|second|moment|minute))?",
        r"hold (?:that|the|your) thought(?: (?:for )?(?:a|one) (?:sec|second|moment|minute))?",
        r"actually(?: wait)?",
        r"(?:can|could|may) i (?:jump|cut|chip|butt|come) in(?: here| there| for a (?:sec|second|"
        r"moment))?",
    ),
    "connection": (
        r"(?:you|the (?:audio|sound|video|stream|line|connection)) (?:are |is )?(?:breaking up|"
        r"cutting out|cut out|dropped out|dropping out|glitching|lagging|freezing|frozen|choppy)"
        r"(?: a bit| a little| there| again| for a (?:sec|second|moment|bit)| on me)*",
        r"i (?:lost|missed) (?:you|the (?:audio|sound|end|last (?:bit|part)))(?: there| again|"
        r" for a (?:sec|second|moment|bit))*",
        r"(?:the )?(?:connection|line|audio|sound) (?:is )?(?:bad|choppy|terrible|not great)",
    ),
    "ready": (
        r"(?:are you|are we|is everyone|is everybody) (?:all )?(?:ready|set|good to go|live|on air)"
        r"(?: to (?:go|start|begin|get started))?(?: now)?",
        r"(?:ready when you are|shall we (?:start|begin|get started)|let us (?:start|begin|"
        r"get started|do this|go)|are we (?:starting|on))",
    ),
    "go_on": (
        r"(?:please |you can |you may )?(?:go on|go ahead|carry on|continue|keep going|proceed"
        r"|resume)(?: please)?(?: then| now)*",
        r"(?:as )?you were saying",
        r"(?:please )?(?:finish|complete) (?:what you were saying|your (?:answer|point|sentence|"
        r"thought))",
        r"(?:sorry )?i am (?:done|finished|back)(?: now)?",
        r"where were we",
        r"(?:so |and )?what (?:were you|was it you were|you were) (?:saying|about to say)",
        r"(?:please )?do (?:go on|continue|carry on|go ahead)",
        r"(?:back|over) to you(?: (?:now|then|again))*",
        r"(?:please )?(?:continue|go on) with (?:what you were saying|your answer|that)",
    ),
    "goodbye": (
        r"(?:bye|goodbye|good bye|bye bye|farewell|cheerio)" + _ALL,
        r"see (?:you|ya|y all)(?: all| everyone| later| soon| next time| around| then)*"
        r"(?: (?:next|on|this|tomorrow)(?: (?:week|time|session|class|month|monday|tuesday|"
        r"wednesday|thursday|friday|saturday|sunday|morning|evening))?)?",
        r"take care" + _ALL,
        r"have a (?:good|great|nice|lovely) (?:day|evening|night|one|weekend|afternoon)" + _ALL,
        r"good ?night" + _ALL,
        r"that (?:is )?(?:all|it|everything)(?: (?:from (?:me|us|my side|my end|our side)|"
        r"for (?:me|us|now|today)))?",
        r"(?:i|we) (?:am|are|have) (?:done|finished|all set)(?: for (?:today|now))?",
        r"(?:i am|i will be|we are|we will be) (?:signing off|logging off|heading out|off)",
        r"catch you later",
        r"until next time",
        r"i will (?:leave it there|let you go|stop there)(?: then| for (?:now|today))*",
        r"(?:that will be all|nothing else|no more questions)(?: (?:from me|for (?:me|now|"
        r"today)))*",
    ),
    "thanks": (
        r"(?:thank you|thanks|thank u|thx|cheers|many thanks|much appreciated|appreciate it|"
        r"i appreciate (?:it|that))(?: (?:so|very|really|a lot|a bunch|again|much|for that|"
        r"for (?:the|your) (?:answer|help|explanation|info|information)|everyone|everybody|all"
        r"|guys|folks|you all|y all|avatar))*",
    ),
    "greeting": (
        # "hi lena avatar": a name before "avatar" (first: alternatives match in order)
        r"(?:hi|hello|hey|good (?:morning|afternoon|evening)) [a-z]+ avatar",
        r"(?:hi|hello|hey|hiya|howdy|yo|greetings|good (?:morning|afternoon|evening|day)|morning"
        r"|afternoon|evening)" + _ALL,
        r"how (?:are|re) (?:you|ya|things)(?: doing| going)?(?: today| this (?:morning|afternoon|"
        r"evening))?",
        r"how (?:is )?it going|what (?:is )?up|how do you do",
        r"(?:(?:it is|it s) )?(?:nice|good|great|lovely|glad) to (?:meet|see|hear|be here with)"
        r" (?:you|everyone|everybody|you all|all of you|y all)" + _ALL,
        r"(?:(?:it is|it s) )?(?:nice|good|great|lovely|glad) to be (?:here|with you)" + _ALL,
        r"welcome" + _ALL,
    ),
    "repeat": (
        r"(?:can|could|would) you (?:please )?(?:repeat|say) (?:that|it|this)(?: again)?"
        r"(?: please)?",
        r"(?:please )?(?:repeat that|say (?:that|it) again|come again|pardon|pardon me|"
        r"excuse me|sorry what|what was that)",
        r"i did not (?:catch|hear|get) (?:that|it|you)",
        r"one more time",
    ),
    "praise": (
        r"(?:wow|oh wow|whoa)?(?: ?(?:that|that is|that was|this is|this was|you are|what a|it|"
        r"it is|such a|very|so|really|pretty|super|quite) )*(?:a )?"
        r"(?:great|good|nice|cool|brilliant|excellent|helpful|clear|amazing|awesome|impressive|"
        r"fantastic|interesting|perfect|wonderful|neat|fascinating|useful|smart|clever|lovely|"
        r"incredible|beautiful|fun)(?: (?:answer|point|explanation|demo|stuff|one|job|work))?",
        r"(?:you|it|this|that|the avatar|your voice) (?:sound|sounds|look|looks|seem|seems|are|is"
        r"|feel|feels)(?: (?:so|very|really|pretty|super|quite|incredibly|totally))* (?:natural|"
        r"real|realistic|human|lifelike|great|good|amazing|awesome|impressive|clear|smart|"
        r"helpful|cool|fantastic|brilliant)",
        r"you (?:are|re) doing (?:great|well|fine|amazing|brilliantly|a (?:great|good|fantastic|"
        r"nice) job)",
        r"you explain(?: things| it| this| that)? (?:really |very |so |super )?(?:well|clearly)",
        r"(?:it is )?(?:so |really )?(?:nice|great|good|exciting|cool|amazing|awesome) to "
        r"(?:finally )?(?:see|have|hear) (?:this|that|it|you)(?: [a-z]+){0,3}",
        r"(?:wow|oh wow|whoa)",
        r"(?:i|we) (?:love|like) (?:it|that|this)",
        r"(?:good|great|nice) (?:job|work|one)",
    ),
    "apology": (
        r"(?:sorry|my bad|apologies|oops|excuse me)(?: about that| for that| everyone)?",
        r"i (?:was|am) (?:on mute|muted)",
        r"never mind|nevermind|forget it|no worries",
    ),
    "acknowledgement": (
        r"(?:yes |yeah |yep )?(?:i|we) can (?:hear|see) you(?: (?:fine|okay|ok|well|clearly|"
        r"perfectly|now|loud and clear))*",
        r"(?:okay|ok|alright|all right|right|yes|yeah|yep|sure|fine|got it|i see|makes sense|"
        r"that makes sense|understood|fair enough|sounds good|noted|mhm|uh huh|gotcha|"
        r"i understand|that answers it|that answers my question|okay then|no|nope|cool|"
        r"perfect|great|good|nice|excellent)",
        r"that (?:really |totally |definitely )?(?:helped|helps|helped a lot|helps a lot|clears "
        r"(?:it|that|things) up|cleared (?:it|that|things) up|answers (?:it|that|my question))",
    ),
}

#: phrases that introduce a question; dropped with the social phrases around it
_LEADIN = (
    r"(?:i (?:have|have got|got) (?:a|another|one more|one other|two|a couple of|a few) (?:quick "
    r"|small |last |more |follow up )?(?:question|one|thing)s?(?: for you)?(?: actually)?|"
    r"(?:a |one )?quick (?:question|one)|"
    r"(?:another|one more|a|my|next|other|last|follow up|followup) question(?: is)?|"
    r"i was wondering|i wonder|i would like to know|i want to know|"
    r"my question is|the question is|question|"
    # "can i ask ..." is a lead-in only before a question ("can i ask the avatar" is one)
    r"(?:can i|may i|could i|let me|let us) ask(?: you)?(?= (?:what|when|where|who|which|why|how"
    r"|is|are|do|does|did|will|would|can|could|should|if|whether|about)\b)|"
    r"tell me(?= (?:what|when|where|who|which|why|how|if|whether|about)\b))"
)

#: order in which a turn with several acts is answered for (the most specific first)
PRIORITY = ("repeat", "connection", "hearing_check", "ready", "hold_on", "go_on", "goodbye",
            "thanks", "greeting", "apology", "praise", "acknowledgement")

_COMPILED = {
    act: re.compile(r"(?:" + "|".join(f"(?:{p})" for p in pats) + r")")
    for act, pats in PATTERNS.items()
}
_HEAD = {act: re.compile(r"^" + _POLITE + r"(?:" + rx.pattern + r")(?: |$)")
         for act, rx in _COMPILED.items()}
_TAIL = {act: re.compile(r"(?:^| )" + _POLITE + r"(?:" + rx.pattern + r")$")
         for act, rx in _COMPILED.items()}
_LEADIN_HEAD = re.compile(r"^(?:" + _LEADIN + r")(?: |$)")
#: joining words peeled like a lead-in, which ask nothing ("go ahead *and* finish")
_JOIN_HEAD = re.compile(r"^(?:so|and|also|now|then|anyway|next|but|oh)(?: |$)")


@dataclass(frozen=True)
class Turn:
    """A transcript split into its social acts and its question."""

    acts: tuple[str, ...]
    """Acts found, in the order said."""
    question: str
    """What is left to answer (normalized); empty for a purely social turn."""
    asked: bool = False
    """A question lead-in was said ("quick question", "i was wondering")."""

    @property
    def act(self) -> str | None:
        """The act to reply to when there is no question (the most specific one)."""
        for act in PRIORITY:
            if act in self.acts:
                return act
        return None


def split_turn(normalized: str) -> Turn:
    """Peel social phrases and question lead-ins off both ends of a normalized turn."""
    text = normalized.strip()
    acts: list[str] = []
    tail: list[str] = []
    asked = False
    for _ in range(8):  # "hi there hello can you hear me ok quick question ..."
        hit = _first_head(text)
        if hit is None:
            break
        act, end = hit
        if act == _JOIN:
            pass
        elif act:
            acts.append(act)
        else:
            asked = True
        text = text[end:].strip()
    for _ in range(4):  # "... will it be recorded thanks"
        hit = _first_tail(text)
        if hit is None:
            break
        act, start = hit
        tail.append(act)
        text = text[:start].strip()
    return Turn(acts=tuple(acts + tail[::-1]), question=text, asked=asked)


def _marked(raw: str) -> bool:
    """Tell whether a "?" ends a clause that is not itself social.

    "Can you hear me? I think my mic keeps dropping out" asks nothing of the notes.
    """
    clauses = re.split(r"(?<=\?)", raw)
    return any(c.rstrip().endswith("?") and split_turn(normalize(c)).question
               for c in clauses)


def question_like(turn: Turn, raw: str) -> bool:
    """Tell whether what is left of a turn is asked rather than said in passing.

    A question or a request deserves the fallback when the notes lack it; a remark ("one
    second, my dog is barking") a conversational reply. Only what is left after the
    social phrases counts: "can you hear me" opens a question, but a social one.
    """
    return turn.asked or _marked(raw) or asks(turn.question) or _clause_asks(turn, raw)


def _clause_asks(turn: Turn, raw: str) -> bool:
    """Tell whether a clause of the question, cut at speech recognition's commas, asks.

    "A few people have asked this, can we bring our stuff across": the comma shows the
    question the run-on words hide. A social clause ("can you hear me, ...") asks nothing.
    """
    return any(asks(q) for c in clauses(raw) if f" {c} " in f" {turn.question} "
               and (q := split_turn(c).question))


def said_in_passing(turn: Turn, raw: str) -> bool:
    """Tell a social phrase followed by a remark from one followed by a question.

    "One sec, my cat is on the keyboard", "brilliant, cheers Priya", "hang on, let me
    find my bill": the social phrase is what to reply to, and the rest is not looked up
    in the notes (it matched a topic by its words: "bill", a host's name). A question,
    or a problem report ("sorry, there's no sound"), is still answered.
    """
    if turn.act is None or question_like(turn, raw):
        return False
    # a hearing check already answers a remark about one's own sound ("can you hear me, my
    # mic keeps dropping out"); after any other act a problem report is looked up
    return turn.act in _ABOUT_SOUND or not troubled(turn.question)


_ABOUT_SOUND = frozenset({"hearing_check", "connection"})


#: asking the avatar for an opinion or a taste: notes hold facts, so never from a topic
_OPINION = re.compile(
    r"\b(?:what (?:do|did|would) you (?:personally |honestly |really )?(?:think|reckon|feel|"
    r"make) (?:about|of)|(?:what is|how is) your (?:personal |honest )?(?:opinion|view|take|"
    r"feeling)|your (?:personal |honest )?(?:opinion|view|take|thoughts) (?:on|about|of)|"
    r"(?:all time )?favou?rites?|do you (?:personally |honestly |really )?(?:like|love|"
    r"prefer|enjoy|hate|believe in)|are you a fan of|in your opinion)\b")


def asks_opinion(question: str) -> bool:
    """Tell a question about the avatar's own opinion or taste.

    "What do you think of ...", "your favourite ...", "do you like ...": the notes hold
    no opinions, and a topic that shares a word with the question ("what do you think
    about AI" / a roadmap's "AI summaries") would answer a different one: the fallback.
    """
    return bool(_OPINION.search(question))


_JOIN = "join"


def _first_head(text: str) -> tuple[str, int] | None:
    """Find the longest social phrase (or lead-in: act "") at the start of ``text``."""
    best: tuple[str, int] | None = None
    for act, rx in _HEAD.items():
        m = rx.match(text)
        if m and m.end() > 0 and (best is None or m.end() > best[1]):
            best = (act, m.end())
    m = _LEADIN_HEAD.match(text)
    if m and m.end() > 0 and (best is None or m.end() > best[1]):
        best = ("", m.end())
    m = _JOIN_HEAD.match(text)
    if m and m.end() > 0 and (best is None or m.end() > best[1]):
        best = (_JOIN, m.end())
    return best


def _first_tail(text: str) -> tuple[str, int] | None:
    """Find a closing thanks or goodbye at the end of ``text``."""
    for act in ("thanks", "goodbye"):
        m = _TAIL[act].search(text)
        if m and m.start() > 0:
            return act, m.start()
    return None
