"""Latency the republisher adds, at a real receiving client, vs subscribing directly
to the avatar's source room.

Set-up (bench/relay.py ``relay_session``), all on one livekit-server on loopback:

    source (avatar renderer, 720p25, 1 VP8 layer) ──► room "source" ──► direct viewer
                                                        │
                          relay = the bot's video path: decode → I420AvatarFrame
                          → pipecat pipeline → LiveKitRepublisher (the bot's encoding:
                          RepublishEncoding.from_settings, 720p25 VP8 1.7 Mbps)
                                                        ▼
                                                 room "stage" ──► republished viewer

Every source frame carries LiveKit frame metadata (``user_timestamp`` = capture wall
clock); the republisher stamps its own (``user_timestamp`` = entry wall clock) and the
relay logs which source frame each entry carried. Both viewers run in this process
with the same clock, so per source frame:

    added latency = (republished viewer receives it) − (direct viewer receives it)

which is the republish hop plus a second encode → SFU → decode. The direct viewer is
the baseline, measured at the same moments. Targets: p50 ≤ 40 ms, p95 ≤ 80 ms.

Run: ``.venv/bin/python -m bench republish_latency [--quick]``.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.figures import RESULTS, machine, now_iso, pyplot, summary, write_result  # noqa: E402
from bench.relay import RelayRun, relay_session  # noqa: E402

NAME = "republish_latency"
TARGET_P50_MS = 40.0
TARGET_P95_MS = 80.0


def first_receipts(run: RelayRun) -> tuple[dict[int, int], dict[int, int]]:
    """source capture ts -> first receive time (µs), at the direct and republished viewer."""
    direct: dict[int, int] = {}
    for r in run.direct.video:
        if r.user_ts and r.user_ts not in direct:
            direct[r.user_ts] = r.recv_us
    republished: dict[int, int] = {}
    for r in run.republished.video:
        src = run.entries.get(r.user_ts)
        if src is not None and src[0] not in republished:
            republished[src[0]] = r.recv_us
    return direct, republished


def analyse(run: RelayRun) -> dict[str, Any]:
    direct, rep = first_receipts(run)
    window = [ts for ts in direct if run.started_us <= ts <= run.ended_us]
    common = sorted(ts for ts in window if ts in rep)
    if not common:
        raise RuntimeError(
            f"no source frame reached both viewers in the window: direct viewer "
            f"{len(run.direct.video)} frames ({len(window)} in the window), republished "
            f"viewer {len(run.republished.video)} frames, relay entries {len(run.entries)}, "
            f"republished frames tied to a source frame {len(rep)}")
    added = [(rep[ts] - direct[ts]) / 1e3 for ts in common]
    direct_age = [(direct[ts] - ts) / 1e3 for ts in common]
    rep_age = [(rep[ts] - ts) / 1e3 for ts in common]
    a = summary(added)
    return {
        "added_ms": a,
        "direct_age_ms": summary(direct_age),
        "republished_age_ms": summary(rep_age),
        "frames_compared": len(common),
        "source_frames_in_window": len(window),
        "p50_ms": a.get("p50"),
        "p95_ms": a.get("p95"),
        "pass": a["p50"] <= TARGET_P50_MS and a["p95"] <= TARGET_P95_MS,
        "_series": {"t": [(ts - common[0]) / 1e6 for ts in common] if common else [],
                    "added": added, "direct": direct_age, "republished": rep_age},
    }


def plot(result: dict[str, Any], series: dict[str, list[float]], path: Path) -> None:
    plt = pyplot()
    if plt is None or not series["added"]:
        return
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2), dpi=100)
    for key, label in (("direct", "direct (source room)"), ("republished", "republished")):
        v = np.sort(series[key])
        ax1.plot(v, np.linspace(0, 1, v.size), label=label)
    ax1.set_xlabel("frame age at the viewer (ms since source capture)")
    ax1.set_ylabel("share of frames")
    ax1.set_title("Frame age at a receiving client")
    ax1.grid(alpha=0.3)
    ax1.legend(fontsize=8)
    added = np.asarray(series["added"])
    ax2.hist(added, bins=60, color="tab:purple", alpha=0.8)
    a = result["added_ms"]
    ax2.axvline(a["p50"], color="k", lw=1, label=f"p50 {a['p50']:.1f} ms")
    ax2.axvline(a["p95"], color="k", ls=":", lw=1, label=f"p95 {a['p95']:.1f} ms")
    ax2.axvline(TARGET_P50_MS, color="tab:red", ls="--", lw=1,
                label=f"target p50 {TARGET_P50_MS:g}")
    ax2.axvline(TARGET_P95_MS, color="tab:red", ls="-.", lw=1,
                label=f"target p95 {TARGET_P95_MS:g}")
    ax2.set_xlabel("added latency per frame (ms): republished − direct")
    ax2.set_ylabel("frames")
    ax2.set_title(f"Republish added latency ({result['frames_compared']} frames)")
    ax2.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def run(quick: bool = False, seconds: float | None = None) -> dict[str, Any]:
    secs = seconds or (15.0 if quick else 60.0)
    relay = asyncio.run(relay_session(secs))
    res = analyse(relay)
    series = res.pop("_series")
    result = {
        "bench": NAME,
        "what": "added latency of the republish path at a real viewer vs a direct "
                "subscriber of the avatar's source room (720p25, loopback)",
        "seconds": secs,
        "targets": {"p50_ms": TARGET_P50_MS, "p95_ms": TARGET_P95_MS},
        **res,
        "relay_stats": relay.relay_stats,
        "republish_encoding": relay.encoding,
        "machine": machine(),
        "when": now_iso(),
    }
    write_result(NAME, result)
    plot(result, series, RESULTS / f"{NAME}.png")
    return result


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--seconds", type=float)
    a = ap.parse_args()
    r = run(a.quick, a.seconds)
    print({k: r[k] for k in ("p50_ms", "p95_ms", "frames_compared", "pass")})
