"""One recorded session of the whole stack, shared by the end-to-end benches
(speech_latency, join_latency, lipsync).

``broadcaster up`` runs in a child process with the offline defaults (local
livekit-server, local avatar service, web app, the demo room's bot with Whisper,
the FAQ responder and Piper). This process plays the people:

- viewers joining through the web app (``POST /api/webinars/demo/join``) and, as the
  baseline, straight into the avatar's own source room (what a 1:1
  ``HeyGenTransport`` viewer sees): join → first avatar frame;
- a presenter who joins with the presenter code and asks questions with Debian's
  flite voice (continuous silence between them, as a microphone would send);
- one stage viewer and one direct viewer that record, with wall-clock receive
  times, every 10 ms of the avatar's audio (RMS) and every video frame's mouth
  openness (share of dark pixels in the renderer's ``mouth_box``);
- the bot's one-line-per-turn stage breakdown (broadcaster/bot/latency.py) is
  read from ``up``'s output.

The session is recorded once per process (``session(quick)`` caches it), so
``python -m bench`` pays for it once.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np

from bench.figures import RESULTS, progress
from bench.receiver import AUDIO_RATE, CHUNK, Receiver
from bench.servers import Stack, up_stack
from broadcaster.room_connect import connect_room
from probes.speech import flite

QUESTIONS = (
    "Will the recording be available afterwards?",
    "How do I ask a question?",
    "Are captions available?",
    "Why can't I turn on my microphone?",
    "Who are the speakers today?",
    "When does the live demo start?",
    "Can I speak to the avatar myself?",
    "How do I ask a question?",
)
WARMUP_QUESTION = "What is on the agenda today?"
BARGE_IN = "How do I ask a question?"  # said over the agenda answer (barge_in bench)
SILENT_RMS = 50.0    # the avatar's silence arrives as (near) digital zero after Opus
#: onsets are taken where the avatar's own mouth envelope reaches 0.1 (broadcaster.avatar
#: .speech: -48 dBFS closed .. -14 dBFS open), in the audio and in the picture alike
ONSET_RMS = 190.0    # -44.6 dBFS: the loudness that opens the mouth to 0.1
ONSET_MOUTH = 0.004  # share of dark mouth-box pixels at opening 0.1 (0.0055 undistorted)
LOUD_RMS = 600.0     # clearly speaking (used to tell when an answer is over)
ANSWER_CAP_S = 14.0  # stop listening to an answer after this long (next question barges in)
QUIET_END_S = 1.2    # an answer is over after this much silence


@dataclass
class Join:
    kind: str  # "stage" (through the web app) or "direct" (avatar source room)
    t0_us: int
    token_us: int
    connected_us: int
    first_frame_us: int | None
    first_size: tuple[int, int] | None = None

    @property
    def total_ms(self) -> float | None:
        return None if self.first_frame_us is None else (self.first_frame_us - self.t0_us) / 1e3


@dataclass
class AskedTurn:
    question: str
    speech_start_us: int
    speech_end_us: int
    warmup: bool = False
    answer_end_us: int | None = None


@dataclass
class BargeIn:
    """The presenter talked over the avatar's answer, just after a phrase began."""

    answer_onset_us: int
    speech_start_us: int
    speech_end_us: int


@dataclass
class StackRun:
    joins: list[Join]
    turns: list[AskedTurn]
    stage: Receiver
    direct: Receiver
    bot_turns: list[dict[str, Any]]
    mouth_box: tuple[int, int, int, int]
    avatar_room: str
    bot_metrics: dict[str, float] = field(default_factory=dict)
    """The bot's /metrics at the end (republisher gauges and counters)."""
    barge_ins: list[BargeIn] = field(default_factory=list)


# ------------------------------------------------------------------------ helpers
async def _bot_metrics(stack: Stack, http: aiohttp.ClientSession) -> str | None:
    from broadcaster.metrics import metrics_port_file

    path = metrics_port_file(stack.settings.state_dir, stack.settings.demo_room)
    try:
        port = int(path.read_text())
    except (OSError, ValueError):
        return None
    try:
        async with http.get(f"http://127.0.0.1:{port}/metrics") as r:
            return await r.text()
    except aiohttp.ClientError:
        return None


async def wait_bot_live(stack: Stack, http: aiohttp.ClientSession, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    rx = re.compile(r'broadcaster_avatar_session_state\{[^}]*state="live"[^}]*\} 1\.0')
    while time.monotonic() < deadline:
        text = await _bot_metrics(stack, http)
        if text and rx.search(text):
            return
        await asyncio.sleep(0.5)
    raise TimeoutError("the demo bot never showed live avatar video:\n" + stack.tail())


async def find_avatar_room(stack: Stack) -> str:
    from livekit import api

    from broadcaster.protocol import AVATAR_IDENTITY

    s = stack.settings
    lk = api.LiveKitAPI(s.livekit_http_url, s.livekit_api_key, s.livekit_api_secret)
    try:
        rooms = await lk.room.list_rooms(api.ListRoomsRequest())
        for room in rooms.rooms:
            if room.name == s.demo_room:
                continue
            people = await lk.room.list_participants(api.ListParticipantsRequest(room=room.name))
            if any(p.identity == AVATAR_IDENTITY for p in people.participants):
                return room.name
    finally:
        await lk.aclose()
    raise RuntimeError("no avatar source room found")


async def web_join(http: aiohttp.ClientSession, base: str, room: str, identity: str,
                   role: str = "viewer", code: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"identity": identity, "role": role}
    if code:
        body["code"] = code
    async with http.post(f"{base}/api/webinars/{room}/join", json=body) as r:
        data = await r.json()
        if r.status != 200:
            raise RuntimeError(f"join {identity} as {role}: HTTP {r.status} {data}")
        return data


async def _wait(pred: Any, timeout: float, step: float = 0.01) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        await asyncio.sleep(step)
    return bool(pred())


# ------------------------------------------------------------------------ joins
async def measure_joins(stack: Stack, http: aiohttp.ClientSession, base: str, avatar_room: str,
                        n: int, bar: Any) -> list[Join]:
    from broadcaster.protocol import AVATAR_IDENTITY
    from broadcaster.roles import Role, mint_token

    s = stack.settings
    joins: list[Join] = []
    for i in range(n):
        for kind in ("stage", "direct"):
            t0 = time.time_ns() // 1000
            if kind == "stage":
                data = await web_join(http, base, s.demo_room, f"bench-join-{i}")
                url, token, ident = data["url"], data["token"], s.bot_identity
            else:
                url = s.effective_livekit_url
                token = mint_token(s, Role.VIEWER, avatar_room, f"bench-direct-{i}")
                ident = AVATAR_IDENTITY
            t_token = time.time_ns() // 1000
            rx = Receiver(f"join-{kind}-{i}", from_identity=ident, want_audio=False,
                          video_track="avatar-video" if kind == "stage" else None)
            await rx.join(url, token)
            t_conn = time.time_ns() // 1000
            await _wait(lambda rx=rx: rx.first_video_us is not None, 10)
            first = rx.first_video_us
            size = (rx.video[0].width, rx.video[0].height) if rx.video else None
            joins.append(Join(kind, t0, t_token, t_conn, first, size))
            await rx.leave()
            await asyncio.sleep(0.4)
        bar.update(1)
    return joins


# ------------------------------------------------------------------------ presenter
class Presenter:
    """Publishes a microphone track: silence, or a queued clip, in real time."""

    def __init__(self) -> None:
        self.room: Any = None
        self.source: Any = None
        self._clip: np.ndarray | None = None
        self._started: asyncio.Future[int] | None = None
        self._ended: asyncio.Future[int] | None = None
        self._task: asyncio.Task | None = None

    async def join(self, url: str, token: str) -> None:
        from livekit import rtc

        self.room = rtc.Room()
        await connect_room(self.room, url, token, seconds=20)
        self.source = rtc.AudioSource(AUDIO_RATE, 1, queue_size_ms=100)
        track = rtc.LocalAudioTrack.create_audio_track("mic", self.source)
        opts = rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE)
        await asyncio.wait_for(self.room.local_participant.publish_track(track, opts), 10)
        self._task = asyncio.create_task(self._loop())

    async def say(self, pcm: np.ndarray) -> tuple[int, int]:
        """Speak ``pcm`` (int16 at 48 kHz); returns wall µs of its first and last sample
        as they leave the microphone's queue."""
        loop = asyncio.get_running_loop()
        self._started, self._ended = loop.create_future(), loop.create_future()
        self._clip = pcm
        return await self._started, await self._ended

    async def _loop(self) -> None:
        from livekit import rtc

        silence = np.zeros(CHUNK, np.int16)
        pos = 0
        while True:
            clip = self._clip
            if clip is not None:
                block = clip[pos : pos + CHUNK]
                if block.size < CHUNK:
                    block = np.concatenate([block, np.zeros(CHUNK - block.size, np.int16)])
                start = pos == 0
                pos += CHUNK
                last = pos >= clip.size
            else:
                block, start, last = silence, False, False
            out_at = time.time() + self.source.queued_duration  # this block starts leaving
            await self.source.capture_frame(rtc.AudioFrame(block.tobytes(), AUDIO_RATE, 1, CHUNK))
            if start and self._started is not None and not self._started.done():
                self._started.set_result(int(out_at * 1e6))
            if last:
                tail = (clip.size - (pos - CHUNK)) / AUDIO_RATE
                if self._ended is not None and not self._ended.done():
                    self._ended.set_result(int((out_at + tail) * 1e6))
                self._clip, pos = None, 0

    async def leave(self) -> None:
        if self._task is not None:
            self._task.cancel()
        if self.room is not None:
            await self.room.disconnect()


def _answer_over(rx: Receiver, since_us: int) -> bool:
    """The avatar spoke after ``since_us`` and has been quiet for QUIET_END_S since."""
    audio = rx.audio
    if not audio:
        return False
    loud = [a.recv_us for a in audio if a.recv_us >= since_us and a.rms >= LOUD_RMS]
    if not loud:
        return False
    return (audio[-1].recv_us - loud[-1]) / 1e6 >= QUIET_END_S


def _phrase_started(rx: Receiver, now_us: int, pause_us: int = 150_000,
                    voiced_us: int = 50_000, within_us: int = 150_000) -> bool:
    """The avatar is speaking a phrase it began, after a pause, between ``within_us`` and
    ``voiced_us`` ago: a moment to talk over it mid-phrase."""
    recent = [a for a in rx.audio[-200:] if a.recv_us >= now_us - within_us - pause_us]
    if not recent or any(a.rms < ONSET_RMS for a in recent if a.recv_us >= now_us - voiced_us):
        return False
    onset, quiet_since = None, None
    for a in recent:
        if a.rms < ONSET_RMS:
            quiet_since = a.recv_us if quiet_since is None else quiet_since
            continue
        if quiet_since is not None and a.recv_us - quiet_since >= pause_us:
            onset = a.recv_us
        quiet_since = None
    return onset is not None and onset <= now_us - voiced_us


async def barge_in(presenter: Presenter, stage: Receiver) -> BargeIn | None:
    """Ask for the agenda (a long answer), then talk over it as a phrase begins."""
    _, end = await presenter.say(flite(WARMUP_QUESTION, AUDIO_RATE, voice="slt", trim=True))
    if not await _wait(lambda: audio_onset(stage, end) is not None, ANSWER_CAP_S, 0.02):
        return None
    onset = audio_onset(stage, end)
    await asyncio.sleep(2.0)  # into the answer
    if not await _wait(lambda: _phrase_started(stage, time.time_ns() // 1000), 8.0, 0.01):
        return None
    start, stop = await presenter.say(flite(BARGE_IN, AUDIO_RATE, voice="slt", trim=True))
    await _wait(lambda: _answer_over(stage, stop), ANSWER_CAP_S, step=0.1)
    await asyncio.sleep(0.8)
    return BargeIn(onset or 0, start, stop)


# ------------------------------------------------------------------------ the session
def parse_bot_turns(stack: Stack) -> list[dict[str, Any]]:
    out = []
    for line in stack.grep(r"reply latency .* \| \{"):
        try:
            out.append(json.loads("{" + line.split(" | {", 1)[1]))
        except (IndexError, json.JSONDecodeError):
            continue
    return out


async def record(quick: bool) -> StackRun:
    from broadcaster.avatar.renderer import FaceRenderer
    from broadcaster.protocol import AVATAR_IDENTITY
    from broadcaster.roles import Role, mint_token

    n_joins = 5 if quick else 10
    n_turns = 3 if quick else 6
    n_barge = 2 if quick else 5
    box = FaceRenderer(1280, 720, seed=0).mouth_box()
    bar = progress(5 + n_joins + n_turns + n_barge, "e2e session")
    async with up_stack() as stack, aiohttp.ClientSession() as http:
        s = stack.settings
        base = f"http://{s.web_host}:{s.web_port}"
        bar.update(1)
        await wait_bot_live(stack, http, timeout=180)
        avatar_room = await find_avatar_room(stack)
        bar.update(1)
        joins = await measure_joins(stack, http, base, avatar_room, n_joins, bar)

        # long-lived viewers + the presenter
        stage = Receiver("stage", from_identity=s.bot_identity, mouth_box=box, keep_pcm=True)
        direct = Receiver("direct", from_identity=AVATAR_IDENTITY, mouth_box=box)
        v = await web_join(http, base, s.demo_room, "bench-viewer")
        await stage.join(v["url"], v["token"])
        await direct.join(s.effective_livekit_url,
                          mint_token(s, Role.VIEWER, avatar_room, "bench-direct-viewer"))
        headers = {"Authorization": f"Bearer {s.host_key}"}
        async with http.get(f"{base}/api/host/webinars/{s.demo_room}", headers=headers) as r:
            code = (await r.json())["presenter_code"]
        p = await web_join(http, base, s.demo_room, "bench-presenter", "presenter", code)
        presenter = Presenter()
        await presenter.join(p["url"], p["token"])
        await asyncio.sleep(2.0)  # the floor reaches the bot; the stage viewer leaves 320x180
        bar.update(1)

        turns: list[AskedTurn] = []
        plan = [(WARMUP_QUESTION, True)] + [(QUESTIONS[i % len(QUESTIONS)], False)
                                            for i in range(n_turns)]
        try:
            for question, warm in plan:
                clip = flite(question, AUDIO_RATE, voice="slt", trim=True)
                start, end = await presenter.say(clip)
                turn = AskedTurn(question, start, end, warmup=warm)
                turns.append(turn)
                await _wait(lambda t=turn: _answer_over(stage, t.speech_end_us), ANSWER_CAP_S,
                            step=0.1)
                turn.answer_end_us = time.time_ns() // 1000
                await asyncio.sleep(0.8)
                bar.update(1)
            barges = []
            for _ in range(n_barge):
                if (b := await barge_in(presenter, stage)) is not None:
                    barges.append(b)
                bar.update(1)
        finally:
            await presenter.leave()
            await asyncio.sleep(0.5)
            await stage.leave()
            await direct.leave()
        await asyncio.sleep(1.0)  # let the last turn's log line arrive
        bot_turns = parse_bot_turns(stack)
        metrics = parse_metrics(await _bot_metrics(stack, http) or "")
        bar.update(1)
        bar.close()
        return StackRun(joins, turns, stage, direct, bot_turns, box, avatar_room, metrics,
                        barges)


def parse_metrics(text: str) -> dict[str, float]:
    """``name{labels}`` -> value for the republisher's series of a /metrics text."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("broadcaster_republisher_") or line.startswith("broadcaster_avatar"):
            key, _, value = line.rpartition(" ")
            try:
                out[re.sub(r'room="[^"]*",?', "", key).replace("{}", "")] = float(value)
            except ValueError:
                continue
    return out


_CACHE: dict[bool, StackRun] = {}
#: the last recorded session; ``python bench/lipsync.py --raw <this>`` re-analyses it
RAW = RESULTS / "logs" / "e2e_session.json"
PCM = RESULTS / "logs" / "e2e_stage_pcm.npz"


def session(quick: bool = False) -> StackRun:
    """The recorded session (recorded at most once per process and mode)."""
    if quick not in _CACHE:
        _CACHE[quick] = asyncio.run(record(quick))
        RAW.parent.mkdir(parents=True, exist_ok=True)
        save_raw(_CACHE[quick], RAW)
        stage = _CACHE[quick].stage
        if stage.pcm:  # the stage viewer's audio itself (caption_sync transcribes it)
            np.savez(PCM, pcm=np.concatenate(stage.pcm),
                     lengths=np.array([p.size for p in stage.pcm]))
    return _CACHE[quick]


# ------------------------------------------------------------------------ onsets
def audio_onset(rx: Receiver, after_us: int, until_us: int | None = None) -> int | None:
    """First loud 10 ms block after a quiet one, both after ``after_us``."""
    quiet_seen = False
    for a in rx.audio:
        if a.recv_us < after_us:
            continue
        if until_us is not None and a.recv_us > until_us:
            return None
        if a.rms <= SILENT_RMS:
            quiet_seen = True
        elif quiet_seen and a.rms >= ONSET_RMS:
            return a.recv_us
    return None


def mouth_onset(rx: Receiver, after_us: int, until_us: int | None = None,
                threshold: float = ONSET_MOUTH) -> int | None:
    """First frame with an open mouth after a closed one, both after ``after_us``."""
    closed_seen = False
    for f in rx.video:
        if f.recv_us < after_us or np.isnan(f.mouth):
            continue
        if until_us is not None and f.recv_us > until_us:
            return None
        if f.mouth < threshold / 3:
            closed_seen = True
        elif closed_seen and f.mouth >= threshold:
            return f.recv_us
    return None


def match_bot_turn(run: StackRun, turn: AskedTurn) -> dict[str, Any] | None:
    """The bot's record whose VAD stop follows this turn's speech end."""
    best = None
    for rec in run.bot_turns:
        vad = rec["moments"]["vad_stop"] * 1e6
        if turn.speech_end_us - 100_000 <= vad <= turn.speech_end_us + 3_000_000:
            if best is None or vad < best["moments"]["vad_stop"] * 1e6:
                best = rec
    return best


def save_raw(run: StackRun, path: Path) -> None:
    """Dump the recorded series (for re-analysis without a re-run)."""
    def recs(rx: Receiver) -> dict[str, Any]:
        return {"video": [(f.recv_us, f.mouth, f.width, f.height) for f in rx.video],
                "audio": [(a.recv_us, a.rms) for a in rx.audio],
                "captions": [c.__dict__ for c in rx.captions]}
    path.write_text(json.dumps({
        "joins": [j.__dict__ for j in run.joins], "turns": [t.__dict__ for t in run.turns],
        "bot_turns": run.bot_turns, "stage": recs(run.stage), "direct": recs(run.direct),
        "mouth_box": run.mouth_box, "avatar_room": run.avatar_room,
        "bot_metrics": run.bot_metrics, "barge_ins": [b.__dict__ for b in run.barge_ins],
    }))


def load_raw(path: Path) -> StackRun:
    """A session dumped by :func:`save_raw` (re-analyse without re-running)."""
    from bench.receiver import AudioRecord, CaptionRecord, VideoRecord

    d = json.loads(path.read_text())

    def rx(name: str, data: dict[str, Any]) -> Receiver:
        r = Receiver(name)
        r.video = [VideoRecord(int(t), 0, 0, int(w), int(h), float(m))
                   for t, m, w, h in data["video"]]
        r.audio = [AudioRecord(int(t), float(v)) for t, v in data["audio"]]
        r.captions = [CaptionRecord(**c) for c in data.get("captions", [])]
        return r

    stage = rx("stage", d["stage"])
    pcm_file = path.with_name(PCM.name)
    if pcm_file.exists():
        saved = np.load(pcm_file)
        stage.pcm = np.split(saved["pcm"], np.cumsum(saved["lengths"])[:-1])
    joins = [Join(**{**j, "first_size": tuple(j["first_size"]) if j["first_size"] else None})
             for j in d["joins"]]
    return StackRun(joins, [AskedTurn(**t) for t in d["turns"]], stage,
                    rx("direct", d["direct"]), d["bot_turns"], tuple(d["mouth_box"]),
                    d["avatar_room"], d.get("bot_metrics", {}),
                    [BargeIn(**b) for b in d.get("barge_ins", [])])


def main(run: Any, doc: str, keys: tuple[str, ...]) -> None:
    """Command line of a bench built on the recorded session: ``[--quick] [--raw FILE]``.

    ``--raw`` re-analyses a session dumped by :func:`save_raw` instead of recording one.
    """
    import argparse

    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--raw", type=Path, help="re-analyse a session dumped by e2e.save_raw")
    a = ap.parse_args()
    if a.raw:
        _CACHE[a.quick] = load_raw(a.raw)
    result = run(a.quick)
    print({k: result[k] for k in keys})
