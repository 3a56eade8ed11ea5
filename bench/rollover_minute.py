"""Session rollover at the real proportions (halved): 30-s sessions, a 7.5-s lead.

bench/rollover.py's second configuration (``CONFIGS["minute"]``): answers keep their
real length while the sessions are only accelerated 2x, so, unlike the 12x stress run,
most answers end well inside a session and the next session has its lead to find a
pause. Results: bench/results/rollover_minute.json and .png.
Run: ``.venv/bin/python -m bench.rollover_minute`` (``--quick``: 6 sessions).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import rollover  # noqa: E402


def run(quick: bool = False) -> dict[str, Any]:
    return rollover.run(quick, config="minute")


if __name__ == "__main__":
    res = run(quick="--quick" in sys.argv)
    print({k: v for k, v in res.items() if k not in ("windows", "switches", "answers")})
