"""Viewer join → first avatar frame.

Measured in the recorded stack session (bench/e2e.py, ``broadcaster up``) while the
avatar idles: a viewer asks the web app for a token (``POST /api/webinars/demo/join``),
connects to the stage room and waits for the first decoded frame of the bot's
``avatar-video`` track. Baseline, alternating with it: a viewer with a locally minted
token joining the avatar's own source room (no web app, no republisher). Each join is
a fresh client (new identity, new connection). Target: p50 ≤ 700 ms.

Run: ``.venv/bin/python -m bench join_latency [--quick]``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import e2e  # noqa: E402
from bench.figures import RESULTS, machine, now_iso, pyplot, summary, write_result  # noqa: E402

NAME = "join_latency"
TARGET_P50_MS = 700.0


def analyse(run: e2e.StackRun) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for kind in ("stage", "direct"):
        joins = [j for j in run.joins if j.kind == kind]
        out[kind] = {
            "first_frame_ms": summary(j.total_ms for j in joins if j.total_ms is not None),
            "token_ms": summary((j.token_us - j.t0_us) / 1e3 for j in joins),
            "connect_ms": summary((j.connected_us - j.token_us) / 1e3 for j in joins),
            "connected_to_frame_ms": summary((j.first_frame_us - j.connected_us) / 1e3
                                             for j in joins if j.first_frame_us),
            "missing": sum(1 for j in joins if j.first_frame_us is None),
            "first_sizes": sorted({f"{j.first_size[0]}x{j.first_size[1]}"
                                   for j in joins if j.first_size}),
            "samples_ms": [j.total_ms for j in joins],
        }
    stage = out["stage"]["first_frame_ms"]
    return {
        **out,
        "p50_ms": stage.get("p50"),
        "p95_ms": stage.get("p95"),
        "pass": bool(stage.get("n")) and stage["p50"] <= TARGET_P50_MS
        and out["stage"]["missing"] == 0,
    }


def plot(result: dict[str, Any], path: Path) -> None:
    plt = pyplot()
    if plt is None:
        return
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10.5, 4), dpi=100,
                                   gridspec_kw={"width_ratios": [1.2, 1]})
    labels = ("direct", "stage")
    names = {"direct": "direct to avatar room\n(baseline)", "stage": "stage room via web app\n"
             "(token + republished)"}
    for i, kind in enumerate(labels):
        v = [x for x in result[kind]["samples_ms"] if x is not None]
        jitter = np.random.default_rng(i).uniform(-0.12, 0.12, len(v))
        ax1.scatter(np.full(len(v), i) + jitter, v, s=18, alpha=0.8)
        if v:
            ax1.hlines(np.median(v), i - 0.25, i + 0.25, color="k", lw=2)
    ax1.axhline(TARGET_P50_MS, color="tab:red", ls="--", lw=1, label="target p50 700 ms")
    ax1.set_xticks(range(len(labels)), [names[k] for k in labels], fontsize=8)
    ax1.set_ylabel("join → first avatar frame (ms)")
    ax1.set_ylim(0, max(TARGET_P50_MS * 1.15, ax1.get_ylim()[1]))
    ax1.set_title("Each join (bar: median)")
    ax1.legend(fontsize=8)
    parts = ("token_ms", "connect_ms", "connected_to_frame_ms")
    pnames = ("token (HTTP)", "connect (signal + ICE)", "connected → first frame")
    left = np.zeros(2)
    for part, pname in zip(parts, pnames, strict=True):
        vals = np.array([result[k][part].get("p50", 0.0) for k in labels])
        ax2.barh(range(2), vals, left=left, label=pname)
        left += vals
    ax2.set_yticks(range(2), ["direct", "stage"])
    ax2.set_xlabel("ms (medians)")
    ax2.set_title("Where the time goes")
    ax2.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def run(quick: bool = False) -> dict[str, Any]:
    res = analyse(e2e.session(quick))
    result = {
        "bench": NAME,
        "what": "viewer asks the web app to join -> first decoded avatar frame (stage room, "
                "broadcaster up, loopback); baseline: direct join of the avatar's source room",
        "quick": quick,
        "target_p50_ms": TARGET_P50_MS,
        **res,
        "machine": machine(),
        "when": now_iso(),
    }
    write_result(NAME, result)
    plot(result, RESULTS / f"{NAME}.png")
    return result


if __name__ == "__main__":
    e2e.main(run, __doc__, ("p50_ms", "p95_ms", "pass"))
