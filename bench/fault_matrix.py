"""Every part of ``broadcaster up`` stopped by every signal, under a watching viewer.

bench/faults.py times SIGKILLs; this asks the operator's other questions too, for
SIGTERM, SIGINT and SIGKILL sent to each part (livekit-server, the avatar service, the
bot, the web app) straight, not through the supervisor:

- what the viewer saw: slate after, live avatar back after, picture moving after, the
  longest time without a frame (probes/stage_watch.py), and whether it had to rejoin;
- how the part went: gone after (s), its exit as its parent logged it, tracebacks in
  the stack's output meanwhile;
- when the presenter was heard again (bench/fault_presenter.py: asks until answered);
- what was left once the avatar was back: the bot's participants in the stage room
  (more than one: a ghost), the sessions the avatar service holds open (more than one:
  a stale one), the bot's state in the host API.

Each fault comes after the part has been up ``HEALTHY_S`` (a healthy run: restarted at
once). Results: bench/results/fault_matrix.json and .png.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.fault_presenter import Seat  # noqa: E402
from bench.faults import HEALTHY_S, Audience, find, uptime, wait_live  # noqa: E402
from bench.figures import machine, now_iso, pyplot, write_result  # noqa: E402
from bench.servers import up_stack  # noqa: E402

PARTS = ("avatar", "bot", "web", "livekit")
#: how to read the rows (also written into the result)
NOTES = ("livekit-server's first SIGTERM or SIGINT drains: it waits for every participant to "
         "leave, which under a live webinar is never. `up`'s supervisor reads the drain in its "
         "log (broadcaster/livekit_drain.py) and signals it again, which ends it at once "
         "(before that fix the SIGTERM row read 'not gone' and the SIGINT row, the same "
         "process, ended it). A viewer that rejoined counts its tracks from 0 again, so "
         "live_after / moving_after can be None for it while frames came: read longest_gap "
         "then.")
SIGNALS = {"SIGTERM": signal.SIGTERM, "SIGINT": signal.SIGINT, "SIGKILL": signal.SIGKILL}
#: how the supervisor (livekit, avatar, web) and the bot launcher log an exit
EXITED = {"bot": r"bot for room \S+ exited \(code (-?\d+)\)",
          **{p: rf"{p} exited \(code (-?\d+)\)" for p in ("avatar", "web", "livekit")}}


def gone(pid: int) -> bool:
    """Whether ``pid`` ended (a zombie counts: its parent has not reaped it yet)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state == "Z"


async def leftovers(http: aiohttp.ClientSession, s: Any) -> dict[str, Any]:
    """The bot's participants in the stage room, the avatar sessions open, the bot's state."""
    web = f"http://{s.web_host}:{s.web_port}"
    host = {"Authorization": f"Bearer {s.host_key}"}
    out: dict[str, Any] = {}
    async with http.get(f"{web}/api/host/webinars/{s.demo_room}/participants?limit=200",
                        headers=host) as r:
        people = (await r.json()).get("participants") or []
    out["bot_participants"] = sum(1 for p in people if p.get("identity") == s.bot_identity)
    async with http.get(f"{web}/api/host/webinars/{s.demo_room}/bot", headers=host) as r:
        out["bot_state"] = (await r.json()).get("state")
    av = f"http://{s.avatar_host}:{s.avatar_port}/v1/sessions"
    async with http.get(av, headers={"X-API-KEY": s.avatar_api_key}) as r:
        sessions = (await r.json())["data"]["sessions"] if r.status == 200 else []
    out["avatar_sessions_open"] = sum(1 for x in sessions
                                      if x.get("state") not in ("stopped", "closed", "ended"))
    out["avatar_session_states"] = sorted({str(x.get("state")) for x in sessions})
    return out


async def one_fault(stack: Any, viewer: Audience, seat: Seat, http: aiohttp.ClientSession,
                    part: str, sig: signal.Signals, timeout: float) -> dict[str, Any]:
    await wait_live(viewer, 90)
    pid = find(stack.proc.pid, part)
    if pid is None:
        raise RuntimeError(f"no {part} process:\n{stack.tail()}")
    if (wait := HEALTHY_S - uptime(pid)) > 0:
        await asyncio.sleep(wait)
        await wait_live(viewer, 60)
    up, rejoins, n_lines = uptime(pid), viewer.rejoins, len(stack.lines)
    seat_rejoins = seat.rejoins
    t0 = time.monotonic()
    os.kill(pid, sig)
    heard = asyncio.create_task(seat.heard_after(stack, t0, timeout))
    gone_after = None
    while time.monotonic() < t0 + timeout:
        if gone_after is None and gone(pid):
            gone_after = time.monotonic() - t0
        if gone_after is not None and viewer.watcher.moving_after(t0) is not None:
            break
        await asyncio.sleep(0.05)
    heard_after = await heard
    await asyncio.sleep(3.0)  # let late log lines and a ghost's timeout show
    w = viewer.watcher
    text = [line for _, line in stack.lines[n_lines:]]
    exits = [m.group(1) for line in text if (m := re.search(EXITED[part], line))]
    row: dict[str, Any] = {
        "part": part, "signal": sig.name, "up_before_s": round(up, 1),
        "gone_after_s": None if gone_after is None else round(gone_after, 2),
        "exit_code_logged": int(exits[0]) if exits else None,
        "tracebacks": sum("Traceback" in line for line in text),
        "traceback_lines": [line for line in text if "Traceback" in line or "Error" in line][:8],
        "slate_after": w.slate_after(t0), "live_after": w.live_after(t0),
        "moving_after": w.moving_after(t0), "longest_gap": w.longest_gap(t0, time.monotonic()),
        "viewer_rejoined": viewer.rejoins - rejoins,
        "presenter_heard_after": heard_after, "presenter_rejoined": seat.rejoins - seat_rejoins,
    }
    try:
        row.update(await leftovers(http, stack.settings))
    except (aiohttp.ClientError, KeyError, ValueError) as exc:
        row["leftovers_error"] = repr(exc)
    print(f"{part} {sig.name}: {row}", flush=True)
    return row


async def bench(parts: tuple[str, ...], signals: tuple[str, ...],
                timeout: float) -> dict[str, Any]:
    rows: list[dict[str, Any]] = []
    async with up_stack() as stack, aiohttp.ClientSession() as http:
        s = stack.settings
        viewer = Audience(f"http://{s.web_host}:{s.web_port}", s.demo_room, s.bot_identity)
        await viewer.join(http)
        keeper = asyncio.create_task(viewer.keep(http))
        host = {"Authorization": f"Bearer {s.host_key}"}
        async with http.get(f"{viewer.web}/api/host/webinars/{s.demo_room}", headers=host) as r:
            seat = Seat(viewer.web, s.demo_room, (await r.json())["presenter_code"])
        await seat.join(http)
        presenting = asyncio.create_task(seat.keep(http))
        try:
            await wait_live(viewer, 120)
            for part in parts:
                for name in signals:
                    try:
                        rows.append(await one_fault(stack, viewer, seat, http, part,
                                                    SIGNALS[name], timeout))
                    except (TimeoutError, RuntimeError) as exc:
                        rows.append({"part": part, "signal": name, "error": str(exc)[-2000:]})
                        print(f"{part} {name}: {exc}", flush=True)
        finally:
            keeper.cancel()
            presenting.cancel()
            await asyncio.gather(keeper, presenting, return_exceptions=True)
            await viewer.watcher.leave()
            if seat.mic is not None:
                await seat.mic.leave()
    return {"rows": rows}


def plot(result: dict[str, Any], path: Path) -> None:
    plt = pyplot()
    if plt is None:
        return
    rows = [r for r in result["rows"] if "error" not in r]
    fig, ax = plt.subplots(figsize=(12, 4.5))
    labels = [f"{r['part']}\n{r['signal']}" for r in rows]
    x = range(len(rows))
    for key, label, colour, off in (
            ("gone_after_s", "part gone after", "tab:gray", -0.2),
            ("longest_gap", "longest time without a frame", "tab:red", 0.0),
            ("moving_after", "live avatar moving after", "tab:green", 0.2)):
        ax.bar([i + off for i in x], [r.get(key) or 0 for r in rows], width=0.2, color=colour,
               label=label)
    for i, r in zip(x, rows, strict=True):
        if r.get("gone_after_s") is None:
            ax.text(i, 0.1, "not gone\n(draining)", ha="center", fontsize=7, rotation=90)
    ax.set_xticks(list(x), labels, fontsize=8)
    ax.set_ylabel("seconds after the signal, at a viewer")
    ax.set_title("Each part of `broadcaster up` signalled under a viewer")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def run(parts: tuple[str, ...] = PARTS, signals: tuple[str, ...] = tuple(SIGNALS),
        quick: bool = False, name: str = "fault_matrix") -> dict[str, Any]:
    """One fault per part and signal (about 12 minutes; ``quick`` changes nothing).

    ``name``: of the result files (a run of some parts only keeps the whole run's)."""
    result = asyncio.run(bench(parts, signals, timeout=40.0))
    result.update(bench="fault_matrix", when=now_iso(), machine=machine(), notes=NOTES,
                  what=("`broadcaster up`; each part sent SIGTERM, SIGINT, SIGKILL straight "
                        f"(not through the supervisor), each after >= {HEALTHY_S:.0f} s up, "
                        "under one SDK viewer that joined through the web app"))
    write_result(name, result)
    plot(result, ROOT / "bench" / "results" / f"{name}.png")
    return result


def replot() -> None:
    """Draw the plot again from the stored result (no run)."""
    import json

    path = ROOT / "bench" / "results" / "fault_matrix.json"
    plot(json.loads(path.read_text()), path.with_suffix(".png"))


if __name__ == "__main__":
    if "--replot" in sys.argv:
        replot()
        sys.exit(0)
    args = sys.argv[1:]
    picked = tuple(a for a in args if a in PARTS) or PARTS
    sigs = tuple(a for a in args if a in SIGNALS) or tuple(SIGNALS)
    run(picked, sigs, name="fault_matrix" if picked == PARTS and sigs == tuple(SIGNALS)
        else "fault_matrix_" + "_".join(picked))
