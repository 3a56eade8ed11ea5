"""Kill each part of ``broadcaster up`` with SIGKILL under a watching viewer; time the recovery.

The whole local stack runs as a newcomer runs it (``broadcaster up``: supervisor,
livekit-server, local avatar service, web app, the demo webinar's bot). A viewer
joins the demo webinar through the web app's join API and stays; every frame of the
bot's camera is classified as the slate or the avatar (probes/stage_watch.py). Each
part is killed ``rounds`` times (bounded); after each kill the bench waits for the
live avatar at the viewer (or ``timeout``) and records "slate shown after" and "live
avatar back after". When LiveKit drops the viewer for good (a restarted server lost
the room) it rejoins through the join API with its claim, as the pages do.

Each kill comes after a healthy run of the part (up at least ``HEALTHY_S``, the
supervisor's and the bot launcher's notion of healthy, broadcaster/restart_policy.py):
such a crash is restarted at once. ``--loop`` kills back to back instead (a crash loop,
where the restart backoffs of 1, 2, 4… s are meant to lengthen the later rounds).

Also sampled, once a second for the whole run: RSS, open files and threads of every
process of the stack (a short soak; growth per hour is extrapolated by a fit).

Results: bench/results/faults.json and faults.png; issue 15's goals: live avatar back
within 5 s (avatar service), 10 s (livekit-server), 6 s (bot; and the web app, whose
crash takes its bot along); a slate within 2 s.
"""

from __future__ import annotations

import asyncio
import os
import signal
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
from bench.figures import machine, now_iso, pyplot, summary, write_result  # noqa: E402
from bench.servers import up_stack  # noqa: E402
from probes.stage_watch import StageWatcher  # noqa: E402

#: the web app's crash takes its bot along (restarted by the new web app): a bot's goal
GOALS = {"avatar": 5.0, "livekit": 10.0, "bot": 6.0, "web": 6.0}
#: a part up this long has had a healthy run (broadcaster/supervisor.py POLICY and
#: broadcaster/web/bot_control.py HEALTHY_AFTER), plus a margin
HEALTHY_S = 31.0
SLATE_GOAL = 2.0
#: the bench's name of each part -> bench/procstat.py's (which finds it by command line)
PARTS = {"avatar": "avatar", "bot": "bot", "livekit": "sfu", "web": "web"}


def running_parts(root: int) -> dict[str, int]:
    """pid of each part running under ``root``, from one walk of /proc."""
    found = procstat.classify(procstat.descendants(root))
    return {name: found[p] for name, p in PARTS.items() if p in found}


def find(root: int, part: str) -> int | None:
    return running_parts(root).get(part)


def uptime(pid: int) -> float:
    """Seconds since ``pid`` started (0 if it is gone)."""
    try:
        start = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
        boot_s = float(Path("/proc/uptime").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 0.0
    return boot_s - start / os.sysconf("SC_CLK_TCK")


async def join_webinar(http: aiohttp.ClientSession, web: str, room: str,
                       body: dict[str, Any], claim: str | None) -> dict[str, Any]:
    """Join through the web app (with the claim of an earlier join, to keep the identity
    across a rejoin); its reply, or RuntimeError naming the refusal."""
    if claim:
        body = {**body, "claim": claim}
    async with http.post(f"{web}/api/webinars/{room}/join", json=body) as r:
        data = await r.json()
        if r.status != 200:
            raise RuntimeError(f"{body.get('role')} join refused: {r.status} {data}")
    return data


class Audience:
    """One viewer of the demo webinar that rejoins through the web app when dropped."""

    def __init__(self, web: str, room: str, bot: str,
                 watcher: type[StageWatcher] = StageWatcher,
                 identity: str = "bench-viewer") -> None:
        self.web, self.room, self.bot, self.identity = web, room, bot, identity
        self.make_watcher = watcher
        self.watcher = watcher(bot)
        self.claim: str | None = None
        self.rejoins = 0

    async def join(self, http: aiohttp.ClientSession) -> None:
        data = await join_webinar(http, self.web, self.room, {
            "identity": self.identity, "name": "Bench Viewer", "role": "viewer"}, self.claim)
        self.claim = data.get("claim")
        seen = self.watcher.seen
        self.watcher = self.make_watcher(self.bot)
        self.watcher.seen = seen  # one record across rejoins
        await self.watcher.join(data["url"], data["token"])

    async def keep(self, http: aiohttp.ClientSession) -> None:
        """Rejoin whenever LiveKit dropped the viewer (as stage_status.js does)."""
        from livekit import rtc

        while True:
            await asyncio.sleep(0.25)
            if self.watcher.room.connection_state == rtc.ConnectionState.CONN_DISCONNECTED:
                try:
                    await self.join(http)
                    self.rejoins += 1
                except Exception:  # the server is still down: again
                    await asyncio.sleep(0.5)


async def wait_live(viewer: Audience, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not viewer.watcher.live_now():
        if time.monotonic() > deadline:
            raise TimeoutError("no live avatar at the viewer")
        await asyncio.sleep(0.2)


async def bench(rounds: int, timeout: float, settle: float, loop: bool) -> dict[str, Any]:
    result: dict[str, Any] = {"rounds": rounds, "faults": {}, "soak": {},
                              "spacing": "back to back" if loop else f"up >= {HEALTHY_S:.0f} s"}
    async with up_stack() as stack, aiohttp.ClientSession() as http:
        s = stack.settings
        web = f"http://{s.web_host}:{s.web_port}"
        viewer = Audience(web, s.demo_room, s.bot_identity)
        await viewer.join(http)
        keeper = asyncio.create_task(viewer.keep(http))
        soak: dict[str, list[tuple[float, float, int, int, float]]] = {}
        t_start = time.monotonic()

        async def sampler() -> None:
            while True:
                for part, pid in running_parts(stack.proc.pid).items():
                    got = procstat.memory(pid)
                    if got:
                        soak.setdefault(part, []).append((time.monotonic() - t_start, *got))
                for name, pid in (("supervisor", stack.proc.pid),):
                    got = procstat.memory(pid)
                    if got:
                        soak.setdefault(name, []).append((time.monotonic() - t_start, *got))
                await asyncio.sleep(1.0)

        sampling = asyncio.create_task(sampler())
        try:
            await wait_live(viewer, 120)
            for part in GOALS:
                runs = []
                for _ in range(rounds):
                    await wait_live(viewer, 60)
                    await asyncio.sleep(settle)
                    pid = find(stack.proc.pid, part)
                    if pid is None:
                        raise RuntimeError(f"no {part} process:\n{stack.tail()}")
                    if not loop and (wait := HEALTHY_S - uptime(pid)) > 0:
                        await asyncio.sleep(wait)  # a crash after a healthy run
                        await wait_live(viewer, 60)
                    up = uptime(pid)
                    t0 = time.monotonic()
                    os.kill(pid, signal.SIGKILL)
                    while (viewer.watcher.moving_after(t0) is None
                           and time.monotonic() < t0 + timeout):
                        await asyncio.sleep(0.1)
                    w = viewer.watcher
                    runs.append({"slate_after": w.slate_after(t0), "live_after": w.live_after(t0),
                                 "moving_after": w.moving_after(t0),
                                 "longest_gap": w.longest_gap(t0, time.monotonic()),
                                 "up_before_kill_s": round(up, 1)})
                    print(f"{part}: {runs[-1]}", flush=True)
                live = [r["live_after"] for r in runs if r["live_after"] is not None]
                slate = [r["slate_after"] for r in runs if r["slate_after"] is not None]
                result["faults"][part] = {
                    "runs": runs, "live_after": summary(live), "slate_after": summary(slate),
                    "moving_after": summary(r["moving_after"] for r in runs
                                            if r["moving_after"] is not None),
                    "never_live": sum(r["live_after"] is None for r in runs),
                    "goal_live_s": GOALS[part]}
        finally:
            sampling.cancel()
            keeper.cancel()
            await asyncio.gather(sampling, keeper, return_exceptions=True)
            await viewer.watcher.leave()
        result["viewer_rejoins"] = viewer.rejoins
        for name, rows in soak.items():
            a = np.asarray(rows, dtype=float)
            slope = float(np.polyfit(a[:, 0], a[:, 1], 1)[0]) * 3600 if len(a) > 10 else None
            result["soak"][name] = {"t": a[:, 0].tolist(), "rss_mb": a[:, 1].tolist(),
                                    "files": a[:, 2].tolist(), "threads": a[:, 3].tolist(),
                                    "rss_mb_per_hour_fit": slope}
    return result


def plot(result: dict[str, Any], path: Path) -> None:
    plt = pyplot()
    if plt is None:
        return
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(12, 4.5))
    for i, (part, f) in enumerate(result["faults"].items()):
        live = [r["live_after"] for r in f["runs"] if r["live_after"] is not None]
        slate = [r["slate_after"] for r in f["runs"] if r["slate_after"] is not None]
        ax.scatter([i - 0.1] * len(slate), slate, color="tab:orange",
                   label="slate shown after" if i == 0 else None)
        ax.scatter([i + 0.1] * len(live), live, color="tab:green",
                   label="live avatar back after" if i == 0 else None)
        moving = [r["moving_after"] for r in f["runs"] if r.get("moving_after") is not None]
        ax.scatter([i + 0.25] * len(moving), moving, color="tab:gray", marker="x",
                   label="picture moving after" if i == 0 else None)
        ax.hlines(GOALS[part], i - 0.3, i + 0.3, colors="tab:green", linestyles="dashed")
        for k, r in enumerate(f["runs"], 1):  # the round: later ones wait out restart backoffs
            if r["live_after"] is not None:
                ax.annotate(str(k), (i + 0.1, r["live_after"]), xytext=(5, -3),
                            textcoords="offset points", fontsize=7)
        lv = f.get("live_after") or {}
        if lv.get("n"):
            ax.text(i, -1.2, f"p50 {lv['p50']:.1f} / p95 {lv['p95']:.1f} s", ha="center",
                    fontsize=8)
    ax.axhline(SLATE_GOAL, color="tab:orange", linestyle=":", linewidth=1)
    ax.set_xticks(range(len(result["faults"])), [f"{p} killed" for p in result["faults"]])
    ax.set_ylabel("seconds after SIGKILL, at a viewer")
    ax.set_title(f"Recovery (dashed: goals; numbers: round; kills {result.get('spacing')})")
    ax.set_ylim(-2, None)
    ax.legend()
    for name, s in result["soak"].items():
        bx.plot(s["t"], s["rss_mb"], label=name)
    bx.set_xlabel("s")
    bx.set_ylabel("RSS (MB)")
    bx.set_title("RSS of each process across the kills")
    bx.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def run(quick: bool = False, loop: bool = False) -> dict[str, Any]:
    rounds = 2 if quick else 5
    result = asyncio.run(bench(rounds, timeout=30.0, settle=3.0, loop=loop))
    spacing = ("back to back (a crash loop: restart backoffs)" if loop
               else f"each after the part had been up >= {HEALTHY_S:.0f} s (a healthy run)")
    result.update(
        bench="faults", when=now_iso(), machine=machine(), quick=quick,  # + provenance
        what=(f"`broadcaster up`; each part SIGKILLed {rounds} times, {spacing}, under one "
              "viewer that joined through the web app; the bot's slate and the live avatar "
              "told apart frame by frame at the viewer (probes/stage_watch.py); left plot: "
              "each kill, right: RSS of each process meanwhile"))
    result["pass"] = all(f["never_live"] == 0 and (f["live_after"].get("p95") or 99) <= GOALS[p]
                         for p, f in result["faults"].items())
    write_result("faults", result)
    plot(result, ROOT / "bench" / "results" / "faults.png")
    return result


if __name__ == "__main__":
    run(quick="--quick" in sys.argv, loop="--loop" in sys.argv)
