"""Barge-in: the presenter talks over the avatar; how soon a viewer stops hearing it.

From the recorded stack session (bench/e2e.py): the presenter asks for the agenda (a
long answer), and two seconds into it, just as the avatar begins a phrase, asks
another question (Debian's flite). Measured from the moment her first sample leaves
the microphone's queue to the first 10 ms of the avatar's audio at the viewer after
which it stays below -44.6 dBFS (the mouth-opening loudness) for 0.6 s. A trial only
counts if the avatar was voiced in the 100 ms before her onset (mid-phrase, not a
pause). Target (issue 4): ≤ 300 ms at a viewer of the stage.

Baseline, same trials: a viewer of the avatar's own source room. The avatar stops
when the bot's interruption reaches it (pipecat's ``InterruptionFrame`` →
``agent.interrupt``), which is all a pipecat pipeline has; the stage is silenced
earlier by the republisher (the VAD's first confident window, docs/speech.md).

Run: ``.venv/bin/python -m bench barge_in [--quick]``.
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
from bench.receiver import Receiver  # noqa: E402

NAME = "barge_in"
TARGET_MS = 300.0
QUIET_US = 600_000
MID_PHRASE_US = 100_000
MID_PHRASE_SHARE = 0.8


def silenced_at(rx: Receiver, after_us: int) -> int | None:
    """First block >= ``after_us`` that begins QUIET_US below the onset loudness."""
    blocks = [a for a in rx.audio if a.recv_us >= after_us]
    for i, a in enumerate(blocks):
        if a.rms >= e2e.ONSET_RMS:
            continue
        end = a.recv_us + QUIET_US
        if blocks[-1].recv_us < end:
            return None
        if all(b.rms < e2e.ONSET_RMS for b in blocks[i:] if b.recv_us < end):
            return a.recv_us
    return None


def voiced_share(rx: Receiver, t0_us: int, t1_us: int) -> float:
    blocks = [a for a in rx.audio if t0_us <= a.recv_us < t1_us]
    return sum(a.rms >= e2e.ONSET_RMS for a in blocks) / len(blocks) if blocks else 0.0


def analyse(run: e2e.StackRun) -> dict[str, Any]:
    trials = []
    for b in run.barge_ins:
        onset = b.speech_start_us
        row: dict[str, Any] = {"onset_us": onset}
        for key, rx in (("stage", run.stage), ("direct", run.direct)):
            stop = silenced_at(rx, onset)
            row[f"{key}_ms"] = None if stop is None else (stop - onset) / 1e3
            row[f"{key}_voiced_before"] = voiced_share(rx, onset - MID_PHRASE_US, onset)
        row["counted"] = (row["stage_voiced_before"] >= MID_PHRASE_SHARE
                          and row["stage_ms"] is not None)
        trials.append(row)
    counted = [t for t in trials if t["counted"]]
    stage = summary(t["stage_ms"] for t in counted)
    direct = summary(t["direct_ms"] for t in counted if t["direct_ms"] is not None)
    worst = stage.get("max")
    return {
        "trials": trials, "stage_ms": stage, "direct_ms": direct,
        "pass": bool(counted) and worst is not None and worst <= TARGET_MS,
    }


def plot(result: dict[str, Any], path: Path) -> None:
    plt = pyplot()
    if plt is None:
        return
    rows = [t for t in result["trials"] if t["counted"]]
    fig, ax = plt.subplots(figsize=(7, 3.4))
    for y, key, label in ((2, "stage_ms", "stage viewer (broadcaster)"),
                          (1, "direct_ms", "avatar's own room (interrupt only)")):
        values = [t[key] for t in rows if t[key] is not None]
        ax.scatter(values, np.full(len(values), y), s=40, alpha=0.8, label=label)
    ax.axvline(TARGET_MS, color="crimson", linestyle="--", linewidth=1, label="target")
    ax.set_yticks([1, 2], ["avatar room", "stage"])
    ax.set_ylim(0.5, 2.5)
    ax.set_xlim(0, TARGET_MS * 1.15)
    ax.set_xlabel("presenter's onset → avatar silent at the viewer (ms)")
    ax.set_title(f"Barge-in: stage p50 {result['stage_ms'].get('p50', float('nan')):.0f} ms, "
                 f"worst {result['stage_ms'].get('max', float('nan')):.0f} ms")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def run(quick: bool = False) -> dict[str, Any]:
    res = analyse(e2e.session(quick))
    result = {
        "bench": NAME,
        "what": "presenter talks over the avatar mid-phrase -> avatar's audio silent at a "
                "stage viewer; baseline: a viewer of the avatar's own room",
        "quick": quick, "target_ms": TARGET_MS, **res,
        "machine": machine(), "when": now_iso(),
    }
    write_result(NAME, result)
    plot(result, RESULTS / f"{NAME}.png")
    return result


if __name__ == "__main__":
    e2e.main(run, __doc__, ("stage_ms", "direct_ms", "pass"))
