"""Avatar service memory over rounds of session requests (issue 11, finding 8).

The local avatar service runs as its own process against a local livekit-server; each
round makes 30 sessions one after the other, each created, started (its renderer
drawing 720p frames, its publisher in a real LiveKit room) and stopped, as a
restarting bot would. Measured: the service's resident memory after each round.
Baselines, in the same script: the service's memory when idle before the first round,
and the same rounds against another commit's avatar service (``--compare <commit>``;
by default 4ccb21c, main before the fix, which kept every stopped session's renderer
and publisher for an hour).

Run: ``.venv/bin/python -m bench avatar_sessions [--quick]``, or
``.venv/bin/python -m bench.avatar_sessions --compare 4ccb21c``.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.figures import RESULTS, machine, now_iso, pyplot, write_result  # noqa: E402
from bench.servers import fresh_settings, livekit_server, stop_process  # noqa: E402

NAME = "avatar_sessions"
#: main before issue 11's fix (stopped sessions kept their renderer and publisher)
DEFAULT_COMPARE = "4ccb21c"
BODY = {"mode": "LITE", "avatar_id": "local-presenter",
        "video_settings": {"encoding": "VP8", "quality": "high"}}


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def _checkout(commit: str) -> Path:
    """``commit``'s tree in a temporary directory (git archive; the repo is untouched)."""
    where = Path(tempfile.mkdtemp(prefix=f"avatar-{commit}-"))
    tar = subprocess.run(["git", "archive", commit], cwd=ROOT, capture_output=True, check=True)
    archive = where / "tree.tar"
    archive.write_bytes(tar.stdout)
    with tarfile.open(archive) as t:
        t.extractall(where, filter="data")
    archive.unlink()
    return where


async def rounds(code: Path, n_rounds: int, per_round: int) -> dict[str, Any]:
    """Start the avatar service from ``code`` and run the rounds; RSS after each."""
    import aiohttp

    from broadcaster.netutil import wait_http_ok

    s = fresh_settings(avatar_max_sessions=4)
    async with livekit_server(s):
        env = {**os.environ, **s.child_env(), "PYTHONUNBUFFERED": "1",
               "PYTHONPATH": str(code)}
        log = open(Path(s.state_dir) / "avatar.log", "wb")  # noqa: SIM115
        proc = subprocess.Popen([sys.executable, "-m", "broadcaster.avatar"], cwd=code,
                                env=env, stdout=log, stderr=subprocess.STDOUT)
        base = f"http://{s.avatar_host}:{s.avatar_port}"
        key = {"X-API-KEY": s.avatar_api_key}
        out: dict[str, Any] = {"rss_mb": [], "seconds": [], "failed": 0}
        try:
            await wait_http_ok(base + "/healthz", timeout=30)
            await asyncio.sleep(2.0)
            out["idle_rss_mb"] = rss_mb(proc.pid)
            async with aiohttp.ClientSession(base) as http:
                for _ in range(n_rounds):
                    t0 = time.monotonic()
                    for _ in range(per_round):
                        async with http.post("/v1/sessions/token", json=BODY, headers=key) as r:
                            token = (await r.json())["data"]["session_token"]
                        bearer = {"Authorization": f"Bearer {token}"}
                        async with http.post("/v1/sessions/start", headers=bearer) as r:
                            out["failed"] += r.status != 200
                        async with http.post("/v1/sessions/stop", headers=bearer) as r:
                            await r.read()
                    out["seconds"].append(round(time.monotonic() - t0, 1))
                    await asyncio.sleep(3.0)  # teardown finishes (rooms, encoders)
                    out["rss_mb"].append(round(rss_mb(proc.pid), 1))
        finally:
            await stop_process(proc)
            log.close()
    return out


def plot(result: dict[str, Any], path: Path) -> None:
    plt = pyplot()
    if plt is None:
        return
    fig, ax = plt.subplots(figsize=(7.5, 4), dpi=100)
    per = result["sessions_per_round"]
    for key, label, color in (("after", "this code", "tab:green"),
                              ("before", f"before ({result.get('compare')})", "tab:red")):
        r = result.get(key)
        if not r:
            continue
        xs = [0] + [per * (i + 1) for i in range(len(r["rss_mb"]))]
        ax.plot(xs, [r["idle_rss_mb"], *r["rss_mb"]], "o-", color=color, label=label)
    ax.set_xlabel("avatar sessions created, started and stopped")
    ax.set_ylabel("avatar service RSS (MB)")
    ax.set_ylim(bottom=0)
    ax.set_title("Avatar service memory after each round of sessions")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _have(commit: str) -> bool:
    return subprocess.run(["git", "cat-file", "-e", f"{commit}^{{commit}}"], cwd=ROOT,
                          capture_output=True).returncode == 0


def run(quick: bool = False, compare: str | None = DEFAULT_COMPARE) -> dict[str, Any]:
    n_rounds, per = (2, 10) if quick else (3, 30)
    if compare and not _have(compare):
        compare = None
    after = asyncio.run(rounds(ROOT, n_rounds, per))
    before = asyncio.run(rounds(_checkout(compare), n_rounds, per)) if compare else None
    growth = after["rss_mb"][-1] - after["rss_mb"][0]
    result = {
        "bench": NAME,
        "what": f"avatar service RSS after each of {n_rounds} rounds of {per} sessions "
                "(created, started, stopped); baseline: its idle RSS"
                + (f" and the same rounds on {compare}" if compare else ""),
        "quick": quick, "rounds": n_rounds, "sessions_per_round": per,
        "after": after, "before": before, "compare": compare,
        "growth_after_first_round_mb": round(growth, 1),
        "pass": after["failed"] == 0 and growth <= 20.0,
        "machine": machine(), "when": now_iso(),
    }
    write_result(NAME, result)
    plot(result, RESULTS / f"{NAME}.png")
    return result


if __name__ == "__main__":
    compare = (sys.argv[sys.argv.index("--compare") + 1] if "--compare" in sys.argv
               else DEFAULT_COMPARE)
    res = run(quick="--quick" in sys.argv, compare=compare)
    print({k: res[k] for k in ("growth_after_first_round_mb", "pass")},
          "after", res["after"]["idle_rss_mb"], res["after"]["rss_mb"],
          "before", res["before"] and (res["before"]["idle_rss_mb"], res["before"]["rss_mb"]))
