"""A viewer on libwebrtc (the ``livekit`` Python SDK) that records what it decodes.

``python -m bench.frame_recorder --url URL --token T --seconds 25 --out file.json``
joins, subscribes to the first video track (of ``--from`` if given) and records every
decoded frame: receive time, the publisher's frame number (LiveKit frame metadata: a
repeated frame is not counted twice) and its size. The JSON it writes summarises a
window (``--settle`` seconds after the first frame, to the end): fps of distinct
frames, the sizes received and when the size changed (the simulcast layer the SFU
picked), the longest gap.

Why libwebrtc here and not the Go load viewers: with livekit-server's default
congestion control the SFU sizes each viewer's stream from the viewer's REMB
(receive-side estimate), which libwebrtc sends, as browsers do; pion (server-sdk-go)
does not send REMB, so a Go viewer is never moved to a lower layer. Runs inside a
network namespace (``ip netns exec``) for the weak-link bench and test.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from broadcaster.room_connect import connect_room


async def record(url: str, token: str, seconds: float, publisher: str | None
                 ) -> dict[str, Any]:
    from livekit import rtc

    room = rtc.Room()
    frames: list[tuple[float, int, int, int]] = []
    t_join = time.monotonic()
    done = asyncio.Event()

    async def read(stream: rtc.VideoStream) -> None:
        async for ev in stream:
            md = ev.metadata
            frames.append((time.monotonic(), md.frame_id if md is not None else -1,
                           ev.frame.width, ev.frame.height))

    tasks: list[asyncio.Task[None]] = []

    @room.on("track_subscribed")
    def _on_track(track: Any, pub: Any, part: Any) -> None:
        if track.kind != rtc.TrackKind.KIND_VIDEO or tasks:
            return
        if publisher and part.identity != publisher:
            return
        tasks.append(asyncio.create_task(read(rtc.VideoStream(track))))

    room.on("disconnected", lambda *_: done.set())
    await connect_room(room, url, token, seconds=30)
    connected = time.monotonic()
    try:
        await asyncio.wait_for(done.wait(), seconds)
    except TimeoutError:
        pass
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await room.disconnect()
    return {"join_s": t_join, "connected_s": connected, "end_s": time.monotonic(),
            "frames": frames}


def summarize(rec: dict[str, Any], settle: float) -> dict[str, Any]:
    """fps of distinct frames, sizes and layer changes over the window after ``settle``."""
    frames = rec["frames"]
    out: dict[str, Any] = {"frames_total": len(frames)}
    if not frames:
        return {**out, "fps": 0.0, "error": "no video frames"}
    t_first = frames[0][0]
    out["first_frame_ms"] = round((t_first - rec["join_s"]) * 1000, 1)
    start, end = t_first + settle, rec["end_s"]
    win = [f for f in frames if f[0] >= start]
    secs = max(end - start, 1e-6)
    # distinct frames by their number; a stream without frame metadata (the encode-once
    # shard path's pre-encoded frames) counts every decoded frame
    ids = {f[1] if f[1] >= 0 else -1 - i for i, f in enumerate(win)}
    out["window_s"] = round(secs, 2)
    out["fps"] = round(len(ids) / secs, 2)
    sizes = Counter(f"{w}x{h}" for _, _, w, h in win)
    out["sizes"] = dict(sizes.most_common())
    main = sizes.most_common(1)[0][0] if sizes else None
    out["size"] = main
    out["height"] = int(main.split("x")[1]) if main else None
    changes, last = [], None
    for t, _, w, h in frames:
        if (w, h) != last:
            changes.append({"t": round(t - t_first, 2), "width": w, "height": h})
            last = (w, h)
    out["size_changes"] = changes
    times = [f[0] for f in win]
    out["max_gap_ms"] = round(max((b - a for a, b in zip(times, times[1:], strict=False)),
                                  default=0.0) * 1000, 1)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(prog="python -m bench.frame_recorder", description=__doc__)
    ap.add_argument("--url", required=True)
    ap.add_argument("--token", required=True)
    ap.add_argument("--seconds", type=float, default=25)
    ap.add_argument("--settle", type=float, default=10)
    ap.add_argument("--from", dest="publisher")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    rec = asyncio.run(record(a.url, a.token, a.seconds, a.publisher))
    Path(a.out).write_text(json.dumps(summarize(rec, a.settle)))


if __name__ == "__main__":
    sys.exit(main())
