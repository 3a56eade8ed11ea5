"""The presenter in bench/fault_matrix.py: when can they talk to the avatar again?

The presenter joins through the web app with the invite code (bench/e2e.py's
``Presenter`` publishes the microphone) and rejoins with its claim when LiveKit drops it,
as the presenter page does. After a fault it asks a short question again and again until
the bot answers one (its ``reply latency`` log line); the start of that attempt, from
the fault, is "presenter heard again after" (an upper bound: the attempt before it was
not answered).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp

from bench.e2e import Presenter
from bench.faults import join_webinar
from bench.receiver import AUDIO_RATE
from probes.speech import flite

QUESTION = "What is on the agenda today?"
REPLY = r"reply latency .* \| \{"
#: after an attempt, how long to wait for its reply line before asking again
REPLY_WAIT_S = 3.0


class Seat:
    """The presenter's place: joins with the invite code, rejoins when dropped."""

    def __init__(self, web: str, room: str, code: str) -> None:
        self.web, self.room, self.code = web, room, code
        self.claim: str | None = None
        self.mic: Presenter | None = None
        self.rejoins = 0
        self.clip = flite(QUESTION, AUDIO_RATE, voice="slt", trim=True)

    async def join(self, http: aiohttp.ClientSession) -> None:
        data = await join_webinar(http, self.web, self.room, {
            "identity": "bench-presenter", "role": "presenter", "code": self.code}, self.claim)
        self.claim = data.get("claim")
        if self.mic is not None:
            await self.mic.leave()
        self.mic = Presenter()
        await self.mic.join(data["url"], data["token"])

    async def keep(self, http: aiohttp.ClientSession) -> None:
        from livekit import rtc

        while True:
            await asyncio.sleep(0.25)
            if (self.mic is None or self.mic.room is None
                    or self.mic.room.connection_state == rtc.ConnectionState.CONN_DISCONNECTED):
                try:
                    await self.join(http)
                    self.rejoins += 1
                except Exception:  # the server or the web app is still down: again
                    await asyncio.sleep(0.5)

    async def heard_after(self, stack: Any, t0: float, timeout: float) -> float | None:
        """Ask until the bot answers; seconds from ``t0`` to the answered attempt's start."""
        while time.monotonic() < t0 + timeout:
            if self.mic is None:
                await asyncio.sleep(0.2)
                continue
            asked, mic = time.monotonic(), self.mic
            saying = asyncio.ensure_future(mic.say(self.clip))
            # a rejoin replaces the microphone: a question put to the old one never ends
            while not saying.done() and self.mic is mic and time.monotonic() < asked + 8:
                await asyncio.sleep(0.05)
            if not saying.done():
                saying.cancel()
                continue
            try:
                await stack.wait_line(REPLY, REPLY_WAIT_S, since=asked)
            except TimeoutError:
                continue
            return asked - t0
        return None
