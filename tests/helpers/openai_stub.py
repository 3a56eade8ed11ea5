"""A stand-in for an OpenAI-compatible chat endpoint (a MOCK: no LLM can run here).

It speaks the wire protocol pipecat's ``OpenAILLMService`` uses (``POST
/v1/chat/completions`` with ``stream: true``, server-sent ``chat.completion.chunk``
events, ``data: [DONE]``), records each request, and streams a fixed reply a few
words per chunk, the way a real server streams tokens. What it checks is our
wiring (settings → service → pipeline → TTS), not any model's answers.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from aiohttp import web


class OpenAIStub:
    def __init__(self, reply: str) -> None:
        self.reply = reply
        self.requests: list[dict[str, Any]] = []
        self.keys: list[str] = []

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.requests.append(body)
        self.keys.append(request.headers.get("Authorization", ""))
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)

        async def send(delta: dict[str, Any], finish: str | None = None) -> None:
            chunk = {"id": "chatcmpl-stub", "object": "chat.completion.chunk", "created": 0,
                     "model": body.get("model", "stub"),
                     "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
            await resp.write(f"data: {json.dumps(chunk)}\n\n".encode())

        await send({"role": "assistant", "content": ""})
        for piece in re.findall(r"\S+\s*", self.reply):
            await send({"content": piece})
            await asyncio.sleep(0.005)
        await send({}, "stop")
        await resp.write(b"data: [DONE]\n\n")
        await resp.write_eof()
        return resp

    @asynccontextmanager
    async def serve(self) -> AsyncIterator[str]:
        """Run on a free loopback port; yields the base URL (``http://127.0.0.1:P/v1``)."""
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        try:
            yield f"http://127.0.0.1:{port}/v1"
        finally:
            await runner.cleanup()
