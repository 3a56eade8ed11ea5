"""The floor holds while 300 viewers join, with or without LiveKit's webhooks (issue 11).

A presenter is demoted by the host; her old token still grants publishing. While a
crowd of real viewers joins (the web app's join API, then a real LiveKit connection
each: Python SDK rooms, no subscriptions, in a child process), she comes back with
that token again and again and publishes her microphone. Measured: how long LiveKit
lets her publish (her connect → LiveKit shows her without the right and without the
track), in three set-ups run one after the other in this script:

- baseline: no webhooks and no reconciliation (what is left when LiveKit drops every
  webhook, as its full queue did under load before): she is never demoted;
- reconciliation only: webhooks switched off entirely, so only the web app's periodic
  reconciliation (``floor_reconcile_seconds``, default 2 s) can act;
- webhooks + reconciliation: the default configuration.

Also counted: livekit-server's "failed to notify webhook" lines (webhooks lost), joins
per second, and the web app's CPU. The join limit is raised for the load tool, which
joins from one address (``join_burst``; docs/security.md).

Run: ``.venv/bin/python -m bench reconcile_storm [--quick]`` (quick: 100 viewers).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.figures import RESULTS, machine, now_iso, pyplot, summary, write_result  # noqa: E402
from bench.servers import fresh_settings, stop_process  # noqa: E402
from broadcaster import livekit_server  # noqa: E402
from broadcaster.room_connect import connect_room  # noqa: E402

NAME = "reconcile_storm"
#: give up on one offender after this long (the baseline never demotes her)
PROBE_TIMEOUT = 12.0
MODES: dict[str, dict[str, Any]] = {
    "baseline": {"floor_guard": False, "floor_reconcile_seconds": 0.0},
    "reconcile_only": {"floor_guard": False, "floor_reconcile_seconds": 2.0},
    "webhooks_and_reconcile": {"floor_guard": True, "floor_reconcile_seconds": 2.0},
}
LABELS = {"baseline": "no webhooks, no reconciliation (baseline)",
          "reconcile_only": "reconciliation only (webhooks off)",
          "webhooks_and_reconcile": "webhooks + reconciliation (default)"}


# ------------------------------------------------------------------ the crowd (child)
async def crowd(web: str, room: str, n: int, concurrency: int) -> None:
    """Join ``n`` viewers through the web app and connect each to LiveKit; print progress
    (``connected <k> <join_ms> <connect_ms>``) and hold them until stdin closes."""
    import aiohttp
    from livekit import rtc

    rooms: list[rtc.Room] = []
    sem = asyncio.Semaphore(concurrency)
    done = 0

    async def one(i: int, http: aiohttp.ClientSession) -> None:
        nonlocal done
        async with sem:
            t0 = time.monotonic()
            async with http.post(f"{web}/api/webinars/{room}/join",
                                 json={"identity": f"crowd-{i}", "name": f"Viewer {i}"}) as r:
                answer = await r.json()
                if r.status != 200:
                    print(f"refused {r.status} {answer}", flush=True)
                    return
            t1 = time.monotonic()
            for attempt in range(3):  # a busy 2-core box: a real page retries too
                lk = rtc.Room()
                try:
                    await connect_room(lk, answer["url"], answer["token"], seconds=40,
                                       options=rtc.RoomOptions(auto_subscribe=False))
                    break
                except Exception:
                    with contextlib.suppress(Exception):
                        await lk.disconnect()
                    if attempt == 2:
                        raise
            rooms.append(lk)
            done += 1
            print(f"connected {done} {(t1 - t0) * 1e3:.1f} {(time.monotonic() - t1) * 1e3:.1f}",
                  flush=True)

    async with aiohttp.ClientSession() as http:
        results = await asyncio.gather(*(one(i, http) for i in range(n)),
                                       return_exceptions=True)
    failed = [r for r in results if isinstance(r, BaseException)]
    print(f"all {done} failed {len(failed)}", flush=True)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.read)  # until the parent closes stdin
    await asyncio.gather(*(r.disconnect() for r in rooms), return_exceptions=True)


# ------------------------------------------------------------------ the measurement
def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of ``pid`` (/proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _probe(settings: Any, lkapi: Any, room: str, token: str) -> float | None:
    """The offender connects with her stale token and publishes: seconds until LiveKit
    shows her unable to publish and without the track (None: not within the timeout)."""
    from livekit import api, rtc

    offender = rtc.Room()
    await connect_room(offender, settings.effective_livekit_url, token, seconds=20)
    t0 = time.monotonic()
    source = rtc.AudioSource(48000, 1)
    track = rtc.LocalAudioTrack.create_audio_track("mic", source)
    publish = asyncio.create_task(offender.local_participant.publish_track(
        track, rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE)))
    took: float | None = None
    published = False
    try:
        while time.monotonic() - t0 < PROBE_TIMEOUT:
            info = await lkapi.room.get_participant(
                api.RoomParticipantIdentity(room=room, identity="petra"))
            published = published or bool(info.tracks)
            if not info.permission.can_publish and not info.tracks:
                took = time.monotonic() - t0
                break
            await asyncio.sleep(0.05)
    finally:
        publish.cancel()
        with contextlib.suppress(BaseException):
            await publish
        await offender.disconnect()
        await source.aclose()
    await asyncio.sleep(1.0)  # she is gone before the next try
    return took


async def storm_webinar(base: str, host: dict[str, str]) -> str:
    """Open the "storm" webinar; return petra's presenter token, minted with the floor
    and then demoted by the host (a stale token the floor guard must stop publishing)."""
    import aiohttp

    async with aiohttp.ClientSession(base) as http:
        async with http.post("/api/host/webinars", headers=host,
                             json={"title": "Join storm", "room": "storm"}) as r:
            w = await r.json()
        async with http.post("/api/webinars/storm/join", json={
                "identity": "petra", "role": "presenter",
                "code": w["presenter_code"]}) as r:
            stale: str = (await r.json())["token"]
        async with http.post("/api/host/webinars/storm/participants/petra/demote",
                             headers=host) as r:
            assert r.status == 200, await r.text()
    return stale


async def one_mode(mode: str, n: int, concurrency: int) -> dict[str, Any]:
    from livekit import api

    s = fresh_settings(demo_room="", join_burst=max(1000, 2 * n), **MODES[mode])
    log = Path(s.state_dir) / "livekit.log"
    # info level: livekit-server logs each webhook it drops ("dropped webhook") there
    async with livekit_server.running(s, log, log_level="info"):
        env = {**os.environ, **s.child_env(), "PYTHONUNBUFFERED": "1"}
        web_log = open(Path(s.state_dir) / "web.log", "wb")  # noqa: SIM115
        web = subprocess.Popen([sys.executable, "-m", "broadcaster", "serve", "web"], cwd=ROOT,
                               env=env, stdout=web_log, stderr=subprocess.STDOUT)
        base = f"http://127.0.0.1:{s.web_port}"
        host = {"Authorization": f"Bearer {s.host_key}"}
        lk = api.LiveKitAPI(s.livekit_http_url, s.livekit_api_key, s.livekit_api_secret)
        crowd_proc: asyncio.subprocess.Process | None = None
        reader: asyncio.Task[None] | None = None
        try:
            from broadcaster.netutil import wait_http_ok

            await wait_http_ok(base + "/healthz", timeout=30)
            stale = await storm_webinar(base, host)
            cpu0, t_start = _cpu_seconds(web.pid), time.monotonic()
            crowd_proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bench.reconcile_storm", "crowd", base, "storm", str(n),
                str(concurrency), cwd=ROOT, stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL)
            state: dict[str, Any] = {"connected": 0, "join_ms": [], "connect_ms": [],
                                     "all_at": None, "refused": 0, "failed": 0}

            async def read() -> None:
                assert crowd_proc is not None and crowd_proc.stdout is not None
                while line := await crowd_proc.stdout.readline():
                    parts = line.decode().split()
                    if parts[:1] == ["connected"]:
                        state["connected"] = int(parts[1])
                        state["join_ms"].append(float(parts[2]))
                        state["connect_ms"].append(float(parts[3]))
                    elif parts[:1] == ["refused"]:
                        state["refused"] += 1
                    elif parts[:1] == ["all"]:
                        state["all_at"] = time.monotonic()
                        state["failed"] = int(parts[3])

            reader = asyncio.create_task(read())
            probes: list[dict[str, Any]] = []
            while state["all_at"] is None and crowd_proc.returncode is None:
                during = state["connected"]
                took = await _probe(s, lk, "storm", stale)
                probes.append({"viewers_at_start": during, "viewers_at_end": state["connected"],
                               "seconds": took, "during_storm": state["all_at"] is None})
            storm_s = (state["all_at"] or time.monotonic()) - t_start
            for _ in range(3):  # and with everyone connected
                took = await _probe(s, lk, "storm", stale)
                probes.append({"viewers_at_start": state["connected"],
                               "viewers_at_end": state["connected"], "seconds": took,
                               "during_storm": False})
            web_cpu = _cpu_seconds(web.pid) - cpu0
            people = await lk.room.list_participants(api.ListParticipantsRequest(room="storm"))
        finally:
            if reader is not None:
                reader.cancel()
            if crowd_proc is not None and crowd_proc.returncode is None:
                assert crowd_proc.stdin is not None
                crowd_proc.stdin.close()
                try:
                    await asyncio.wait_for(crowd_proc.wait(), 60)
                except TimeoutError:
                    crowd_proc.kill()
                    await crowd_proc.wait()
            await lk.aclose()
            await stop_process(web)
            web_log.close()
    text = log.read_text(errors="replace")
    lost = sum(any(x in line for x in ("dropped webhook", "failed to notify webhook",
                                       "queue is full")) for line in text.splitlines())
    times = [p["seconds"] for p in probes]
    fixed = [t for t in times if t is not None]
    return {
        "label": LABELS[mode], "settings": MODES[mode], "viewers": state["connected"],
        "refused_joins": state["refused"], "failed_connects": state["failed"],
        "in_room_at_end": len(people.participants),
        "storm_seconds": round(storm_s, 2), "joins_per_second": state["connected"] / storm_s,
        "join_api_ms": summary(state["join_ms"]), "connect_ms": summary(state["connect_ms"]),
        "probes": probes, "offender_publish_seconds": summary(fixed),
        "offenders_never_demoted": sum(t is None for t in times),
        "webhooks_lost_lines": lost, "web_app_cpu_seconds": round(web_cpu, 2),
    }


def plot(result: dict[str, Any], path: Path) -> None:
    plt = pyplot()
    if plt is None:
        return
    fig, ax = plt.subplots(figsize=(11, 4.2), dpi=100)
    colors = {"baseline": "tab:red", "reconcile_only": "tab:blue",
              "webhooks_and_reconcile": "tab:green"}
    for mode, r in result["modes"].items():
        xs = [p["viewers_at_start"] for p in r["probes"]]
        ys = [p["seconds"] if p["seconds"] is not None else PROBE_TIMEOUT for p in r["probes"]]
        ax.plot(xs, ys, "o", color=colors[mode], alpha=0.8, label=r["label"])
    ax.axhline(PROBE_TIMEOUT, color="tab:red", ls=":", lw=1)
    ax.text(0, PROBE_TIMEOUT * 0.96, f"never demoted (gave up after {PROBE_TIMEOUT:g} s)",
            fontsize=8, va="top", color="tab:red")
    ax.set_yscale("log")
    ax.set_xlabel("viewers connected when the demoted presenter came back")
    ax.set_ylabel("stale token could publish for (s)")
    ax.set_title(f"Floor held during a join storm of {result['viewers']} viewers")
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _mode(mode: str, n: int) -> dict[str, Any]:
    """One set-up; again on fresh ports when another process took one (a shared box)."""
    for attempt in range(3):
        try:
            return asyncio.run(one_mode(mode, n, concurrency=20))
        except RuntimeError as exc:
            if "exited before" not in str(exc) or attempt == 2:
                raise
            print(f"{mode}: a port was taken ({exc}); again on fresh ports", file=sys.stderr)
    raise AssertionError("unreachable")


def run(quick: bool = False) -> dict[str, Any]:
    n = 100 if quick else 300
    modes = {mode: _mode(mode, n) for mode in MODES}
    rec = modes["reconcile_only"]["offender_publish_seconds"]
    both = modes["webhooks_and_reconcile"]["offender_publish_seconds"]
    result = {
        "bench": NAME,
        "what": f"a demoted presenter's stale token vs the floor guard while {n} viewers join "
                "(web app join API + a Python SDK LiveKit connection each); baseline: no "
                "webhooks, no reconciliation",
        "quick": quick, "viewers": n, "probe_timeout_s": PROBE_TIMEOUT,
        "modes": modes,
        "reconcile_only_max_s": rec.get("max"),
        "default_p50_s": both.get("p50"),
        "pass": (modes["reconcile_only"]["offenders_never_demoted"] == 0
                 and modes["webhooks_and_reconcile"]["offenders_never_demoted"] == 0
                 and (rec.get("max") or 99) <= 5.0),
        "machine": machine(), "when": now_iso(),
    }
    write_result(NAME, result)
    plot(result, RESULTS / f"{NAME}.png")
    return result


if __name__ == "__main__":
    if sys.argv[1:2] == ["crowd"]:
        web_url, room, count, conc = sys.argv[2:6]
        asyncio.run(crowd(web_url, room, int(count), int(conc)))
    else:
        out = run(quick="--quick" in sys.argv)
        print(json.dumps({k: out[k] for k in ("reconcile_only_max_s", "default_p50_s", "pass")}))
        for mode, r in out["modes"].items():
            print(mode, json.dumps({k: r[k] for k in (
                "viewers", "offender_publish_seconds", "offenders_never_demoted",
                "webhooks_lost_lines", "joins_per_second", "web_app_cpu_seconds")}))
