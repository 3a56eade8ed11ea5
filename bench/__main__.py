"""``python -m bench [--quick] [names...]``: run the benchmarks, then write docs/benchmarks.md.

Each benchmark module has ``run(quick: bool = False) -> dict`` and writes
``bench/results/<name>.json`` and ``<name>.png`` (render_cost is run as a script).
Benchmarks run in child processes, one per group, so that process-wide state
(glibc malloc settings, the LiveKit SDK's runtime) never leaks from one into the
next; the three end-to-end benches share one group because they analyse one
recorded ``broadcaster up`` session (bench/e2e.py). Each child's output goes to
``bench/results/logs/<group>.log``; the bar shows which group runs.

``--report`` only rewrites docs/benchmarks.md from the JSON files already there.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.report import write_report  # noqa: E402

RESULTS = ROOT / "bench" / "results"
#: group -> benches, in run order (each group is one child process)
GROUPS: dict[str, tuple[str, ...]] = {
    "conversation": ("conversation",),
    "llm_answer": ("llm_answer",),
    "render_cost": ("render_cost",),
    "republish_hop": ("republish_hop",),
    "republish_cpu": ("republish_cpu",),
    "republish_latency": ("republish_latency",),
    "frame_delivery": ("frame_delivery",),
    "stt_speculation": ("stt_speculation",),
    "e2e": ("speech_latency", "join_latency", "lipsync", "barge_in", "caption_sync"),
    "capacity": ("capacity",),
    "layer_cost": ("layer_cost",),
    "weak_link": ("weak_link",),
    "encode_once": ("encode_once",),
    "reconcile_storm": ("reconcile_storm",),
    "join_storm": ("join_storm",),
    "node_loss": ("node_loss",),
    "avatar_sessions": ("avatar_sessions",),
    "faults": ("faults", "fault_matrix"),
    "rollover": ("rollover", "rollover_minute"),
    "soak": ("soak",),
}
ALL = tuple(b for g in GROUPS.values() for b in g)
#: rough minutes per group (quick, full), for the progress bar's weights
MINUTES = {"conversation": (0.1, 0.2), "llm_answer": (1, 1.5), "render_cost": (0.2, 0.5),
           "republish_hop": (1, 2), "republish_cpu": (1, 2.5),
           "republish_latency": (0.6, 1.3), "frame_delivery": (1.3, 10.5),
           "stt_speculation": (1, 1.7), "e2e": (3.5, 6), "capacity": (6, 15),
           "layer_cost": (1.5, 5), "weak_link": (1.5, 2.5), "encode_once": (1.5, 4),
           "reconcile_storm": (1.5, 6.5), "join_storm": (1, 1.5),
           "node_loss": (2, 3),
           "avatar_sessions": (1, 4), "faults": (17, 23),
           "rollover": (4, 13), "soak": (5, 32)}


def _child_code(benches: tuple[str, ...], quick: bool) -> str:
    lines = ["import importlib, sys", f"sys.path.insert(0, {str(ROOT)!r})"]
    for name in benches:
        if name == "render_cost":
            frames = 100 if quick else 300
            lines.append(f"sys.argv = ['render_cost', '--frames', '{frames}']")
            lines.append("importlib.import_module('bench.render_cost').main()")
        else:
            lines.append(f"print('== {name}', flush=True)")
            lines.append(f"importlib.import_module('bench.{name}').run(quick={quick})")
    return "\n".join(lines)


def available(name: str) -> bool:
    return (ROOT / "bench" / f"{name}.py").exists()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true",
                    help="shorter runs (frame delivery 60 s instead of 10 min, fewer turns)")
    ap.add_argument("--report", action="store_true", help="only rewrite docs/benchmarks.md")
    ap.add_argument("names", nargs="*", metavar="NAME", help=f"benches to run: {', '.join(ALL)}")
    args = ap.parse_args(argv)
    unknown = [n for n in args.names if n not in ALL]
    if unknown:
        ap.error(f"unknown bench {', '.join(unknown)} (known: {', '.join(ALL)})")
    if args.report:
        print(f"wrote {write_report()}")
        return 0
    wanted = set(args.names or ALL)
    plan = [(g, tuple(b for b in benches if b in wanted and available(b)))
            for g, benches in GROUPS.items()]
    plan = [(g, b) for g, b in plan if b]
    missing = sorted(n for n in wanted if not available(n))
    if missing:
        print(f"not present, skipped: {', '.join(missing)}")

    logs = RESULTS / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    weight = {g: MINUTES.get(g, (1, 1))[0 if args.quick else 1] for g, _ in plan}
    try:
        from tqdm import tqdm

        bar = tqdm(total=round(sum(weight.values()), 1), unit="min", desc="benchmarks",
                   bar_format="{l_bar}{bar}| ~{n:.1f}/{total:.1f} min est. [{elapsed}]")
    except ImportError:
        bar = None
    failed: list[str] = []
    for group, benches in plan:
        if bar is not None:
            bar.set_postfix_str(", ".join(benches))
        log = logs / f"{group}.log"
        started = time.monotonic()
        with open(log, "w") as fh:
            proc = subprocess.run([sys.executable, "-c", _child_code(benches, args.quick)],
                                  cwd=ROOT, stdout=fh, stderr=subprocess.STDOUT, check=False)
        took = (time.monotonic() - started) / 60
        if proc.returncode != 0:
            failed.append(group)
            msg = f"{group} FAILED (exit {proc.returncode}) after {took:.1f} min; see {log}"
        else:
            msg = f"{group} done in {took:.1f} min"
        if bar is not None:
            bar.write(msg)
            bar.update(weight[group])
        else:
            print(msg, flush=True)
    if bar is not None:
        bar.close()
    path = write_report()
    print(f"wrote {path}")
    if failed:
        print(f"failed: {', '.join(failed)} (their figures in the report are the previous run's)")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
