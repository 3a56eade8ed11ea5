"""An OpenAI-compatible LLM answering from the notes' best topics, streamed.

The keyless :class:`~broadcaster.answers.answerer.Answerer` still decides first:
conversational turns get their short reply and questions below the threshold
the notes' fallback, with no LLM call (fast, and a small model asked about
something the notes lack makes an answer up). A question the notes cover goes to
the LLM with only the ``llm_context_topics`` best topics as its material (a
small model follows a short, relevant prompt far better than the whole file).
Its text streams back delta by delta; the bot's TTS speaks each sentence as it
completes, and cancelling the iteration closes the HTTP stream, which stops the
server's generation (barge-in).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

from broadcaster.answers.retrieval import Hit
from broadcaster.config import Settings

SYSTEM = (
    "You are the AI avatar co-presenting a live webinar. The presenter asks you a "
    "question and the whole audience hears your answer. Answer in one or two short "
    "spoken sentences, in plain words: no lists, no markdown, no emoji. Use only the "
    "webinar notes you are given. If they do not answer the question, say that it is "
    "not in your notes and that the host will take it in the open questions."
)


def grounded_messages(question: str, hits: Sequence[Hit],
                      history: Sequence[tuple[str, str]] = ()) -> list[dict[str, str]]:
    """Build the chat messages for ``question``: instructions, best topics, recent turns."""
    notes = "\n\n".join(f"{h.topic.title}: {h.topic.answer}" for h in hits)
    messages = [{"role": "system", "content": SYSTEM}]
    for asked, answered in history:
        messages.append({"role": "user", "content": asked})
        messages.append({"role": "assistant", "content": answered})
    # the notes next to the question, not in the system prompt: small models follow the
    # material they have just read (SmolLM2-135M quoted it instead of inventing figures)
    messages.append({"role": "user", "content": f"Notes:\n{notes}\n\nQuestion: {question}"})
    return messages


@dataclass
class GroundedLLM:
    """A streaming chat client for any OpenAI-compatible endpoint."""

    base_url: str
    api_key: str
    model: str
    max_tokens: int = 120
    context_topics: int = 1
    timeout: float = 30.0

    def __post_init__(self) -> None:
        """Open the client (no request yet)."""
        from openai import AsyncOpenAI

        # local OpenAI-compatible servers take any key; the SDK insists on one
        self._client: Any = AsyncOpenAI(base_url=self.base_url, api_key=self.api_key or "none",
                                        timeout=self.timeout, max_retries=0)

    async def stream(self, question: str, hits: Sequence[Hit],
                     history: Sequence[tuple[str, str]] = ()) -> AsyncIterator[str]:
        """Stream the answer's text as it is generated (cancel the iteration to stop it)."""
        messages = grounded_messages(question, hits[: self.context_topics], history)
        response = await self._client.chat.completions.create(
            model=self.model, messages=messages, stream=True, max_tokens=self.max_tokens,
            temperature=0.0,
        )
        try:
            async for chunk in response:
                if chunk.choices and chunk.choices[0].delta.content:
                    yield chunk.choices[0].delta.content
        finally:
            await response.close()  # also on cancel: the server stops generating

    async def complete(self, question: str, hits: Sequence[Hit],
                       history: Sequence[tuple[str, str]] = ()) -> str:
        """Wait for the whole answer (for ``broadcaster ask``)."""
        return "".join([d async for d in self.stream(question, hits, history)]).strip()

    async def close(self) -> None:
        """Close the HTTP client."""
        await self._client.close()


def build_llm(settings: Settings) -> GroundedLLM | None:
    """Build the LLM of ``settings``, or None when none is configured (the default)."""
    if not settings.llm_base_url:
        return None
    return GroundedLLM(base_url=settings.llm_base_url, api_key=settings.llm_api_key,
                       model=settings.llm_model, max_tokens=settings.llm_max_tokens,
                       context_topics=settings.llm_context_topics)
