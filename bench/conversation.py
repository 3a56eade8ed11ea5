"""The keyless responder on turns written the way people speak: accuracy and latency.

Each set is JSON lines: ``{"notes": "sample-agenda" | "product-launch", "turn",
"kind": "answerable" | "out_of_scope" | "social", "expect": heading | "fallback" |
"conversation", "also": [other acceptable headings], "act": ...}``. A turn is
right when the responder's source (``broadcaster ask``'s: the heading,
"fallback" or "conversation") is ``expect`` or one of ``also``.

Sets: ``tune.jsonl`` (written by the developer; the weights and threshold in
broadcaster/answers/retrieval.py are fitted on it), ``dev.jsonl`` (written with it
but never fitted on: a check that fitting did not just memorize), and
``heldout.jsonl`` when it exists (written by someone else, blind to the code).
The baseline in the same run is the responder this one replaced (TF-IDF over the
notes, one threshold; kept here verbatim in :func:`_baseline`).

Latency: the Answerer's load (notes parsed, topics indexed and embedded) and each
turn's reply, p50/p95, on this machine.

Run: ``.venv/bin/python -m bench conversation`` (or ``python -m bench.conversation
[SET ...] [--fit]``; ``--fit`` grid-searches the weights on the first set).
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import re
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.harness import RESULTS, machine, now_iso, pyplot, summary, write_result  # noqa: E402

NAME = "conversation"
DATA = ROOT / "bench" / "data" / "conversation"
NOTES = {"sample-agenda": ROOT / "broadcaster" / "data" / "sample-agenda.md",
         "product-launch": ROOT / "docs" / "examples" / "product-launch.md"}
KINDS = ("answerable", "out_of_scope", "social")
TARGET = 0.90


def load_set(path: Path) -> list[dict[str, Any]]:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    for r in rows:
        if r["notes"] not in NOTES or r["kind"] not in KINDS:
            raise ValueError(f"{path}: bad row {r}")
    return rows


def default_sets() -> list[Path]:
    sets = [DATA / "tune.jsonl", DATA / "dev.jsonl", DATA / "heldout.jsonl"]
    return [p for p in sets if p.exists()]


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
    from broadcaster.answers.notes import load_notes
    from broadcaster.answers.retrieval import embedder

    loads = []
    answerers = {}
    embedder.cache_clear()
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


def fit(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Grid-search the weights and threshold on ``rows`` (features computed once)."""
    import numpy as np

    from broadcaster.answers.acts import split_turn
    from broadcaster.answers.text import normalize

    answerers, _ = _answerers()
    keys = ("coverage", "heading", "semantic", "bm25", "answer_type")
    data = []
    for r in rows:
        turn = split_turn(normalize(r["turn"]))
        if not turn.question:
            data.append((r, "conversation" if turn.acts else "fallback", None, None))
            continue
        ret = answerers[r["notes"]].retriever
        hits = sorted(ret.rank(turn.question), key=lambda h: ret.topics.index(h.topic))
        feats = np.array([[h.features[k] for k in keys] for h in hits])
        data.append((r, None, feats, [h.topic.title for h in hits]))
    best: tuple[int, float, tuple[float, ...], float] | None = None
    grid = itertools.product([0.2, 0.4, 0.6, 0.8], [0, 0.1, 0.2, 0.3], [0, 0.2, 0.4, 0.6],
                             [0, 0.1, 0.2], [0, 0.05, 0.1, 0.15])
    for w in grid:
        wv = np.array(w)
        for thr in np.arange(0.1, 0.8, 0.02):
            right, margin = 0, 0.0
            for r, fixed, feats, titles in data:
                if feats is None:
                    right += _right(r, fixed)
                    continue
                s = feats @ wv
                i = int(np.argmax(s))
                right += _right(r, titles[i] if s[i] >= thr else "fallback")
                margin += min(abs(s[i] - thr), 0.1)
            if best is None or (right, margin) > (best[0], best[1]):
                best = (right, margin, w, round(float(thr), 2))
    assert best is not None
    return {"right": best[0], "n": len(rows), "weights": dict(zip(keys, best[2], strict=True)),
            "min_score": best[3]}


def _plot(result: dict[str, Any]) -> None:
    plt = pyplot()
    if plt is None:
        return
    sets = list(result["sets"])
    fig, ax = plt.subplots(figsize=(9, 4.2))
    width = 0.8 / (len(sets) * 2)
    for i, name in enumerate(sets):
        for j, who in enumerate(("baseline", "ours")):
            d = result["sets"][name][who]
            vals = [100 * d["by_kind"].get(k, {}).get("accuracy", 0) for k in KINDS]
            vals.append(100 * (d["accuracy"] or 0))
            xs = [x + (2 * i + j) * width for x in range(len(KINDS) + 1)]
            ax.bar(xs, vals, width, label=f"{name}: {'new' if who == 'ours' else 'old (TF-IDF)'}",
                   alpha=0.45 if who == "baseline" else 0.95)
    ax.axhline(100 * TARGET, color="black", lw=0.8, ls="--")
    ax.set_xticks([x + 0.4 - width / 2 for x in range(len(KINDS) + 1)])
    ax.set_xticklabels([*KINDS, "all"])
    ax.set_ylabel("turns answered right (%)")
    ax.set_ylim(0, 105)
    ms = result["latency"]["reply_ms"]
    ax.set_title(f"Keyless responder: per turn p50 {ms['p50']:.2f} ms, p95 {ms['p95']:.2f} ms; "
                 f"load {result['latency']['load_s'][0]:.2f} s")
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(RESULTS / f"{NAME}.png", dpi=110)


def run(quick: bool = False, sets: list[Path] | None = None) -> dict[str, Any]:
    sets = sets or default_sets()
    answerers, loads = _answerers()
    result: dict[str, Any] = {
        "what": "keyless responder (broadcaster.answers) vs the TF-IDF responder it replaced, "
                "on turns phrased the way people speak",
        "when": now_iso(), "quick": quick, "machine": machine(), "versions": _versions(),
        "target_accuracy": TARGET, "sets": {},
        "latency": {"load_s": loads},
    }
    for path in sets:
        result["sets"][path.stem] = evaluate(load_set(path), answerers)
    # latency over every turn of every set, repeated (quick: once) for stable percentiles
    rows = [r for p in sets for r in load_set(p)]
    from broadcaster.answers.answerer import Dialogue

    ms = []
    for _ in range(1 if quick else 5):
        for r in rows:
            started = time.perf_counter()
            answerers[r["notes"]].reply(r["turn"], Dialogue())
            ms.append((time.perf_counter() - started) * 1000)
    result["latency"]["reply_ms"] = summary(ms)
    unseen = [s for s in result["sets"] if s != "tune"]
    check = result["sets"][unseen[-1] if unseen else "tune"]["ours"]["accuracy"]
    result["pass"] = check is not None and check >= TARGET
    write_result(NAME, result)
    _plot(result)
    for name, res in result["sets"].items():
        kinds = ", ".join(f"{k} {v['right']}/{v['n']}"
                          for k, v in res["ours"]["by_kind"].items())
        notes = ", ".join(f"{k} {v['right']}/{v['n']}"
                          for k, v in res["ours"]["by_notes"].items())
        print(f"{name}: ours {res['ours']['accuracy']:.3f} ({kinds}; {notes}); "
              f"baseline {res['baseline']['accuracy']:.3f}")
    lat = result["latency"]
    print(f"latency: load {lat['load_s']}, reply p50 {lat['reply_ms']['p50']:.3f} ms "
          f"p95 {lat['reply_ms']['p95']:.3f} ms")
    return result


def _versions() -> dict[str, str]:
    import importlib.metadata as md
    import subprocess

    out = {}
    for pkg in ("wordllama", "bm25s", "pystemmer", "numpy"):
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
        print(json.dumps(fit(load_set((args.sets or default_sets())[0])), indent=2))
        return
    run(quick=args.quick, sets=args.sets or None)


if __name__ == "__main__":
    main()
