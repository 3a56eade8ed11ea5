"""Encode once, publish into several rooms: the CPU of each extra audience shard room.

A child process (``python -m bench.encode_once child``) publishes the avatar renderer's
talking 720p25 pictures into K rooms of one livekit-server, in one of three ways:

- ``reencode``: one ``rtc.VideoSource`` per room, so the SDK encodes every room's copy
  (what publishing the same frames into K rooms costs today);
- ``once``: PyAV's libvpx encodes each picture once (VP8, realtime); the same access
  unit goes into every room through ``rtc.EncodedVideoSource`` (livekit >= 1.2,
  ``video_encoder=ENCODER_BACKEND_PRE_ENCODED``, no simulcast); keyframe requests from
  any room force the next frame to be a keyframe;
- ``once_layers``: as ``once`` but 1280x720, 640x360 and 320x180 are each encoded once
  and published as three tracks per room (layers for weak links without SDK
  simulcast: a viewer subscribes to the track its link carries).

- ``svc_relay``: the stage's VP9 SVC L3T1 stream (``bench.plain_publisher``, the bot's
  ``video_svc`` encoding, into a stage room) copied into each of the K rooms by one
  ``relay/svcrelay`` process per room (no encode per room; the shard SFU picks layers
  per viewer: tests/test_shard_weak_link.py). Its cores are the stage publisher's plus
  the relays', so its slope is what each extra shard adds.

A Go viewer (bench/loadviewers) in the first room checks what arrives; the child's CPU
is read from /proc over the viewer's window. Cost per extra room = slope over K.

Run: ``.venv/bin/python -m bench encode_once`` (``--quick``: fewer K).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import procstat  # noqa: E402
from bench.figures import RESULTS, machine, now_iso, pyplot, write_result  # noqa: E402
from bench.loadtool import LoadViewers  # noqa: E402
from bench.ports import recent_server_logs, with_fresh_ports  # noqa: E402
from bench.provenance import provenance  # noqa: E402
from bench.servers import fresh_settings, livekit_server, stop_process  # noqa: E402

FPS = 25
SIZES = {"once": ((1280, 720),), "once_layers": ((1280, 720), (640, 360), (320, 180)),
         "reencode": ((1280, 720),), "svc_relay": ((1280, 720),)}
BITRATES = {720: 1_700_000, 360: 500_000, 180: 150_000}
KS, QUICK_KS = (1, 2, 4, 8), (1, 4)
WARMUP_S, WINDOW_S = 6.0, 10.0


# ------------------------------------------------------------------------ child
def _encoder(w: int, h: int) -> Any:
    import av

    enc = av.CodecContext.create("libvpx", "w")
    enc.width, enc.height, enc.pix_fmt = w, h, "yuv420p"
    enc.time_base, enc.framerate = Fraction(1, FPS), Fraction(FPS, 1)
    enc.bit_rate = BITRATES[h]
    enc.gop_size = 10 * FPS
    enc.options = {"deadline": "realtime", "cpu-used": "8", "lag-in-frames": "0",
                   "error-resilient": "1", "threads": "1"}
    return enc


async def child(url: str, tokens: list[str], mode: str, seconds: float) -> None:
    import av
    from livekit import rtc

    from bench.plain_publisher import render_pool
    from broadcaster.bot.republisher import tune_malloc

    tune_malloc()
    pool = render_pool(1280, 720, FPS, "speaking")
    sizes = SIZES[mode]
    rooms: list[rtc.Room] = []
    sources: list[list[Any]] = []  # per room, per size
    for token in tokens:
        room = rtc.Room()
        await room.connect(url, token)
        rooms.append(room)
        per: list[Any] = []
        for w, h in sizes:
            if mode == "reencode":
                src: Any = rtc.VideoSource(w, h)
                opts = rtc.TrackPublishOptions(
                    source=rtc.TrackSource.SOURCE_CAMERA, video_codec=rtc.VideoCodec.VP8,
                    video_encoding=rtc.VideoEncoding(max_bitrate=BITRATES[h],
                                                     max_framerate=FPS), simulcast=False)
            else:
                src = rtc.EncodedVideoSource(w, h)
                opts = rtc.TrackPublishOptions(
                    source=rtc.TrackSource.SOURCE_CAMERA, video_codec=rtc.VideoCodec.VP8,
                    video_encoding=rtc.VideoEncoding(max_bitrate=BITRATES[h],
                                                     max_framerate=FPS),
                    video_encoder=rtc.VideoEncoderBackend.ENCODER_BACKEND_PRE_ENCODED,
                    simulcast=False)
            track = rtc.LocalVideoTrack.create_video_track(f"video-{h}p", src)
            await room.local_participant.publish_track(track, opts)
            per.append(src)
        sources.append(per)
    encoders = [_encoder(w, h) for w, h in sizes] if mode != "reencode" else []
    pics: list[list[Any]] = []
    if encoders:
        for buf in pool:
            f = av.VideoFrame.from_ndarray(
                np.frombuffer(buf, np.uint8).reshape(720 * 3 // 2, 1280), format="yuv420p")
            pics.append([f if (w, h) == (1280, 720) else f.reformat(w, h) for w, h in sizes])
    print(f"publishing {mode} into {len(rooms)} rooms", flush=True)
    t0 = time.monotonic()
    i = 0
    want_key = [True] * len(sizes)
    keyframes = 0
    while time.monotonic() - t0 < seconds:
        ts = int(i * 1e6 / FPS)
        if mode == "reencode":
            frame = rtc.VideoFrame(1280, 720, rtc.VideoBufferType.I420, pool[i % len(pool)])
            for per in sources:
                per[0].capture_frame(frame, timestamp_us=ts)
        else:
            for j, enc in enumerate(encoders):
                pic = pics[i % len(pics)][j]
                pic.pts = i
                pic.pict_type = av.video.frame.PictureType.I if want_key[j] else \
                    av.video.frame.PictureType.NONE
                want_key[j] = False
                for pkt in enc.encode(pic):
                    data = bytes(pkt)
                    ftype = rtc.EncodedFrameType.ENCODED_FRAME_KEY if pkt.is_keyframe \
                        else rtc.EncodedFrameType.ENCODED_FRAME_DELTA
                    keyframes += pkt.is_keyframe
                    w, h = sizes[j]
                    ef = rtc.EncodedVideoFrame(data, w, h, rtc.VideoCodec.VP8, ftype, ts)
                    for per in sources:
                        per[j].capture_frame(ef)
            if i % 5 == 0:  # keyframe requests (new subscribers, loss) from any room
                for per in sources:
                    for j, src in enumerate(per):
                        if src.take_feedback().keyframe_requested:
                            want_key[j] = True
        i += 1
        await asyncio.sleep(max(0.0, t0 + i / FPS - time.monotonic()))
    print(f"sent {i} frames, {keyframes} keyframes", flush=True)
    for room in rooms:
        await room.disconnect()


# ------------------------------------------------------------------------ driver
async def _relays(k: int, rooms: list[str], s: Any, state: Path, tag: str
                  ) -> tuple[asyncio.subprocess.Process, list[asyncio.subprocess.Process]]:
    """The stage publisher (VP9 L3T1) and one svcrelay per room, all started."""
    from broadcaster.bot.shard_relay import relay_binary
    from broadcaster.roles import Role, mint_token

    binary = relay_binary(s)
    if binary is None:
        raise RuntimeError("svcrelay is not built: bash relay/svcrelay/build.sh")
    url, stage = s.effective_livekit_url, f"stage-{tag}"
    log = open(state / f"stage-{tag}.log", "wb")  # noqa: SIM115 - the child owns it
    pub = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.plain_publisher", "--url", url, "--token",
        mint_token(s, Role.BOT, stage, "stage"), "--state", "speaking", "--codec", "VP9",
        "--scalability-mode", "L3T1", "--seconds", str(WARMUP_S + WINDOW_S + 20 + 2 * k),
        cwd=str(ROOT), stdout=log, stderr=log, env={**os.environ, **s.child_env()})
    await asyncio.sleep(2.0)
    relays = []
    for j, room in enumerate(rooms):  # one identity per relay in the stage room
        rlog = open(state / f"relay-{room}.log", "wb")  # noqa: SIM115 - the child owns it
        relays.append(await asyncio.create_subprocess_exec(
            binary, "-url", url, "-src-token", mint_token(s, Role.BOT, stage, f"relay-{j}"),
            "-dst-token", mint_token(s, Role.BOT, room, "pub"), "-from", "stage",
            stdout=rlog, stderr=rlog))
    return pub, relays


async def one(mode: str, k: int, s: Any, state: Path) -> dict[str, Any]:
    if mode == "svc_relay":
        return await one_relayed(k, s, state)
    from broadcaster.roles import Role, mint_token

    tag = f"{mode.replace('_', '-')}-{k}-{time.monotonic_ns() % 10**6}"
    rooms = [f"shard-{tag}-{j}" for j in range(k)]
    log = open(state / f"child-{tag}.log", "wb")  # noqa: SIM115 - closed below
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.encode_once", "child", "--url", s.effective_livekit_url,
        "--mode", mode, "--seconds", str(WARMUP_S + WINDOW_S + 15),
        *[a for r in rooms for a in ("--token", mint_token(s, Role.BOT, r, "pub"))],
        cwd=str(ROOT), stdout=log, stderr=log, env={**os.environ, **s.child_env()})
    marks: dict[str, Any] = {}

    def on_event(ev: dict[str, Any]) -> None:
        if ev["type"] == "window_start":
            marks["a"] = procstat.read({"p": proc.pid})
        elif ev["type"] == "step":
            marks["cores"] = procstat.cores(marks["a"], procstat.read({"p": proc.pid}))["p"]
            marks["viewer"] = ev["per_viewer"][0]

    lv = LoadViewers(["-livekit-url", s.effective_livekit_url, "-n", "1",
                      "-token", mint_token(s, Role.VIEWER, rooms[0], "viewer"),
                      "-settle", f"{WARMUP_S}s", "-hold", f"{WINDOW_S}s", "-from", "pub"],
                     on_event, log=state / f"viewer-{tag}.log")
    try:
        await asyncio.sleep(2.0 + 0.3 * k)
        await lv.run(timeout=120)
    finally:
        await stop_process(proc)
        log.close()
    video = (marks.get("viewer") or {}).get("video") or {}
    return {"k": k, "cores": marks.get("cores"), "viewer_fps": video.get("fps"),
            "viewer_loss": video.get("loss"), "viewer_kbps": video.get("kbps"),
            "viewer_height": video.get("height")}


async def one_relayed(k: int, s: Any, state: Path) -> dict[str, Any]:
    """``svc_relay`` with K rooms: stage publisher + K relays, a Go viewer in room 0."""
    from broadcaster.roles import Role, mint_token

    tag = f"relay-{k}-{time.monotonic_ns() % 10**6}"
    rooms = [f"shard-{tag}-{j}" for j in range(k)]
    pub, relays = await _relays(k, rooms, s, state, tag)
    parts = {"pub": pub.pid, **{f"r{j}": p.pid for j, p in enumerate(relays)}}
    marks: dict[str, Any] = {}

    def on_event(ev: dict[str, Any]) -> None:
        if ev["type"] == "window_start":
            marks["a"] = procstat.read(parts)
        elif ev["type"] == "step":
            c = procstat.cores(marks["a"], procstat.read(parts))
            marks["pub"] = c.get("pub")
            marks["relays"] = [c.get(f"r{j}") for j in range(k)]
            marks["viewer"] = ev["per_viewer"][0]

    lv = LoadViewers(["-livekit-url", s.effective_livekit_url, "-n", "1",
                      "-token", mint_token(s, Role.VIEWER, rooms[0], "viewer"),
                      "-settle", f"{WARMUP_S}s", "-hold", f"{WINDOW_S}s", "-from", "pub"],
                     on_event, log=state / f"viewer-{tag}.log")
    try:
        await asyncio.sleep(2.0 + 0.3 * k)
        await lv.run(timeout=120)
    finally:
        for p in (*relays, pub):
            await stop_process(p)
    video = (marks.get("viewer") or {}).get("video") or {}
    rel = [c for c in marks.get("relays") or [] if c is not None]
    pub_c = marks.get("pub")
    cores = None if pub_c is None or len(rel) != k else round(pub_c + sum(rel), 4)
    return {"k": k, "cores": cores, "publisher_cores": pub_c,
            "relay_cores": [round(c, 4) for c in rel],
            "viewer_fps": video.get("fps"), "viewer_loss": video.get("loss"),
            "viewer_kbps": video.get("kbps"), "viewer_height": video.get("height")}


async def session(quick: bool) -> dict[str, Any]:
    ks = QUICK_KS if quick else KS
    out: dict[str, list[dict[str, Any]]] = {m: [] for m in SIZES}
    async with livekit_server(fresh_settings()) as s:
        for k in ks:
            for mode in SIZES:
                if mode == "reencode" and k > 2:
                    continue  # one 720p encode per room: linear, and the box has 2 cores
                r = await one(mode, k, s, Path(s.state_dir))
                print(mode, r, flush=True)
                out[mode].append(r)
    return out


def _slope(rows: list[dict[str, Any]]) -> float | None:
    pts = [(r["k"], r["cores"]) for r in rows if r["cores"] is not None]
    if len(pts) < 2:
        return None
    return float(np.polyfit([p[0] for p in pts], [p[1] for p in pts], 1)[0])


def run(quick: bool = False) -> dict[str, Any]:
    modes = asyncio.run(with_fresh_ports(lambda: session(quick), logs=recent_server_logs))
    result = {
        "bench": "encode_once",
        "what": "720p25 avatar pictures published into K rooms: encoded per room vs once "
                "(PyAV libvpx + rtc.EncodedVideoSource), three layers once, and the stage's "
                "VP9 SVC relayed per room (svcrelay; cores = stage SVC encode + relays)",
        "when": now_iso(), "quick": quick,
        "modes": {m: {"runs": rows, "cores_per_extra_room": None if (sl := _slope(rows)) is None
                      else round(sl, 4)} for m, rows in modes.items()},
        "machine": machine(), **provenance(),
    }
    write_result("encode_once", result)
    plot(result)
    return result


def plot(result: dict[str, Any]) -> None:
    plt = pyplot()
    if plt is None:
        return
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for mode, color in (("reencode", "tab:red"), ("once", "tab:blue"),
                        ("once_layers", "tab:green"), ("svc_relay", "tab:purple")):
        if mode not in result["modes"]:
            continue
        rows = result["modes"][mode]["runs"]
        sl = result["modes"][mode]["cores_per_extra_room"]
        ax.plot([r["k"] for r in rows], [r["cores"] for r in rows], "o-", color=color,
                label=f"{mode}: {sl:+.3f} core per extra room" if sl is not None else mode)
    ax.set(xlabel="rooms (audience shards) fed", ylabel="publisher process cores",
           title="Same 720p25 video into K rooms")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(RESULTS / "encode_once.png", dpi=110)
    plt.close(fig)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "child":
        ap = argparse.ArgumentParser(prog="python -m bench.encode_once child")
        ap.add_argument("child")
        ap.add_argument("--url", required=True)
        ap.add_argument("--token", action="append", required=True)
        ap.add_argument("--mode", choices=tuple(SIZES), required=True)
        ap.add_argument("--seconds", type=float, default=30)
        a = ap.parse_args()
        asyncio.run(child(a.url, a.token, a.mode, a.seconds))
    else:
        run(quick="--quick" in sys.argv)


if __name__ == "__main__":
    main()
