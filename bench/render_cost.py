"""CPU cost of the avatar face renderer per 720p frame, against a plain frame copy.

Why: the local avatar service publishes 25 fps next to the bot on a small
machine; the renderer's budget is 3 ms CPU per 720p frame. The baseline is the
cheapest thing any frame source must do, one ``np.copyto`` of a 720p I420
buffer (1.38 MB), measured in the same process so the ratio is comparable
across machines.

Run: ``.venv/bin/python bench/render_cost.py [--frames 300]``. Writes
``bench/results/render_cost.json`` and ``bench/results/render_cost.png``.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.provenance import provenance  # noqa: E402
from broadcaster.avatar.renderer import FaceRenderer  # noqa: E402

RESULTS = ROOT / "bench" / "results"
BUDGET_MS = 3.0
FPS = 25


def _stats(ms: list[float]) -> dict[str, float]:
    a = np.asarray(ms)
    return {
        "p50_ms": float(np.percentile(a, 50)),
        "mean_ms": float(a.mean()),
        "p95_ms": float(np.percentile(a, 95)),
        "max_ms": float(a.max()),
    }


def _per_call(fn: Callable[[int], object], n: int) -> list[float]:
    """CPU milliseconds of each call (process_time), after a short warm-up."""
    for i in range(5):
        fn(i)
    out = []
    for i in range(n):
        t0 = time.process_time()
        fn(i)
        out.append((time.process_time() - t0) * 1e3)
    return out


def _script(n: int, seed: int = 0) -> list[tuple[float, float, str]]:
    """(t, mouth, state) per frame: idle, then speech-like mouth motion, then listening."""
    rng = np.random.default_rng(seed)
    frames = []
    for i in range(n):
        t = i / FPS
        phase = 3 * i // n
        if phase == 1:
            env = 0.5 + 0.5 * np.sin(2 * np.pi * t * 3.7)
            mouth = float(np.clip(env * (0.6 + 0.4 * rng.random()), 0.0, 1.0))
            frames.append((t, mouth, "speaking"))
        else:
            frames.append((t, 0.0, "idle" if phase == 0 else "listening"))
    return frames


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=300, help="frames per case (at 25 fps)")
    args = ap.parse_args()
    n = args.frames

    src = np.random.default_rng(0).integers(0, 256, 1280 * 720 * 3 // 2, dtype=np.uint8)
    dst = np.empty_like(src)
    baseline = _stats(_per_call(lambda i: np.copyto(dst, src), n))

    cases: dict[str, dict[str, object]] = {}
    samples: dict[str, list[float]] = {}
    for w, h, name in [(1280, 720, "landscape"), (720, 1280, "portrait")]:
        t0 = time.process_time()
        r = FaceRenderer(w, h, seed=0)
        init_ms = (time.process_time() - t0) * 1e3
        script = _script(n)
        out = np.empty(w * h * 3 // 2, np.uint8)
        render = _per_call(lambda i, r=r, s=script: r.render(*s[i]), n)
        full = _per_call(lambda i, r=r, s=script, o=out: r.render_into(o, *s[i]), n)
        for kind, ms in (("render", render), ("render_into_full", full)):
            key = f"{name}_{kind}"
            st = _stats(ms)
            cases[key] = {
                **st,
                "size": f"{w}x{h}",
                "ratio_to_baseline_mean": st["mean_ms"] / baseline["mean_ms"],
                "ratio_to_baseline_p50": st["p50_ms"] / baseline["p50_ms"],
                "within_budget_p95": st["p95_ms"] <= BUDGET_MS,
            }
            samples[key] = ms
        cases[f"{name}_init"] = {"init_ms": init_ms, "size": f"{w}x{h}"}

    result = {
        "what": "CPU ms per frame (time.process_time), FaceRenderer vs np.copyto of 720p I420",
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "frames_per_case": n,
        "budget_ms": BUDGET_MS,
        "baseline_copyto_720p_i420": baseline,
        "cases": cases,
        "machine": {
            "python": platform.python_version(),
            "numpy": np.__version__,
            "cpu": platform.processor() or platform.machine(),
        },
        "notes": "render: reused buffer, full window copy only when pose/offset changes; "
        "render_into_full: worst case, whole frame painted every call",
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    result.update(provenance())
    (RESULTS / "render_cost.json").write_text(json.dumps(result, indent=2) + "\n")

    print(
        f"baseline np.copyto 720p I420: p50 {baseline['p50_ms']:.3f}  "
        f"mean {baseline['mean_ms']:.3f}  p95 {baseline['p95_ms']:.3f} ms"
    )
    for key, c in cases.items():
        if "init_ms" in c:
            print(f"{key:28s} {c['init_ms']:.0f} ms once")
        else:
            print(
                f"{key:28s} p50 {c['p50_ms']:.3f}  mean {c['mean_ms']:.3f}  "
                f"p95 {c['p95_ms']:.3f} ms  x{c['ratio_to_baseline_p50']:.2f} of baseline (p50)"
            )
    _plot(baseline, samples)


def _plot(baseline: dict[str, float], samples: dict[str, list[float]]) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed (pip install '.[bench]'): skipped the plot")
        return
    labels = ["copyto\nbaseline", *(k.replace("_", "\n", 1) for k in samples)]
    p50 = [baseline["p50_ms"], *(float(np.percentile(v, 50)) for v in samples.values())]
    p95 = [baseline["p95_ms"], *(float(np.percentile(v, 95)) for v in samples.values())]
    x = np.arange(len(labels))
    fig, ax = plt.subplots(figsize=(8, 4.2), dpi=100)
    ax.bar(x - 0.2, p50, 0.4, label="p50")
    ax.bar(x + 0.2, p95, 0.4, label="p95")
    ax.axhline(BUDGET_MS, color="tab:red", ls="--", lw=1, label=f"budget {BUDGET_MS:g} ms")
    ax.set_xticks(x, labels, fontsize=8)
    ax.set_ylabel("CPU ms per frame")
    ax.set_yscale("log")
    ax.set_title("FaceRenderer CPU per frame (process_time)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(RESULTS / "render_cost.png")
    print(f"wrote {RESULTS / 'render_cost.json'} and {RESULTS / 'render_cost.png'}")


if __name__ == "__main__":
    main()
