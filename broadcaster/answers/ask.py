"""``broadcaster ask``: what the avatar would answer, checked before going live.

It builds the responder exactly as the bot does (:func:`build_answerer` and
:func:`build_llm` on the same Settings; ``--notes`` only sets ``faq_path``) and keeps
one :class:`Dialogue` across the questions, as the bot keeps one across a
session. Output: one JSON object per question, ``{"question", "answer",
"source"}``, on stdout (with ``--explain`` also ``"confidence"`` and the three closest
``"candidates"``, so a host sees how near a phrasing came); problems go to stderr, naming
the bad value.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Iterator

from loguru import logger

from broadcaster.answers.answerer import CONVERSATION, LLM, Dialogue, Reply, build_answerer
from broadcaster.answers.llm import build_llm
from broadcaster.config import ConfigError, Settings

MAX_QUESTION_CHARS = 2000
"""Longer than anyone says in one turn; a longer line is refused, not truncated."""


def _questions(given: list[str]) -> Iterator[tuple[str, str]]:
    """(where, question) pairs: the arguments, or the non-blank lines of stdin."""
    if given:
        for i, q in enumerate(given, 1):
            yield f"question {i}", q
        return
    for n, raw in enumerate(sys.stdin.buffer, 1):
        try:
            line = raw.decode("utf-8").strip()
        except UnicodeDecodeError:
            yield f"stdin line {n}", raw.decode("utf-8", "replace").strip() or "\ufffd"
            continue
        if line:
            yield f"stdin line {n}", line


def _explained(reply: Reply) -> dict[str, object]:
    """How sure the responder was, and the topics it weighed (none for a social turn)."""
    if reply.source == CONVERSATION:
        return {"confidence": None, "candidates": []}
    return {"confidence": round(reply.score, 3),
            "candidates": [{"heading": h.topic.title, "score": round(h.score, 3)}
                           for h in reply.hits[:3]]}


def run_ask(questions: list[str], *, notes: str | None = None,
            config: str | None = None, explain: bool = False) -> int:
    """Answer ``questions`` (or stdin's lines); exit status 2 if any question was refused."""
    logger.remove()
    logger.add(sys.stderr, level="WARNING", format="{level}: {message}")
    if notes is not None and not notes.strip():
        raise ConfigError("--notes is empty: give the path of a notes file")
    settings = Settings.load(config, faq_path=notes, generate_secrets=False)
    answerer = build_answerer(settings)
    llm = build_llm(settings)
    dialogue = Dialogue()
    refused = 0

    async def answer(question: str) -> tuple[str, str, Reply]:
        reply = answerer.reply(question, dialogue)
        if llm is None or not reply.for_llm:
            if reply.source != CONVERSATION:
                dialogue.said(reply.text, reply.question)
            return reply.text, reply.source, reply
        try:
            text = await llm.complete(question, reply.hits, dialogue.history)
        except Exception as exc:  # as the bot does: the notes answer when the LLM can't
            logger.warning(f"the LLM at {settings.llm_base_url} failed ({type(exc).__name__}:"
                           f" {exc}); answering from the notes")
            dialogue.said(reply.text, reply.question)
            return reply.text, reply.source, reply
        dialogue.said(text, reply.question)
        return text, LLM, reply

    async def main() -> None:
        nonlocal refused
        try:
            for where, question in _questions(questions):
                if "\ufffd" in question:
                    print(f"broadcaster: {where} is not UTF-8 text", file=sys.stderr)
                    refused += 1
                    continue
                if not question.strip():
                    print(f"broadcaster: {where} is empty", file=sys.stderr)
                    refused += 1
                    continue
                if len(question) > MAX_QUESTION_CHARS:
                    print(f"broadcaster: {where} is {len(question)} characters long "
                          f"(at most {MAX_QUESTION_CHARS})", file=sys.stderr)
                    refused += 1
                    continue
                text, source, reply = await answer(question)
                line: dict[str, object] = {"question": question, "answer": text,
                                           "source": source}
                if explain:
                    line.update(_explained(reply))
                print(json.dumps(line, ensure_ascii=False), flush=True)
        finally:
            if llm is not None:
                await llm.close()

    asyncio.run(main())
    return 2 if refused else 0
