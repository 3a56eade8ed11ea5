"""What a benchmark keeps: statistics, the machine it ran on, JSON results, plots, progress."""

from __future__ import annotations

import asyncio
import json
import os
import platform
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

import bench.process_env  # noqa: F401
from bench.provenance import provenance

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"


def summary(values: Iterable[float]) -> dict[str, float]:
    a = np.asarray(list(values), dtype=float)
    if a.size == 0:
        return {"n": 0}
    return {
        "n": int(a.size),
        "p50": float(np.percentile(a, 50)),
        "p95": float(np.percentile(a, 95)),
        "mean": float(a.mean()),
        "min": float(a.min()),
        "max": float(a.max()),
    }


def machine() -> dict[str, Any]:
    return {"python": platform.python_version(), "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "loadavg_1m": round(os.getloadavg()[0], 2)}  # others' load skews the figures


def now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def write_result(name: str, result: dict[str, Any]) -> Path:
    """Write ``bench/results/<name>.json``, stamped with what it ran on (``provenance``)."""
    for key, value in provenance().items():
        result.setdefault(key, value)
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(result, indent=2, default=_json_default) + "\n")
    return path


def _json_default(o: Any) -> Any:
    if isinstance(o, np.integer | np.floating):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON serialisable: {type(o)}")


def pyplot() -> Any:
    """matplotlib.pyplot on the Agg backend, or None when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed (pip install '.[bench]'): no plot", file=sys.stderr)
        return None
    return plt


def progress(total: float, desc: str) -> Any:
    """A tqdm bar (seconds or steps), or a no-op stand-in without tqdm."""
    try:
        from tqdm import tqdm

        return tqdm(total=total, desc=desc, leave=False, unit="step")
    except ImportError:
        class _Null:
            def update(self, n: float = 1) -> None: ...
            def close(self) -> None: ...
        return _Null()


async def tick_progress(bar: Any, seconds: float, loads: list[float] | None = None) -> None:
    """Advance ``bar`` by one per second for ``seconds``, then close it; append the
    1-minute load average each second to ``loads`` (other work on the machine)."""
    try:
        t0 = time.monotonic()
        done = 0
        while done < int(seconds):
            await asyncio.sleep(max(0.0, t0 + done + 1 - time.monotonic()))
            bar.update(1)
            if loads is not None:
                loads.append(os.getloadavg()[0])
            done += 1
    finally:
        bar.close()
