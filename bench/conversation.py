"""The keyless responder on turns written the way people speak: accuracy and latency.

Each set is JSON lines: ``{"notes": "sample-agenda" | "product-launch" |
"course-intro" | "home-energy" | "clinic-open-day" | "benefits-enrolment" |
"rowing-season" | "security-briefing", "turn",
"kind": "answerable" | "out_of_scope" | "social", "expect": heading | "fallback" |
"conversation", "also": [other acceptable headings], "act": ...}``. A turn is
right when the responder's source (``broadcaster ask``'s: the heading,
"fallback" or "conversation") is ``expect`` or one of ``also``.

Sets (bench/data/conversation), all fitted on since round 2 (:data:`FIT_SETS`):
``tune.jsonl`` and ``dev.jsonl`` (written by round 1's developer), ``heldout-v1.jsonl``
(233 turns written blind by someone else; round 1 scored 62.7 % on it, and it has been
a development set since), ``course.jsonl`` (course-intro turns written in round 2
before the responder was run on them), ``tune-r4.jsonl`` (round 4's working set, on the
product-launch and home-energy notes), ``tune-r5.jsonl`` (round 5's: the categories of an
independent set's misses, in new words). Because every set is fitted on, the run also
reports cross-validation: fits that left one set, or one notes file, out, scored on
what they left out (bench/conversation_fit.py). A ``heldout*.jsonl`` dropped in the
folder is evaluated and not fitted on: the figure that counts (``heldout-r4``: 135 turns
on course-intro, sample-agenda and docs/examples/clinic-open-day.md, a notes file written
for it; scored once before round 4's changes and once after; ``heldout-r5``: 151 turns on
sample-agenda, product-launch, course-intro and docs/examples/benefits-enrolment.md, a
notes file written for it, scored before and after round 5's changes, its misses never
looked at; ``heldout-r7``: 187 turns on sample-agenda, product-launch, course-intro,
clinic-open-day and benefits-enrolment, written before round 7's changes, scored once
before and once after). ``tune-r7.jsonl`` (38 turns, round 7's tuning turns),
``tune-r9.jsonl`` and ``tune-r9-eval.jsonl`` (round 9: docs/examples/rowing-season.md and
security-briefing.md, notes files written for it) are evaluated, not fitted on
(:data:`TUNING_SETS`; round 9's refit experiment: bench/conversation_r9.py).
The baseline in the same run is the responder round 1 replaced (TF-IDF over the
notes, one threshold; kept here verbatim in :func:`_baseline`).

Latency: the Answerer's load (notes parsed, topics indexed and embedded; then again
with the embeddings from the disk cache, as at the bot's next start) and each turn's
reply, p50/p95, on this machine, no question vector reused.

Run: ``.venv/bin/python -m bench conversation`` (or ``python -m bench.conversation
[SET ...] [--fit]``; ``--fit`` fits the weights, bench/conversation_fit.py).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.figures import RESULTS, machine, now_iso, pyplot, summary, write_result  # noqa: E402

NAME = "conversation"
DATA = ROOT / "bench" / "data" / "conversation"
NOTES = {"sample-agenda": ROOT / "broadcaster" / "data" / "sample-agenda.md",
         "product-launch": ROOT / "docs" / "examples" / "product-launch.md",
         "course-intro": ROOT / "docs" / "examples" / "course-intro.md",
         "home-energy": ROOT / "docs" / "examples" / "home-energy.md",
         "clinic-open-day": ROOT / "docs" / "examples" / "clinic-open-day.md",
         "benefits-enrolment": ROOT / "docs" / "examples" / "benefits-enrolment.md",
         "rowing-season": ROOT / "docs" / "examples" / "rowing-season.md",
         "security-briefing": ROOT / "docs" / "examples" / "security-briefing.md"}
KINDS = ("answerable", "out_of_scope", "social")
TARGET = 0.90


def load_set(path: Path) -> list[dict[str, Any]]:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    for r in rows:
        if r["notes"] not in NOTES or r["kind"] not in KINDS:
            raise ValueError(f"{path}: bad row {r}")
    return rows


FIT_SETS = [DATA / "tune.jsonl", DATA / "dev.jsonl", DATA / "heldout-v1.jsonl",
            DATA / "course.jsonl", DATA / "tune-r4.jsonl", DATA / "tune-r5.jsonl"]
"""What ``--fit`` fits the weights on by default."""


TUNING_SETS = [DATA / "tune-r7.jsonl", DATA / "tune-r9.jsonl", DATA / "tune-r9-eval.jsonl"]
"""Evaluated, not fitted on: ``tune-r7`` (round 7's word groups were measured on it);
``tune-r9`` (183 turns on two notes files written for round 9, rowing-season and
security-briefing: a refit with it was measured by leave-one-notes-file-out and not
adopted, docs/notes.md round 9) and ``tune-r9-eval`` (80 turns on the same two files,
only ever evaluated)."""


def default_sets() -> list[Path]:
    unfitted = sorted(p for p in DATA.glob("heldout*.jsonl") if p not in FIT_SETS)
    return [p for p in [*FIT_SETS, *TUNING_SETS, *unfitted] if p.exists()]


def _right(row: dict[str, Any], source: str) -> bool:
    return source == row["expect"] or source in row.get("also", [])


def _score(rows: list[dict[str, Any]], sources: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {"n": len(rows)}
    ok = [_right(r, s) for r, s in zip(rows, sources, strict=True)]
    out["accuracy"] = sum(ok) / len(ok) if ok else None
    for key, values in (("by_kind", KINDS), ("by_notes", tuple(NOTES))):
        field = "kind" if key == "by_kind" else "notes"
        out[key] = {}
        for v in values:
            sel = [k for r, k in zip(rows, ok, strict=True) if r[field] == v]
            if sel:
                out[key][v] = {"right": sum(sel), "n": len(sel), "accuracy": sum(sel) / len(sel)}
    return out


# ------------------------------------------------------------------------ the baseline
def _baseline(notes_path: Path) -> Any:
    """The responder before issue 13: TF-IDF cosine over the notes, threshold 0.2."""
    from broadcaster.answers.notes import load_notes

    stop = frozenset("""a about after again all am an and any are as at be been before being
        but by can could did do does doing for from had has have having he her here hers him
        his how i if in into is it its just know let like me more most my no nor not now of
        off on once only or other our ours out over please say so some such tell than that the
        their them then there these they this those to too under until up us very was we were
        what when where which while who whom why will with would you your yours yourself um
        uh okay ok well hey hi hello don doesn didn isn aren wasn weren won wouldn couldn
        haven hasn""".split())

    def stem(w: str) -> str:
        if len(w) > 4 and w.endswith("ies"):
            w = w[:-3] + "y"
        elif len(w) > 3 and w.endswith("s") and not w.endswith(("ss", "us", "is")):
            w = w[:-1]
        if len(w) > 5 and w.endswith("ing"):
            w = w[:-3]
        elif len(w) > 4 and w.endswith("ed"):
            w = w[:-2]
        if len(w) > 3 and w.endswith("e"):
            w = w[:-1]
        return w

    def tok(text: str) -> list[str]:
        ws = re.findall(r"[a-z0-9]+(?:'[a-z]+)?", text.lower())
        return [stem(w) for w in (w.split("'")[0] for w in ws) if w not in stop]

    topics = load_notes(notes_path).topics
    docs = [Counter(tok(t.title) * 3 + tok(t.answer)) for t in topics]
    df = Counter(term for d in docs for term in d)
    n = len(docs)
    idf = {t: math.log((n + 1) / (c + 1)) + 1.0 for t, c in df.items()}
    top = math.log(n + 1) + 1.0

    def weigh(c: Counter[str]) -> dict[str, float]:
        v = {t: (1.0 + math.log(k)) * idf.get(t, top) for t, k in c.items()}
        norm = math.sqrt(sum(x * x for x in v.values())) or 1.0
        return {t: x / norm for t, x in v.items()}

    vecs = [weigh(d) for d in docs]

    def source(question: str) -> str:
        q = weigh(Counter(tok(question)))
        scored = [(sum(w * v.get(t, 0.0) for t, w in q.items()), i) for i, v in enumerate(vecs)]
        scored.sort(key=lambda s: (-s[0], s[1]))
        return topics[scored[0][1]].title if scored and scored[0][0] >= 0.2 else "fallback"

    return source


# ------------------------------------------------------------------------ measuring
def _answerers(weights: Any = None) -> tuple[dict[str, Any], list[float]]:
    from broadcaster.answers.answerer import Answerer
    from broadcaster.answers.encoder import sentence_encoder
    from broadcaster.answers.lexical import word_model
    from broadcaster.answers.notes import load_notes

    loads = []
    answerers = {}
    sentence_encoder.cache_clear()
    word_model.cache_clear()
    for name, path in NOTES.items():
        started = time.perf_counter()
        kwargs = {"weights": weights} if weights is not None else {}
        answerers[name] = Answerer(load_notes(path), **kwargs)
        loads.append(time.perf_counter() - started)  # the first includes WordLlama's load
    return answerers, loads


def evaluate(rows: list[dict[str, Any]], answerers: dict[str, Any]) -> dict[str, Any]:
    """Accuracy (ours and the baseline's), per-turn latency and every miss."""
    from broadcaster.answers.answerer import Dialogue

    baselines = {name: _baseline(path) for name, path in NOTES.items()}
    sources, base_sources, ms, misses = [], [], [], []
    for r in rows:
        a = answerers[r["notes"]]
        started = time.perf_counter()
        reply = a.reply(r["turn"], Dialogue())
        ms.append((time.perf_counter() - started) * 1000)
        sources.append(reply.source)
        base_sources.append(baselines[r["notes"]](r["turn"]))
        if not _right(r, reply.source):
            misses.append({"notes": r["notes"], "turn": r["turn"], "kind": r["kind"],
                           "expect": r["expect"], "got": reply.source,
                           "score": round(reply.score, 3)})
    return {"ours": _score(rows, sources), "baseline": _score(rows, base_sources),
            "reply_ms": summary(ms), "misses": misses}


def _plot(result: dict[str, Any]) -> None:
    plt = pyplot()
    if plt is None:
        return
    sets = list(result["sets"])
    fig, (ax, cv) = plt.subplots(1, 2, figsize=(12, 5), gridspec_kw={"width_ratios": [3, 2]})
    width = 0.8 / (len(sets) * 2)
    for i, name in enumerate(sets):
        for j, who in enumerate(("baseline", "ours")):
            d = result["sets"][name][who]
            vals = [100 * d["by_kind"].get(k, {}).get("accuracy", 0) for k in KINDS]
            vals.append(100 * (d["accuracy"] or 0))
            xs = [x + (2 * i + j) * width for x in range(len(KINDS) + 1)]
            label = f"{name}: {'new' if who == 'ours' else 'TF-IDF'}"
            ax.bar(xs, vals, width, label=label, alpha=0.35 if who == "baseline" else 0.95)
    ax.axhline(100 * TARGET, color="black", lw=0.8, ls="--")
    ax.set_xticks([x + 0.4 - width / 2 for x in range(len(KINDS) + 1)])
    ax.set_xticklabels([*KINDS, "all"])
    ax.set_ylabel("turns answered right (%)")
    ax.set_ylim(0, 105)
    ms = result["latency"]["reply_ms"]
    unfitted = ", ".join(n for n, d in result["sets"].items() if not d.get("fitted")) or "none"
    ax.set_title(f"Per set (not fitted on: {unfitted});\nper turn p50 {ms['p50']:.1f} ms, "
                 f"p95 {ms['p95']:.1f} ms; load {result['latency']['load_s'][0]:.2f} s",
                 fontsize=9)
    ax.legend(fontsize=6, loc="upper center", bbox_to_anchor=(0.5, -0.09), ncol=5)
    held = {k.removeprefix("fit without ").split(",")[0]: float(v.split("= ")[1].split()[0])
            for k, v in result.get("cross_validation", {}).items()
            if k.startswith("fit without")}
    cv.barh(list(held), [100 * v for v in held.values()], color="tab:green")
    cv.axvline(100 * TARGET, color="black", lw=0.8, ls="--")
    cv.set_xlim(0, 100)
    cv.set_xlabel("turns right when left out of the fit (%)")
    cv.set_title("Cross-validation: a set / notes file left out", fontsize=9)
    fig.tight_layout()
    fig.savefig(RESULTS / f"{NAME}.png", dpi=110)


def run(quick: bool = False, sets: list[Path] | None = None) -> dict[str, Any]:
    from broadcaster.answers.answerer import Dialogue
    from broadcaster.answers.encoder import sentence_encoders

    sets = sets or default_sets()
    fitted = {p.stem for p in FIT_SETS}
    # the first load of each notes file embeds them (an empty disk cache of its own);
    # the second, as the bot's next start, reads them back
    os.environ["XDG_CACHE_HOME"] = tempfile.mkdtemp(prefix="bench-conversation-")
    answerers, loads = _answerers()
    _, warm_loads = _answerers()
    result: dict[str, Any] = {
        "what": "keyless responder (broadcaster.answers) vs the TF-IDF responder it replaced, "
                "on turns phrased the way people speak",
        "when": now_iso(), "quick": quick, "machine": machine(), "versions": _versions(),
        "target_accuracy": TARGET, "fitted_on": sorted(fitted), "sets": {},
        "latency": {"load_s": loads, "load_cached_s": warm_loads,
                    "load_notes": list(NOTES)},
    }
    pair = sentence_encoders()

    def forget() -> None:
        for encoder in pair or ():
            encoder.forget_recent()

    result["versions"]["embedding_models"] = ([e.model.name for e in pair] if pair
                                              else "missing")
    for path in sets:
        forget()
        result["sets"][path.stem] = evaluate(load_set(path), answerers)
        result["sets"][path.stem]["fitted"] = path.stem in fitted
    # latency over every turn of every set, repeated (quick: once) for stable percentiles;
    # no question vector is reused from an earlier turn
    rows = [r for p in sets for r in load_set(p)]
    ms = []
    for _ in range(1 if quick else 3):
        for r in rows:
            forget()
            started = time.perf_counter()
            answerers[r["notes"]].reply(r["turn"], Dialogue())
            ms.append((time.perf_counter() - started) * 1000)
    result["latency"]["reply_ms"] = summary(ms)
    if not quick:  # how fits that left a set / a notes file out do on it
        from bench.conversation_fit import fit

        result["cross_validation"] = fit([p for p in FIT_SETS if p.exists()])["held_out"]
    unseen = [s for s in result["sets"] if s not in fitted and s.startswith("heldout")]
    check = result["sets"][unseen[-1]]["ours"]["accuracy"] if unseen else None
    result["pass"] = None if check is None else check >= TARGET
    write_result(NAME, result)
    _plot(result)
    for name, res in result["sets"].items():
        kinds = ", ".join(f"{k} {v['right']}/{v['n']}"
                          for k, v in res["ours"]["by_kind"].items())
        notes = ", ".join(f"{k} {v['right']}/{v['n']}"
                          for k, v in res["ours"]["by_notes"].items())
        print(f"{name}{' (fitted on)' if res['fitted'] else ''}: ours "
              f"{res['ours']['accuracy']:.3f} ({kinds}; {notes}); "
              f"baseline {res['baseline']['accuracy']:.3f}")
    for name, line in result.get("cross_validation", {}).items():
        print(f"cross-validation: {name}: {line}")
    lat = result["latency"]
    print(f"latency: load {lat['load_s']} (cached {lat['load_cached_s']}), "
          f"reply p50 {lat['reply_ms']['p50']:.3f} ms p95 {lat['reply_ms']['p95']:.3f} ms")
    return result


def _versions() -> dict[str, str]:
    import importlib.metadata as md
    import subprocess

    out = {}
    for pkg in ("wordllama", "bm25s", "pystemmer", "numpy", "onnxruntime", "tokenizers"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            out[pkg] = "missing"
    try:
        out["commit"] = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                                       capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        out["commit"] = "?"
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("sets", nargs="*", type=Path, help="JSONL sets (default: tune, dev, heldout)")
    ap.add_argument("--fit", action="store_true", help="fit the weights on the first set")
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    if args.fit:
        from bench.conversation_fit import fit

        print(json.dumps(fit(args.sets or FIT_SETS), indent=2))
        return
    run(quick=args.quick, sets=args.sets or None)


if __name__ == "__main__":
    main()
