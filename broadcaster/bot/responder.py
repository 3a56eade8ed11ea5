"""The responder's place in the pipecat pipeline: transcripts in, LLM-shaped frames out.

What to say is decided in :mod:`broadcaster.answers` (no pipecat there, so
``broadcaster ask`` loads fast and says exactly what the bot would): this module
is the thin adapter. :class:`Responder` takes final ``TranscriptionFrame`` s and
emits what an LLM service emits (``LLMFullResponseStartFrame``, ``LLMTextFrame``,
``LLMFullResponseEndFrame``), which the TTS aggregates into sentences and speaks.

With ``settings.llm_base_url`` set, questions the notes cover are answered by that
OpenAI-compatible LLM, grounded in the best topics (:mod:`broadcaster.answers.llm`):
its text streams out as generated, so the TTS starts on the first sentence, and
the speaker talking again cancels the generation. Conversational turns and
questions outside the notes never wait for the LLM.

:func:`make_responder` returns the processors for the slot between STT and TTS.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loguru import logger
from pipecat.frames.frames import (
    BotStartedSpeakingFrame,
    BotStoppedSpeakingFrame,
    Frame,
    InterruptionFrame,
    LLMFullResponseEndFrame,
    LLMFullResponseStartFrame,
    LLMTextFrame,
    TranscriptionFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

from broadcaster.answers.answerer import (
    CONVERSATION,
    FALLBACK,
    LLM,
    Answerer,
    Dialogue,
    Reply,
    build_answerer,
)
from broadcaster.answers.llm import GroundedLLM, build_llm
from broadcaster.answers.notes import load_notes
from broadcaster.config import Settings
from broadcaster.frames import AudienceQuestionFrame, SpeakerChangedFrame

#: Piper's en_US-joe-medium speaks about 14 characters a second: where an interrupted
#: answer stopped is estimated from how long the avatar had been talking
CHARS_PER_SECOND = 14.0


def reply_origin(reply: Reply, via_llm: bool) -> str:
    """Name where ``reply`` came from: "notes", "fallback", "conversation" or "llm".

    Not the heading: headings are the host's own words, too many for a metric label.
    """
    if via_llm:
        return "llm"
    return reply.source if reply.source in (FALLBACK, CONVERSATION) else "notes"


class Responder(FrameProcessor):
    """Answer each finished turn from the notes (or a grounded LLM), like an LLM service.

    Transcripts are answered at once unless the speaker is talking again (then they
    are merged with what follows: one question split by a pause gets one answer).
    A speaker change drops transcripts not yet answered.

    Args:
        answerer: the notes' Answerer (:func:`broadcaster.answers.build_answerer`).
        llm: answers covered questions instead of the notes' text, when given.
        hold_secs: after the speaker stops, how long a held transcript waits for the
            rest of the question before it is answered anyway.
    """

    def __init__(self, answerer: Answerer, *, llm: GroundedLLM | None = None,
                 hold_secs: float = 1.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.answerer = answerer
        self.llm = llm
        self.hold_secs = hold_secs
        self.dialogue = Dialogue()
        self.answers: list[Reply] = []
        self.outcomes: Counter[str] = Counter()
        """Replies by where they came from (:func:`reply_origin`), for the bot's metrics."""
        self._pending: list[TranscriptionFrame] = []
        self._speaking = False
        self._hold_task: Any = None
        self._llm_task: Any = None
        self._bot_since: float | None = None  # the avatar is talking since (monotonic)
        self._answering = False  # the avatar's current speech is an answer from the notes

    @classmethod
    def from_file(cls, path: str | Path, **kwargs: Any) -> Responder:
        """Build a keyless Responder from a notes file (tests, tools)."""
        return cls(Answerer(load_notes(path)), **kwargs)

    def answer(self, question: str) -> Reply:
        """Decide what the keyless responder says to ``question`` (no dialogue state)."""
        return self.answerer.reply(question)

    def known_answers(self) -> list[str]:
        """Every fixed text the responder can say: the TTS synthesizes them ahead."""
        return self.answerer.known_answers()

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        """Answer final transcripts; follow the speaker, the avatar's speech and barge-in."""
        await super().process_frame(frame, direction)
        await self.push_frame(frame, direction)
        if isinstance(frame, BotStartedSpeakingFrame):
            self._bot_since = time.monotonic()
        elif isinstance(frame, BotStoppedSpeakingFrame):
            self._bot_since, self._answering = None, False
        if direction is not FrameDirection.DOWNSTREAM:
            return
        if isinstance(frame, TranscriptionFrame):
            if self.answerer.worth_answering(frame.text):
                self._pending.append(frame)
                if not self._speaking:
                    await self._respond()
            else:
                logger.debug(f"{self}: ignoring transcript {frame.text!r}")
        elif isinstance(frame, VADUserStartedSpeakingFrame | InterruptionFrame):
            if isinstance(frame, VADUserStartedSpeakingFrame):
                self._speaking = True
                await self._cancel_hold()
            await self._interrupted()
        elif isinstance(frame, VADUserStoppedSpeakingFrame):
            self._speaking = False
            if self._pending:
                await self._cancel_hold()
                self._hold_task = self.create_task(self._hold_then_respond())
        elif isinstance(frame, AudienceQuestionFrame):
            await self._answer(frame.text, preface=asked(frame), asker=frame.asker)
        elif isinstance(frame, SpeakerChangedFrame):
            if self._pending:
                logger.info(f"{self}: speaker changed; dropping unanswered {frame.previous!r}")
            self._pending.clear()
            await self._cancel_hold()

    async def cleanup(self) -> None:
        """Stop a held answer and an LLM generation; close the LLM client."""
        await self._cancel_hold()
        await self._cancel_llm()
        if self.llm is not None:
            await self.llm.close()
        await super().cleanup()

    async def _interrupted(self) -> None:
        """Stop generating when the speaker talks, and note where the answer was cut."""
        await self._cancel_llm()
        if self._answering and self._bot_since is not None:
            spoken = (time.monotonic() - self._bot_since) * CHARS_PER_SECOND
            self.dialogue.interrupted(int(spoken))
            self._answering, self._bot_since = False, None

    async def _hold_then_respond(self) -> None:
        await asyncio.sleep(self.hold_secs)
        self._hold_task = None
        await self._respond()

    async def _cancel_hold(self) -> None:
        if self._hold_task is not None:
            task, self._hold_task = self._hold_task, None
            await self.cancel_task(task)

    async def _cancel_llm(self) -> None:
        if self._llm_task is not None:
            task, self._llm_task = self._llm_task, None
            await self.cancel_task(task)
            logger.info(f"{self}: LLM answer cancelled (barge-in)")

    async def _respond(self) -> None:
        if not self._pending:
            return
        await self._cancel_hold()
        question = " ".join(f.text.strip() for f in self._pending)
        self._pending.clear()
        await self._answer(question)

    async def _answer(self, question: str, preface: str = "",
                      asker: str | None = None) -> None:
        """Answer ``question``; ``preface`` is said first (who asked, for the audience's).

        ``asker``: an audience question, which the LLM gets as data, not instructions.
        """
        reply = self.answerer.reply(question, self.dialogue)
        logger.info(f"{self}: {question!r} -> [{reply.source}] ({reply.score:.2f})")
        via_llm = self.llm is not None and reply.for_llm
        self.outcomes[reply_origin(reply, via_llm)] += 1
        if via_llm:
            await self._cancel_llm()
            if preface:
                await self._say(preface)
            self._llm_task = self.create_task(self._generate(question, reply, asker))
            return
        self.answers.append(reply)
        if reply.source != CONVERSATION:
            self.dialogue.said(reply.text, reply.question)
            self._answering = True
        await self._say(f"{preface} {reply.text}".strip())

    async def _say(self, text: str) -> None:
        await self.push_frame(LLMFullResponseStartFrame())
        await self.push_frame(LLMTextFrame(text))
        await self.push_frame(LLMFullResponseEndFrame())

    async def _generate(self, question: str, keyless: Reply,
                        asker: str | None = None) -> None:
        """Stream the LLM's grounded answer; if it fails before a word, say the notes'."""
        assert self.llm is not None
        parts: list[str] = []
        started = False
        try:
            async for delta in self.llm.stream(question, keyless.hits,
                                               self.dialogue.history, asker):
                if not started:
                    await self.push_frame(LLMFullResponseStartFrame())
                    started, self._answering = True, True
                parts.append(delta)
                self.dialogue.said("".join(parts))  # so far: "go on" resumes this answer
                await self.push_frame(LLMTextFrame(delta))
        except Exception as exc:  # the endpoint is down or refuses: the notes still answer
            logger.warning(f"{self}: LLM failed ({type(exc).__name__}: {exc}); "
                           "answering from the notes")
            if not started:
                self.answers.append(keyless)
                self.dialogue.said(keyless.text, keyless.question)
                self._answering = True
                await self._say(keyless.text)
                self._llm_task = None
                return
        # (cancelled: no end frame, so the TTS has no half sentence to flush)
        if started:
            await self.push_frame(LLMFullResponseEndFrame())
        text = "".join(parts).strip()
        reply = Reply(text, LLM, topic=keyless.topic, score=keyless.score,
                      question=keyless.question, hits=keyless.hits)
        self.answers.append(reply)
        self.dialogue.said(text, keyless.question)
        self._llm_task = None


def asked(frame: AudienceQuestionFrame) -> str:
    """Return what the avatar says before answering an audience question: who asked, and what."""
    text = frame.text.strip()
    return f"{frame.asker} asks: {text}{'' if text[-1:] in '.?!' else '?'}"


# --- assembling the slot between STT and TTS ---------------------------------------------------


@dataclass
class ResponderChain:
    """What :func:`make_responder` hands the pipeline.

    Attributes:
        processors: in order, between the STT and the TTS.
        after_output: in order, after ``transport.output()`` (none today; kept so the
            pipeline need not change when a responder needs one).
        responder: the Responder.
    """

    processors: list[FrameProcessor]
    after_output: list[FrameProcessor] = field(default_factory=list)
    responder: Responder | None = None


def make_responder(settings: Settings, *, turns: bool = True) -> ResponderChain:
    """Build the processors that turn transcripts into the words the TTS speaks.

    The same construction path as ``broadcaster ask``: :func:`build_answerer` and
    :func:`build_llm` on the same settings.

    Args:
        turns: include pipecat's user-turn handling (UserStartedSpeakingFrame /
            UserStoppedSpeakingFrame and an interruption when the speaker starts,
            which is what makes the avatar stop on barge-in).
    """
    from pipecat.turns.user_start import VADUserTurnStartStrategy
    from pipecat.turns.user_stop import SpeechTimeoutUserTurnStopStrategy
    from pipecat.turns.user_turn_processor import UserTurnProcessor
    from pipecat.turns.user_turn_strategies import UserTurnStrategies

    llm = build_llm(settings)
    responder = Responder(build_answerer(settings), llm=llm)
    processors: list[FrameProcessor] = []
    if turns:
        # A turn starts with the gated VAD only: a transcript never starts one, so a
        # late transcript can't interrupt the answer it is about to get. It ends on a
        # speech timeout rather than pipecat's default smart-turn model: no extra
        # inference on a small CPU, and the VAD's stop already bounds the turn.
        processors.append(UserTurnProcessor(user_turn_strategies=UserTurnStrategies(
            start=[VADUserTurnStartStrategy()], stop=[SpeechTimeoutUserTurnStopStrategy()])))
    processors.append(responder)
    if llm is not None:
        logger.info(f"responder: LLM {settings.llm_model} at {settings.llm_base_url}, "
                    f"grounded in the notes' best {settings.llm_context_topics} topics")
    return ResponderChain(processors=processors, responder=responder)
