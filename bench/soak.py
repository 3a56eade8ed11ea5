"""Soak: the whole stack for ``--minutes`` (default 30) under 50 viewers and a question a minute.

``broadcaster up`` runs as a newcomer runs it (supervisor, livekit-server, the local
avatar service, web app, the demo room's bot). For the whole run:

- 50 receive-only Go viewers (bench/loadviewers, server-sdk-go) join through the web
  app's join API and watch the avatar at 720p; their one measuring window is the run;
- a presenter (joined with the presenter code) asks a question by voice (Debian's
  flite) every minute, and a viewer types one through ``POST /questions`` every minute;
- one caption viewer (a LiveKit client subscribed to nothing) keeps every final
  caption line the bot sends;
- every ``--sample`` seconds (10): RSS, open files and threads of every process of the
  stack (and of the load client), from /proc.

At the end: growth per hour of each process's RSS (a least-squares line over the run
after the first ``WARMUP_S``, so the models' and the caches' first fill is not counted;
goal ≤ 5 MB/hour), of its open files and threads; and whether anything was lost: every
typed question is in the web app's store, every final caption the viewer got is in
``captions.jsonl`` on disk, and each spoken question has a caption line of the speaker.

Results: bench/results/soak.json and soak.png (with the commit and package versions).
Run: ``.venv/bin/python -m bench.soak --minutes 30`` (under the heavy lock).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import procstat  # noqa: E402
from bench.figures import RESULTS, machine, now_iso, pyplot, write_result  # noqa: E402
from bench.loadtool import LoadViewers, source_addrs  # noqa: E402
from bench.servers import Stack, up_stack  # noqa: E402

GOAL_MB_PER_HOUR = 5.0
WARMUP_S = 120.0
VIEWERS = 50
QUESTIONS = (
    "Will the recording be available afterwards?",
    "How do I ask a question?",
    "Are captions available?",
    "Who are the speakers today?",
    "When does the live demo start?",
    "What is on the agenda today?",
)


#: a Go runtime GC trace line (GODEBUG=gctrace=1): heap before -> after -> live (MB)
GCTRACE = re.compile(r"gc \d+ @[\d.]+s \d+%: .*? (\d+)->(\d+)->(\d+) MB, (\d+) MB goal")


def go_live_heap(lines: list[tuple[float, str]], t0: float) -> list[tuple[float, float, float]]:
    """(seconds since t0, live heap MB after the GC, heap goal MB) of livekit-server."""
    out = []
    for t, line in lines:
        if t >= t0 and "livekit" in line and (m := GCTRACE.search(line)):
            out.append((t - t0, float(m[3]), float(m[4])))
    return out


def processes(stack: Stack, extra: dict[str, int | None]) -> dict[str, int]:
    """name -> pid of the stack's processes (named by procstat) and the supervisor."""
    found = procstat.classify(procstat.descendants(stack.proc.pid))
    found["supervisor"] = stack.proc.pid
    found.update({k: v for k, v in extra.items() if v})
    return found


class CaptionViewer:
    """A viewer that subscribes to nothing and keeps every final caption line."""

    def __init__(self) -> None:
        from livekit import rtc

        self.room = rtc.Room()
        self.finals: list[dict[str, str]] = []
        self.tasks: set[asyncio.Task[None]] = set()

    async def join(self, url: str, token: str) -> None:
        from livekit import rtc

        from broadcaster.protocol import CAPTION_TOPIC
        from broadcaster.room_connect import connect_room

        def on_stream(reader: rtc.TextStreamReader, _sender: str) -> None:
            task = asyncio.create_task(self._read(reader))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

        self.room.register_text_stream_handler(CAPTION_TOPIC, on_stream)
        await connect_room(self.room, url, token, seconds=20,
                           options=rtc.RoomOptions(auto_subscribe=False))

    async def _read(self, reader: Any) -> None:
        from broadcaster.protocol import CAPTION_FINAL_ATTR, CAPTION_SPEAKER_ATTR

        text = await reader.read_all()
        attrs = reader.info.attributes or {}
        if attrs.get(CAPTION_FINAL_ATTR) == "true":
            self.finals.append({"speaker": attrs.get(CAPTION_SPEAKER_ATTR, ""), "text": text})

    async def leave(self) -> None:
        await self.room.disconnect()


async def _json(resp: aiohttp.ClientResponse) -> Any:
    data = await resp.json()
    if resp.status >= 300:
        raise RuntimeError(f"{resp.method} {resp.url}: HTTP {resp.status} {data}")
    return data


async def run_soak(minutes: float, every: float, ask_every: float,
                   env: dict[str, str]) -> dict[str, Any]:
    from bench.e2e import Presenter, wait_bot_live, web_join
    from bench.receiver import AUDIO_RATE
    from broadcaster.bot.caption_publisher import captions_path
    from probes.speech import flite

    seconds = minutes * 60
    async with up_stack(env_extra=env) as stack, aiohttp.ClientSession() as http:
        s = stack.settings
        web = f"http://{s.web_host}:{s.web_port}"
        room = s.demo_room
        await wait_bot_live(stack, http, 180)
        host = {"Authorization": f"Bearer {s.host_key}"}
        async with http.get(f"{web}/api/host/webinars/{room}", headers=host) as r:
            code = (await _json(r))["presenter_code"]
        p = await web_join(http, web, room, "soak-presenter", "presenter", code)
        presenter = Presenter()
        await presenter.join(p["url"], p["token"])
        c = await web_join(http, web, room, "soak-captions")
        captions = CaptionViewer()
        await captions.join(c["url"], c["token"])

        lv = LoadViewers(["-web", web, "-room", room, "-from", s.bot_identity,
                          "-prefix", "soak", "-quality", "high", "-n", str(VIEWERS),
                          "-ramp", "25", "-settle", "5s", "-hold", f"{int(seconds)}s",
                          "-source-addrs", source_addrs()],
                         log=Path(s.state_dir) / "loadviewers.log")
        viewers = asyncio.create_task(lv.run(timeout=seconds + 300))
        rows: dict[str, list[tuple[float, float, int, int, float]]] = {}
        restarts: dict[str, set[int]] = {}
        t0 = time.monotonic()

        async def sampler() -> None:
            while True:
                for name, pid in processes(stack, {"loadviewers": lv.pid}).items():
                    if (got := procstat.memory(pid)) is not None:
                        rows.setdefault(name, []).append((time.monotonic() - t0, *got))
                        restarts.setdefault(name, set()).add(pid)
                await asyncio.sleep(every)

        asked: list[dict[str, Any]] = []
        typed: list[str] = []

        async def asker() -> None:
            i = 0
            while time.monotonic() - t0 < seconds - 30:
                q = QUESTIONS[i % len(QUESTIONS)]
                at = time.monotonic() - t0
                await presenter.say(flite(q, AUDIO_RATE, voice="slt", trim=True))
                asked.append({"at_s": round(at, 1), "question": q})
                v = await web_join(http, web, room, f"soak-asker-{i}")
                text = f"Soak question {i}: {q}"
                async with http.post(f"{web}/api/webinars/{room}/questions",
                                     json={"text": text},
                                     headers={"Authorization": f"Bearer {v['token']}"}) as r:
                    await _json(r)
                typed.append(text)
                i += 1
                print(f"{at / 60:5.1f} min: asked {q!r}", flush=True)
                await asyncio.sleep(max(0.0, t0 + i * ask_every - time.monotonic()))

        sampling = asyncio.create_task(sampler())
        asking = asyncio.create_task(asker())
        try:
            final = await viewers
        finally:
            for task in (sampling, asking):
                task.cancel()
            await asyncio.gather(sampling, asking, return_exceptions=True)
            await asyncio.sleep(5)  # the last answer's captions land on disk
            await presenter.leave()
            await captions.leave()
        async with http.get(f"{web}/api/webinars/{room}/questions", headers=host) as r:
            stored = [q["text"] for q in (await _json(r))["questions"]]
        path = captions_path(s, room)
        on_disk = [json.loads(line) for line in path.read_text().splitlines()] \
            if path.exists() else []
        pids = {k: sorted(v) for k, v in restarts.items()}
        go_heap = go_live_heap(stack.lines, t0)
    return {"rows": rows, "pids": pids, "go_heap": go_heap, "env": env,
            "asked": asked, "typed": typed, "stored": stored,
            "captions_received": captions.finals, "captions_on_disk": on_disk,
            "viewers": {k: v for k, v in final.items() if k != "steps"},
            "viewer_window": _window(final), "wall_s": round(time.monotonic() - t0, 1)}


def _window(final: dict[str, Any]) -> dict[str, Any] | None:
    steps = final.get("steps") or []
    if not steps:
        return None
    step = dict(steps[-1])
    step.pop("per_viewer", None)
    return step


def growth(rows: list[tuple[float, ...]]) -> dict[str, Any]:
    """Per-hour slopes (least squares after the warm-up) and first/last values."""
    a = np.asarray(rows, dtype=float)
    after = a[a[:, 0] >= WARMUP_S]
    out: dict[str, Any] = {"samples": len(a)}
    for i, key in ((1, "rss_mb"), (2, "files"), (3, "threads"), (4, "anon_mb")):
        if i >= a.shape[1]:
            continue
        out[f"{key}_first"] = float(a[0, i])
        out[f"{key}_last"] = float(a[-1, i])
        out[f"{key}_max"] = float(a[:, i].max())
        out[f"{key}_per_hour"] = (round(float(np.polyfit(after[:, 0], after[:, i], 1)[0]) * 3600, 2)
                                  if len(after) >= 5 else None)
    # the second half alone: a step while the caches fill (first answers, first viewers)
    # is not a steady growth; a leak keeps its slope in the second half too
    half = a[a[:, 0] >= a[-1, 0] / 2]
    out["rss_mb_per_hour_second_half"] = (
        round(float(np.polyfit(half[:, 0], half[:, 1], 1)[0]) * 3600, 2)
        if len(half) >= 5 else None)
    # and the last third: a plateau flattens further, a leak does not
    third = a[a[:, 0] >= a[-1, 0] * 2 / 3]
    out["rss_mb_per_hour_last_third"] = (
        round(float(np.polyfit(third[:, 0], third[:, 1], 1)[0]) * 3600, 2)
        if len(third) >= 5 else None)
    return out


def heap_growth(go_heap: list[tuple[float, float, float]]) -> dict[str, Any] | None:
    """livekit-server's live Go heap (after each GC): a leak grows it, a plateau does not."""
    if len(go_heap) < 10:
        return None
    a = np.asarray(go_heap, dtype=float)
    after, half = a[a[:, 0] >= WARMUP_S], a[a[:, 0] >= a[-1, 0] / 2]

    def slope(x: np.ndarray) -> float | None:
        return round(float(np.polyfit(x[:, 0], x[:, 1], 1)[0]) * 3600, 2) if len(x) >= 5 \
            else None

    return {"gcs": len(a), "live_mb_first": float(a[0, 1]), "live_mb_last": float(a[-1, 1]),
            "live_mb_max": float(a[:, 1].max()), "goal_mb_max": float(a[:, 2].max()),
            "live_mb_per_hour": slope(after), "live_mb_per_hour_second_half": slope(half),
            "t": a[:, 0].tolist(), "live_mb": a[:, 1].tolist()}


def analyse(raw: dict[str, Any], minutes: float) -> dict[str, Any]:
    from difflib import SequenceMatcher

    procs = {name: {**growth(r), "pids": raw["pids"][name]} for name, r in raw["rows"].items()}
    disk = {(c["speaker"], c["text"]) for c in raw["captions_on_disk"]}
    missing_caps = [c for c in raw["captions_received"] if (c["speaker"], c["text"]) not in disk]
    missing_q = [t for t in raw["typed"] if t not in raw["stored"]]
    speaker_lines = [c["text"] for c in raw["captions_on_disk"] if c["speaker"] != "avatar"]
    heard = [any(SequenceMatcher(None, a["question"].lower(), t.lower()).ratio() >= 0.6
                 for t in speaker_lines) for a in raw["asked"]]
    ours = ("supervisor", "sfu", "avatar", "web", "bot")
    slopes = [p["rss_mb_per_hour"] for n, p in procs.items()
              if n in ours and p["rss_mb_per_hour"] is not None]
    worst = max(slopes) if slopes else None
    return {
        "bench": "soak", "minutes": minutes, "wall_s": raw["wall_s"],
        "goal_rss_mb_per_hour": GOAL_MB_PER_HOUR, "warmup_excluded_s": WARMUP_S,
        "processes": procs,
        "restarted": [n for n, p in raw["pids"].items() if len(p) > 1],
        "worst_rss_mb_per_hour": worst,
        "questions": {"spoken": len(raw["asked"]), "typed": len(raw["typed"]),
                      "typed_stored": len(raw["typed"]) - len(missing_q),
                      "missing": missing_q,
                      "spoken_with_a_speaker_caption": sum(heard)},
        "captions": {"final_received": len(raw["captions_received"]),
                     "on_disk": len(raw["captions_on_disk"]),
                     "avatar_lines_on_disk": sum(c["speaker"] == "avatar"
                                                 for c in raw["captions_on_disk"]),
                     "received_not_on_disk": missing_caps[:20],
                     "received_not_on_disk_n": len(missing_caps)},
        "viewers": raw["viewers"], "viewer_window": raw["viewer_window"],
        "asked": raw["asked"], "env": raw.get("env") or {},
        "sfu_go_heap": heap_growth(raw.get("go_heap") or []),
        "series": {n: {"t": [r[0] for r in rows], "rss_mb": [r[1] for r in rows],
                       "files": [r[2] for r in rows], "threads": [r[3] for r in rows],
                       "anon_mb": [r[4] for r in rows]}
                   for n, rows in raw["rows"].items()},
        "pass": (worst is not None and worst <= GOAL_MB_PER_HOUR and not missing_q
                 and not missing_caps and all(heard)),
    }


def plot(result: dict[str, Any], path: Path) -> None:
    plt = pyplot()
    if plt is None:
        return
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.8))
    for name, s in result["series"].items():
        t = np.asarray(s["t"]) / 60
        rate = result["processes"][name]["rss_mb_per_hour"]
        label = f"{name} ({rate:+.1f} MB/h)" if rate is not None else name
        rss = np.asarray(s["rss_mb"])
        base = rss[np.searchsorted(t, WARMUP_S / 60)] if t[-1] > WARMUP_S / 60 else rss[0]
        axes[0].plot(t, rss - base, label=label)  # growth since the warm-up
        axes[1].plot(t, s["files"], label=name)
        axes[2].plot(t, s["threads"], label=name)
    if heap := result.get("sfu_go_heap"):
        t = np.asarray(heap["t"]) / 60
        live = np.asarray(heap["live_mb"])
        base = live[min(np.searchsorted(t, WARMUP_S / 60), len(live) - 1)]
        axes[0].plot(t, live - base, ls="--", lw=0.8, color="black",
                     label=f"sfu live Go heap ({heap['live_mb_per_hour'] or 0:+.1f} MB/h)")
    titles = ("RSS change since the warm-up (MB)", "open files", "threads")
    for ax, what in zip(axes, titles, strict=True):
        ax.axvline(WARMUP_S / 60, color="gray", lw=0.8, ls=":")
        ax.set(xlabel="minutes", ylabel=what, title=what)
        ax.legend(fontsize=7)
    axes[0].axhline(0, color="gray", lw=0.5)
    axes[0].set_ylim(-10, None)  # the warm-up's climb is off the chart
    q = result["questions"]
    fig.suptitle(
        f"Soak, {result['minutes']:g} min, {VIEWERS} viewers, a question a minute "
        f"({q['spoken']} spoken, {q['typed_stored']}/{q['typed']} typed stored; "
        f"growth fit after the dotted line; commit {result.get('commit')})", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


#: the stack's environment in a soak: GC traces of livekit-server (its live heap, to tell
#: a leak from a plateau); glibc malloc arenas per Python process capped (fragmentation)
SOAK_ENV = {"GODEBUG": "gctrace=1", "MALLOC_ARENA_MAX": "2"}


def run(quick: bool = False, minutes: float | None = None, every: float = 10.0,
        env: dict[str, str] | None = None) -> dict[str, Any]:
    minutes = minutes if minutes is not None else (4.0 if quick else 30.0)
    env = dict(SOAK_ENV if env is None else env)
    raw = asyncio.run(run_soak(minutes, every, 60.0, env))
    result = analyse(raw, minutes)
    result.update(
        when=now_iso(), machine=machine(), quick=quick,
        what=(f"`broadcaster up` for {minutes:g} min: {VIEWERS} receive-only Go viewers "
              "through the web app, a spoken presenter question and a typed viewer question "
              f"every minute; RSS / open files / threads of every process every {every:g} s; "
              f"growth per hour by a least-squares fit after the first {WARMUP_S:g} s"))
    write_result("soak", result)
    plot(result, RESULTS / "soak.png")
    return result


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=float, default=30.0)
    ap.add_argument("--sample", type=float, default=10.0, help="seconds between samples")
    ap.add_argument("--quick", action="store_true", help="4 minutes")
    ap.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                    help=f"environment of the stack's processes (default {SOAK_ENV}; "
                         "given once, replaces it)")
    a = ap.parse_args()
    envs = dict(e.split("=", 1) for e in a.env) if a.env else None
    res = run(quick=a.quick, minutes=4.0 if a.quick else a.minutes, every=a.sample, env=envs)
    print(json.dumps({k: v for k, v in res.items() if k not in ("series", "asked")},
                     indent=1, default=str))
