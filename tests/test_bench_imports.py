"""Every benchmark module imports: a bench is run rarely, so a helper moved or renamed
elsewhere (bench/harness.py was split by subject) would otherwise break it silently."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_bench_module_imports() -> None:
    names = sorted(p.stem for p in (ROOT / "bench").glob("*.py") if p.stem != "__main__")
    assert len(names) > 20
    # one fresh interpreter (benches set process-wide environment on import)
    code = "import importlib, sys\nfor n in sys.argv[1:]: importlib.import_module('bench.' + n)"
    done = subprocess.run([sys.executable, "-c", code, *names], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
