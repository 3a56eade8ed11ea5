"""Metrics and frame stamps: the web app's /metrics, the bot's /metrics, the reply-latency
observer, and a real receiver decoding the republisher's frame stamp (LiveKit frame
metadata) through the session's livekit-server."""

from __future__ import annotations

import asyncio
import re
import time

import aiohttp
import numpy as np
import pytest
from livekit import rtc
from pipecat.frames.frames import (
    LLMTextFrame,
    OutputImageRawFrame,
    SpeechOutputAudioRawFrame,
    TranscriptionFrame,
    TTSAudioRawFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.observers.base_observer import FramePushed
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineWorker
from pipecat.processors.frame_processor import FrameDirection
from pipecat.workers.runner import WorkerRunner

from broadcaster.bot.latency import LatencyObserver
from broadcaster.bot.republisher import LiveKitRepublisher, RepublishEncoding
from broadcaster.config import Settings
from broadcaster.frames import I420AvatarFrame
from broadcaster.metrics import STAGES, BotMetrics, bot_metrics_server, metrics_port_file, render
from broadcaster.netutil import free_port
from broadcaster.roles import Role, mint_token
from tests.fixtures_web import WebClient, connect, unique_room, wait_until

pytestmark = pytest.mark.timeout(60)


def sample(text: str, name: str, **labels: str) -> float | None:
    """The value of one series in a Prometheus text exposition (None: absent)."""
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        m = re.match(r"^([a-zA-Z_:][\w:]*)(\{(.*)\})? (\S+)$", line)
        if not m or m.group(1) != name:
            continue
        got = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(3) or ""))
        if all(got.get(k) == v for k, v in labels.items()):
            return float(m.group(4))
    return None


# ------------------------------------------------------------------------ web app
async def test_web_metrics_expose_audience_and_bots(
    web: str, web_client: WebClient, livekit: Settings
) -> None:
    room = unique_room("metrics")
    await web_client.new_webinar("Metrics webinar", room)
    joined = await web_client.join(room, "metrics-viewer")
    assert joined.status == 200, joined.text
    viewer = await connect(joined.data["url"], joined.data["token"])
    try:
        async def counted() -> bool:
            r = await web_client.call("GET", "/metrics")
            return sample(r.text, "broadcaster_viewers", room=room, shard="stage") == 1.0

        assert await wait_until(counted, timeout=10, interval=0.5)
        reply = await web_client.call("GET", "/metrics")
        assert reply.status == 200
        assert reply.headers["Content-Type"].startswith("text/plain")
        text = reply.text
        for name in ("broadcaster_webinars_live", "broadcaster_room_participants",
                     "broadcaster_bot_up", "broadcaster_bot_restarts_recent",
                     "broadcaster_audience_errors_total", "broadcaster_metrics_refresh_seconds"):
            assert f"\n{name}" in text or text.startswith(name), name
        assert sample(text, "broadcaster_webinars_live") >= 1
        assert sample(text, "broadcaster_bot_up", room=room) == 0.0
    finally:
        await viewer.disconnect()


async def test_web_metrics_need_the_host_key_behind_a_proxy(web_client: WebClient) -> None:
    proxied = {"X-Forwarded-For": "203.0.113.9"}
    assert (await web_client.call("GET", "/metrics", headers=proxied)).status == 401
    ok = await web_client.call("GET", "/metrics", headers=proxied, host=True)
    assert ok.status == 200 and "broadcaster_webinars_live" in ok.text


# ------------------------------------------------------------------------ observer
async def test_latency_observer_times_each_stage() -> None:
    metrics = BotMetrics("obs-room")
    obs = LatencyObserver(metrics, stop_secs=0.2)
    obs._wall = lambda ns: ns / 1e9  # type: ignore[method-assign]  # push time = wall time
    clock0 = time.time()
    loud = (np.full(960, 3000, np.int16)).tobytes()
    quiet = bytes(1920)
    vad_stop = VADUserStoppedSpeakingFrame(stop_secs=0.2)
    vad_stop.timestamp = clock0 + 1.0
    script = [  # (seconds after clock0, frame)
        (0.0, VADUserStartedSpeakingFrame()),
        (1.0, vad_stop),
        (1.4, TranscriptionFrame("what is on the agenda", "p", "t")),
        (1.41, LLMTextFrame("Today's agenda has five parts.")),
        (1.55, TTSAudioRawFrame(loud, 24000, 1)),
        (1.70, SpeechOutputAudioRawFrame(quiet, 48000, 1)),  # still silent: not yet
        (1.95, SpeechOutputAudioRawFrame(loud, 48000, 1)),
        (1.97, OutputImageRawFrame(bytes(12), (2, 2), "RGB")),
    ]
    for at, frame in script:
        ns = int((clock0 + at) * 1e9)
        await obs.on_push_frame(FramePushed(source=None, destination=None, frame=frame,  # type: ignore[arg-type]
                                            direction=FrameDirection.DOWNSTREAM, timestamp=ns))
    assert len(obs.turns) == 1
    stages = obs.turns[0].stages()
    assert list(stages) == list(STAGES)
    expect = {"endpointing": 0.2, "transcription": 0.4, "responder": 0.01, "tts": 0.14,
              "avatar": 0.40, "publish": 0.02}
    for name, value in expect.items():
        assert stages[name] == pytest.approx(value, abs=0.003), name
    assert obs.turns[0].total() == pytest.approx(sum(expect.values()), abs=0.005)
    text = render(metrics.registry)[0].decode()
    assert sample(text, "broadcaster_bot_stage_seconds_count", room="obs-room",
                  stage="avatar") == 1.0
    assert sample(text, "broadcaster_bot_reply_seconds_count", room="obs-room") == 1.0
    assert sample(text, "broadcaster_bot_turns_total", room="obs-room", outcome="complete") == 1


# ------------------------------------------------------------------------ stamps + bot metrics
W, H, FPS = 320, 180, 25


async def test_receiver_decodes_frame_stamps_and_bot_metrics_count_frames(
    livekit: Settings, tmp_path
) -> None:
    s = livekit
    room = unique_room("stamp")
    rep = LiveKitRepublisher(
        url=s.effective_livekit_url, token=mint_token(s, Role.BOT, room, s.bot_identity),
        encoding=RepublishEncoding(W, H, FPS, simulcast=False),
    )
    metrics = BotMetrics(room)
    metrics.watch_republisher(rep)
    seen: list[tuple[int, int, int]] = []  # (frame_id, user_timestamp, received wall us)

    viewer = rtc.Room()
    tasks: list[asyncio.Task] = []

    async def read(track: rtc.Track) -> None:
        async for ev in rtc.VideoStream(track):
            if ev.metadata is not None:
                seen.append((ev.metadata.frame_id, ev.metadata.user_timestamp,
                             time.time_ns() // 1000))

    @viewer.on("track_subscribed")
    def _sub(track: rtc.Track, *_: object) -> None:
        if track.kind == rtc.TrackKind.KIND_VIDEO:
            tasks.append(asyncio.create_task(read(track)))

    await viewer.connect(s.effective_livekit_url, mint_token(s, Role.VIEWER, room, "stamp-viewer"))
    worker = PipelineWorker(Pipeline([rep]), idle_timeout_secs=None, enable_rtvi=False)
    runner = WorkerRunner(handle_sigint=False)
    await runner.add_workers(worker)
    run = asyncio.create_task(runner.run())
    port = free_port()
    try:
        async with bot_metrics_server(metrics, "127.0.0.1", port, tmp_path) as bound:
            assert bound == port
            assert metrics_port_file(tmp_path, room).read_text().strip() == str(port)
            yuv = np.full(W * H * 3 // 2, 128, np.uint8)
            t0 = time.monotonic()
            for i in range(FPS * 3):
                yuv[: W * H] = (i * 7) % 200 + 20
                frame = rtc.VideoFrame(W, H, rtc.VideoBufferType.I420, bytearray(yuv.data))
                await worker.queue_frame(I420AvatarFrame.wrap(frame))
                await asyncio.sleep(max(0.0, t0 + (i + 1) / FPS - time.monotonic()))
            assert await wait_until(_async(lambda: len(seen) >= FPS), timeout=10)
            async with aiohttp.ClientSession() as http:
                async with http.get(f"http://127.0.0.1:{port}/metrics") as r:
                    assert r.status == 200
                    text = await r.text()
        assert not metrics_port_file(tmp_path, room).exists()
    finally:
        await worker.cancel()
        await asyncio.wait_for(run, 20)
        for t in tasks:
            t.cancel()
        await viewer.disconnect()

    ids = [fid for fid, _, _ in seen]
    assert all(b >= a for a, b in zip(ids, ids[1:], strict=False)), "frame_id went backwards"
    assert ids[-1] - ids[0] >= FPS  # distinct, increasing stamps, not repeats of one
    ages_ms = [(recv - ts) / 1e3 for _, ts, recv in seen]
    assert all(-5 <= a <= 1000 for a in ages_ms), (min(ages_ms), max(ages_ms))
    assert float(np.median(ages_ms)) < 200

    published = sample(text, "broadcaster_republisher_frames_published_total", room=room)
    assert published is not None and published >= FPS * 2
    assert sample(text, "broadcaster_republisher_frames_in_total", room=room) >= published
    assert sample(text, "broadcaster_republisher_frames_out_total", room=room,
                  kind="real") == published
    assert sample(text, "broadcaster_republisher_frames_dropped_total", room=room) is not None
    assert sample(text, "broadcaster_avatar_session_state", room=room,
                  broadcaster_avatar_session_state="live") == 1.0
    assert sample(text, "broadcaster_republish_hop_seconds_count", room=room) >= 1


def _async(pred):
    async def check() -> bool:
        return pred()
    return check


async def test_bot_metrics_port_taken_falls_back(tmp_path) -> None:
    metrics = BotMetrics("busy")
    async with bot_metrics_server(metrics, "127.0.0.1", 0, tmp_path) as off:
        assert off is None
    port = free_port()
    async with bot_metrics_server(metrics, "127.0.0.1", port, tmp_path) as first, \
            bot_metrics_server(BotMetrics("busy"), "127.0.0.1", port, tmp_path) as second:
        assert first == port and second not in (None, port)


async def test_bot_metrics_refuse_a_dns_rebinding_host(tmp_path) -> None:
    """A page from evil.example resolved to 127.0.0.1 names evil.example in Host."""
    port = free_port()
    async with bot_metrics_server(BotMetrics("rebind"), "127.0.0.1", port, tmp_path), \
            aiohttp.ClientSession() as http:
        url = f"http://127.0.0.1:{port}/metrics"
        async with http.get(url, headers={"Host": f"evil.example:{port}"}) as r:
            assert r.status == 421
            assert "rebind" not in await r.text()
        for host in (f"127.0.0.1:{port}", f"localhost:{port}"):
            async with http.get(url, headers={"Host": host}) as r:
                assert r.status == 200, host
                assert 'room="rebind"' in await r.text()
