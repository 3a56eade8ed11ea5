"""Frame delivery through the republisher over a long run (10 minutes; quick: 60 s).

Same set-up as bench/republish_latency.py (source room → relay with the real
``LiveKitRepublisher`` → stage room, a viewer in each). Frames are counted by their
stamps, not by callbacks (the receive side may hand out a frame twice):

- republished viewer: distinct republisher ``frame_id`` s received / ids the
  republisher captured in the window (gaps in the sequence are lost frames), and the
  distinct-frame rate vs the 25 fps the avatar sends;
- end to end: distinct *source* frames that reached the republished viewer / source
  frames sent (the republisher may drop a frame that arrives early, or repeat one);
- baseline: the direct viewer of the source room, counted the same way;
- republish path only: of the source frames the direct viewer received, the share
  the republished viewer received too (a loss both viewers share happened before the
  republisher: CPU starvation of the source or of the SFU, which the machine's load
  average, plotted alongside, usually explains).

Targets: received/sent ≥ 99.9 %, fps within 1 % of the source's.

Run: ``.venv/bin/python -m bench frame_delivery [--quick]``.
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

from bench.figures import RESULTS, machine, now_iso, pyplot, write_result  # noqa: E402
from bench.receiver import FPS, VideoRecord  # noqa: E402
from bench.relay import RelayRun, relay_session  # noqa: E402

NAME = "frame_delivery"
TARGET_RATIO = 0.999
TARGET_FPS_TOLERANCE = 0.01


def _first_by_id(records: list[VideoRecord], key: str) -> dict[int, int]:
    out: dict[int, int] = {}
    for r in records:
        k = getattr(r, key)
        if k and k not in out:
            out[k] = r.recv_us
    return out


def _delivery(first: dict[int, int], t0: int, t1: int) -> dict[str, Any]:
    """Sequence-number delivery of the ids first received in [t0, t1]."""
    ids = sorted(i for i, t in first.items() if t0 <= t <= t1)
    if len(ids) < 2:
        return {"received": len(ids), "expected": 0, "ratio": 0.0, "fps": 0.0}
    expected = ids[-1] - ids[0] + 1
    times = sorted(first[i] for i in ids)
    gaps = np.diff(times) / 1e3
    span = (times[-1] - times[0]) / 1e6
    return {
        "received": len(ids),
        "expected": expected,
        "lost": expected - len(ids),
        "ratio": len(ids) / expected,
        "fps": (len(ids) - 1) / span if span > 0 else 0.0,
        "max_gap_ms": float(gaps.max()) if gaps.size else 0.0,
        "gaps_over_100ms": int((gaps > 100).sum()),
    }


def analyse(run: RelayRun) -> dict[str, Any]:
    t0, t1 = run.started_us, run.ended_us
    direct = _delivery(_first_by_id(run.direct.video, "frame_id"), t0, t1)
    rep_ids = _first_by_id(run.republished.video, "frame_id")
    republished = _delivery(rep_ids, t0, t1)
    # end to end: which source frames (by source id) reached the republished viewer
    src_first: dict[int, int] = {}
    for r in run.republished.video:
        src = run.entries.get(r.user_ts)
        if src is not None and src[1] not in src_first:
            src_first[src[1]] = r.recv_us
    end_to_end = _delivery(src_first, t0, t1)
    # what the republish path itself lost: source frames the direct viewer got and the
    # republished viewer did not (losses both viewers share come from the source side)
    direct_src = {i for i, t in _first_by_id(run.direct.video, "frame_id").items()
                  if t0 <= t <= t1}
    both = direct_src & set(src_first)
    relative = len(both) / len(direct_src) if direct_src else 0.0
    sizes: dict[str, int] = {}
    for r in run.republished.video:
        if t0 <= r.recv_us <= t1:
            key = f"{r.width}x{r.height}"
            sizes[key] = sizes.get(key, 0) + 1
    fps_err = abs(republished["fps"] / FPS - 1) if republished["fps"] else 1.0
    ok = (republished["ratio"] >= TARGET_RATIO and end_to_end["ratio"] >= TARGET_RATIO
          and fps_err <= TARGET_FPS_TOLERANCE)
    return {
        "republished": republished,
        "end_to_end_source_frames": end_to_end,
        "direct_baseline": direct,
        "ratio": republished["ratio"],
        "end_to_end_ratio": end_to_end["ratio"],
        "relative_to_direct_ratio": relative,
        "load_avg": {"mean": float(np.mean(run.loads)) if run.loads else None,
                     "max": float(np.max(run.loads)) if run.loads else None},
        "fps": republished["fps"],
        "fps_error": fps_err,
        "republished_sizes": sizes,
        "pass": ok,
        "_timeline": {
            "republished": _per_second(rep_ids, t0, t1),
            "direct": _per_second(_first_by_id(run.direct.video, "frame_id"), t0, t1),
            "load": run.loads,
        },
    }


def _per_second(first: dict[int, int], t0: int, t1: int) -> list[int]:
    n = max(1, int((t1 - t0) / 1e6))
    counts = [0] * n
    for t in first.values():
        k = (t - t0) // 1_000_000
        if 0 <= k < n:
            counts[k] += 1
    return counts


def plot(result: dict[str, Any], timeline: dict[str, list[int]], path: Path) -> None:
    plt = pyplot()
    if plt is None:
        return
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2), dpi=100,
                                   gridspec_kw={"width_ratios": [3, 1.3]})
    for key, label, style in (("direct", "direct (source room)", "-"),
                              ("republished", "republished", "--")):
        ax1.plot(timeline[key], style, lw=1.2, label=label)
    ax1.axhspan(FPS * 0.99, FPS * 1.01, color="tab:green", alpha=0.15, label="25 fps ± 1 %")
    ax1.set_ylim(FPS - 6, FPS + 6)
    if timeline.get("load"):
        twin = ax1.twinx()
        twin.plot(timeline["load"], color="0.6", lw=0.8, label="load average (1 min)")
        twin.set_ylabel("load average (other work)", color="0.45")
        twin.set_ylim(0, max(4.0, max(timeline["load"]) * 1.1))
        twin.tick_params(axis="y", colors="0.45")
    ax1.set_xlabel("seconds")
    ax1.set_ylabel("distinct frames received per second")
    ax1.set_title(f"Frames at the viewers over {result['seconds']:.0f} s")
    ax1.legend(fontsize=8, loc="lower left")
    ax1.grid(alpha=0.3)
    labels = ["direct", "republished\n(ids)", "end to end\n(source)", "republish\npath only"]
    keys = ("direct_baseline", "republished", "end_to_end_source_frames")
    ratios = [100 * result[k]["ratio"] for k in keys] + [100 * result["relative_to_direct_ratio"]]
    bars = ax2.bar(labels, ratios, color=["tab:blue", "tab:orange", "tab:purple", "tab:green"])
    for b, v in zip(bars, ratios, strict=True):
        ax2.text(b.get_x() + b.get_width() / 2, v, f"{v:.3f}%", ha="center", va="bottom",
                 fontsize=8)
    ax2.axhline(100 * TARGET_RATIO, color="tab:red", ls="--", lw=1, label="target 99.9 %")
    ax2.set_ylim(min(99.0, min(ratios) - 1.0), 100.2)
    ax2.set_ylabel("received / sent (%)")
    ax2.set_title("Delivery")
    ax2.tick_params(axis="x", labelsize=7)
    ax2.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def run(quick: bool = False, seconds: float | None = None) -> dict[str, Any]:
    secs = seconds or (60.0 if quick else 600.0)
    relay = asyncio.run(relay_session(secs))
    res = analyse(relay)
    timeline = res.pop("_timeline")
    result = {
        "bench": NAME,
        "what": "distinct stamped frames received / sent, and fps, at a viewer of the "
                "republished track vs a direct viewer of the source (720p25, loopback)",
        "seconds": secs,
        "quick": quick,
        "targets": {"ratio": TARGET_RATIO, "fps": FPS, "fps_tolerance": TARGET_FPS_TOLERANCE},
        **res,
        "relay_stats": relay.relay_stats,
        "republish_encoding": relay.encoding,
        "machine": machine(),
        "when": now_iso(),
    }
    write_result(NAME, result)
    plot(result, timeline, RESULTS / f"{NAME}.png")
    return result


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--seconds", type=float)
    a = ap.parse_args()
    r = run(a.quick, a.seconds)
    print({k: r[k] for k in ("ratio", "end_to_end_ratio", "fps", "pass")})
