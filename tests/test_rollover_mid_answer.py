"""A session rolled over in the middle of an answer: every word heard once, no change of look.

LiveAvatar sessions end by design (the sandbox minute, ``max_session_duration``); the
bot's keeper replaces each one ahead, and with sessions shorter than, or not much longer
than, an answer the switch often comes while the avatar speaks. pipecat sends the first
~3 s of an utterance at once, so the old session holds up to ~4 s of the answer that it
has not said yet: a switch must not lose it (or say it twice), and the new session must
be speaking too when it is switched to, or the picture changes from the speaking look to
the idle one.

Real parts: the session's livekit-server and local avatar service, the bot's
``FastHeyGenVideoService`` (pipecat's unmodified LiveAvatar client) in a pipecat
pipeline, the bot's ``AvatarKeeper`` with a short session lifetime so its rollover falls
mid-answer. The answer is 20 "words", each a 0.3-s tone of its own pitch, in sentences;
what the pipeline passes downstream (what the republisher publishes) is decoded back
into words: each must be heard once, in order. The service's own listing tells each
session's look (idle / speaking) around the switch.
"""

from __future__ import annotations

import asyncio
import time

import aiohttp
import numpy as np
from loguru import logger
from pipecat.frames.frames import (
    Frame,
    OutputTransportReadyFrame,
    SpeechOutputAudioRawFrame,
    TTSAudioRawFrame,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

from broadcaster.bot.avatar_keeper import AvatarKeeper
from broadcaster.bot.picture_match import SAME_PICTURE, grids_apart, luma_sample
from broadcaster.config import Settings
from broadcaster.frames import I420AvatarFrame
from probes.tone_words import WORD_S, decode_words, tone_answer, word_spans
from tests.helpers.avatar_pipeline import avatar_pipeline, session_id, states

RATE = 24_000
WORDS, PER_SENTENCE = 20, 4
#: the keeper's session lifetime and lead: the next session opens ~4 s after the first,
#: the switch comes by 9 s at the latest, while the ~10-s answer (started at ~1 s) plays
LIFETIME, LEAD = 10.0, 6.0


class Heard(FrameProcessor):
    """What leaves the avatar service: its speech (as published) and its frames."""

    def __init__(self) -> None:
        super().__init__()
        self.audio: list[np.ndarray] = []
        self.rate = 48_000
        self.frames: list[tuple[float, int, np.ndarray]] = []  # (time, session, luma grid)
        self.samples_at: list[int] = []  # audio samples passed before each frame
        self.loud_at = 0.0

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, SpeechOutputAudioRawFrame):
            pcm = np.frombuffer(frame.audio, np.int16)
            self.rate = frame.sample_rate
            self.audio.append(pcm)
            if pcm.size and float(np.abs(pcm).max()) > 1000:
                self.loud_at = time.monotonic()
        elif isinstance(frame, I420AvatarFrame):
            self.frames.append((time.monotonic(), frame.source, luma_sample(frame.video_frame)))
            self.samples_at.append(sum(a.size for a in self.audio))
        await self.push_frame(frame, direction)

    def speaking(self) -> bool:
        return time.monotonic() - self.loud_at < 0.35


async def test_a_rollover_mid_answer_loses_no_word_and_keeps_the_look(
        avatar_service: str, avatar_settings: Settings) -> None:
    s = avatar_settings
    heard = Heard()
    answer = tone_answer(WORDS, PER_SENTENCE, RATE)
    async with aiohttp.ClientSession() as http, avatar_pipeline(
            http, avatar_service, s, heard) as (avatar, worker):
        keeper = AvatarKeeper(avatar, frames=lambda: len(heard.frames),
                              session_lifetime=LIFETIME, rollover_lead=LEAD,
                              speaking=heard.speaking)
        keeping = asyncio.create_task(keeper.run())
        looks: list[tuple[float, str | None, dict[str, str]]] = []  # (t, current, states)
        try:
            await worker.queue_frame(OutputTransportReadyFrame())
            deadline = time.monotonic() + 25
            while not heard.frames:
                assert time.monotonic() < deadline, "no avatar frame"
                await asyncio.sleep(0.05)
            first = avatar.client
            # the answer, all at once (as the phrase cache hands it over), in 20-ms frames
            step = RATE * 2 // 50
            for i in range(0, len(answer), step):
                await worker.queue_frame(TTSAudioRawFrame(answer[i:i + step], RATE, 1))
            t_end = time.monotonic() + len(answer) / (RATE * 2) + 4.0
            while time.monotonic() < t_end:
                current = avatar.client
                looks.append((time.monotonic(), current and session_id(current),
                              await states(http, avatar_service, s)))
                await asyncio.sleep(0.05)
        finally:
            keeping.cancel()
            await asyncio.gather(keeping, return_exceptions=True)

    assert keeper.rollovers >= 1 and avatar.client is not first, "the session was rolled over"
    pcm = np.concatenate(heard.audio)
    words = decode_words(pcm, heard.rate, WORDS)
    # the switch: the first frame of another session than the first one
    sources = [src for _, src, _ in heard.frames]
    at = next(i for i, src in enumerate(sources) if src != sources[0])
    t_switch = heard.frames[at][0]
    said = decode_words(pcm[:heard.samples_at[at]], heard.rate, WORDS)
    logger.info(f"rollover mid-answer: words heard {words}; {len(said)} before the switch; "
                f"their lengths {[s for _, s in word_spans(pcm, heard.rate, WORDS)]}")
    # it came mid-answer: some words were heard before it, some after
    assert 0 < len(said) < WORDS - 1, f"the switch was not mid-answer: {said} before it"
    # every word of the answer heard once, in order: none lost with the old session's
    # buffered speech, none said twice by both sessions
    assert words == list(range(WORDS)), (
        f"the viewer heard {words}, not the answer's {WORDS} words once each")
    heard_s = float((np.abs(pcm.astype(np.int32)) > 1000).sum()) / heard.rate
    assert abs(heard_s - WORDS * WORD_S) < 0.5, f"{heard_s:.2f} s of speech heard"
    # the look: just before the switch the old session and the new one showed the same
    # state (both speaking, or both idle)
    before = [(cur, st) for t, cur, st in looks if t <= t_switch and len(st) >= 2]
    assert before, "the service listed both sessions before the switch"
    cur, st = before[-1]
    other = [state for sid, state in st.items() if sid != cur]
    logger.info(f"looks before the switch: current {st.get(cur)}, next {other}")
    assert other and other[0] == st.get(cur), (
        f"at the switch the current session was {st.get(cur)}, the next one {other}")
    # and no jump: the switch's first frame moves the picture no more than the answer's
    # own frames do (the mouth) plus the encoders' noise
    changes = [grids_apart(a[2], b[2]) or 0.0 for a, b in zip(heard.frames, heard.frames[1:],
                                                                strict=False)]
    jump = changes[at - 1]
    normal = float(np.percentile(changes[:at - 1] + changes[at:], 99))
    logger.info(f"switch frame change {jump:.2f} against the answer's p99 {normal:.2f}")
    assert jump <= normal + SAME_PICTURE, f"the picture jumped by {jump:.2f} at the switch"
