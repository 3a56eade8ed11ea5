"""Round 10's experiment: one detail inside a long topic ("pieces").

``python -m bench.conversation_r10 [--lexical]``: every turn's features are extracted
once (cached under /tmp) with, besides the responder's own inputs, the question's
similarity by both sentence models to each topic's best *piece*: its sentences and the
clauses and list items they hold (:mod:`broadcaster.answers.pieces`), so that one fact
of a sentence listing several is compared on its own. Each variant is refit per fold
and compared, against the current inputs refit the same way, by leave-one-notes-file-out
cross-validation (the notes file and every turn on it left out of the fit) over the
fitted sets plus ``tune-r9``, and, fitted on all of those, on the unfitted sets
(:data:`EVAL`).

Results go to bench/results/conversation-r10[-lexical].json (+ .png).
"""

from __future__ import annotations

import argparse
import math
import os
import pickle
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.conversation import DATA, FIT_SETS, _answerers, load_set  # noqa: E402
from bench.conversation_fit import fit_accept, fit_rank  # noqa: E402
from bench.conversation_r9 import plot, score, total  # noqa: E402
from bench.figures import RESULTS, machine, now_iso, write_result  # noqa: E402

POOL = list(dict.fromkeys([*FIT_SETS, DATA / "tune-r9.jsonl"]))
EVAL = [DATA / f"{s}.jsonl" for s in ("tune-r9-eval", "heldout-r7", "tune-r7", "heldout-r2",
                                        "heldout-r3", "heldout-r4", "heldout-r5")]
"""Never fitted on: round 9's evaluation set, round 7's held-out and tuning sets, and the
older held-out sets (each a development set since it was first scored)."""
BASE_RANK = ("title", "body", "sentence", "title_m", "body_m", "sentence_m", "coverage",
             "heading", "bm25", "answer_type", "intro")
BASE_ACCEPT = ("score", "margin", "title", "body", "sentence", "title_m", "body_m",
               "sentence_m", "coverage", "answer_type", "intro", "unknown", "unknown_max",
               "offtopic", "length", "focus", "lift_title", "lift_body", "lift_sentence")
PIECE = ("piece", "piece_m", "unit", "unit_m", "piece_z", "piece_mz", "cpiece", "cpiece_m")
"""Per topic: the best piece's similarity (bge, MiniLM); the best of heading and piece
(a detail can stand in for the heading); the best piece's similarity as a z-score over
every piece of the notes (how far it stands out for this question)."""
QUESTION = ("unknown", "unknown_max", "offtopic", "length", "focus", "lift_title",
            "lift_body", "lift_sentence", "lift_piece", "lift_piece_m", "lift_cpiece",
            "lift_cpiece_m")
ALL_RANK = (*BASE_RANK, *PIECE)
_PIECE_VECS: dict[int, tuple[Any, list[Any], list[Any]]] = {}
"""Per retriever (by id; one per notes file for the run): its pieces' owners and vectors."""
ROUND5 = ({"title": 0.414, "body": 1.027, "sentence": 0.41, "title_m": 0.232, "body_m": 0.769,
           "sentence_m": 0.484, "coverage": 0.404, "heading": 0.152, "bm25": 0.005,
           "answer_type": 0.13, "intro": -0.522},
          {"score": 0.574, "margin": 3.37, "title": 8.16, "body": 3.785, "sentence": -0.864,
           "title_m": -0.22, "body_m": 0.252, "sentence_m": -1.467, "coverage": 1.36,
           "answer_type": 0.496, "intro": 0.0, "unknown": -0.436, "unknown_max": 0.855,
           "offtopic": -4.989, "length": -1.838, "focus": -0.933, "lift_title": -2.088,
           "lift_body": -0.64, "lift_sentence": 4.864}, -6.473)
"""The weights shipped before round 10: which of a turn's readings is matched (the whole
question, or the one the notes answer most surely) is decided by them, so every
variant is compared on the same readings, before and after the round's refit."""


def _piece_features(ret: Any, question: str) -> tuple[dict[str, Any], dict[str, float]]:
    """Per topic (file order) the piece features, and the question-level lifts."""
    import numpy as np

    from bench.conversation_pieces import pieces
    from broadcaster.answers.retrieval import _lift, sentences
    from broadcaster.answers.text import normalize

    if id(ret) not in _PIECE_VECS:
        texts = [(i, p) for i, t in enumerate(ret.topics) for p in pieces(sentences(t.answer))]
        owner = np.array([i for i, _ in texts], dtype=int)
        vecs = [(enc.encode_cached([p for _, p in texts]) if enc is not None else None)
                for enc in (ret.encoder, ret.encoder2)]
        ctx = [f"{ret.topics[i].title.rstrip('?')}: {p}" for i, p in texts]
        cvecs = [(enc.encode_cached(ctx) if enc is not None else None)
                 for enc in (ret.encoder, ret.encoder2)]
        _PIECE_VECS[id(ret)] = (owner, vecs, cvecs)
    owner, vecs, cvecs = _PIECE_VECS[id(ret)]
    n = len(ret.topics)
    out: dict[str, Any] = {}
    lifts: dict[str, float] = {}
    for suffix, enc, v in (("", ret.encoder, vecs[0]), ("_m", ret.encoder2, vecs[1])):
        zname = "piece_mz" if suffix else "piece_z"
        if enc is None or v is None or not normalize(question):
            out[f"piece{suffix}"] = out[zname] = np.zeros(n)
            lifts[f"lift_piece{suffix}"] = 0.0
            continue
        sims = v @ enc.encode_one(question)
        best = np.full(n, -1.0)
        np.maximum.at(best, owner, sims)
        # a tenth of a z-score: on the scale of a similarity, for the fits' step sizes
        z = 0.1 * (best - sims.mean()) / (sims.std() + 1e-6)
        out[f"piece{suffix}"] = best
        out[zname] = z
        lifts[f"lift_piece{suffix}"] = _lift(best)
    for suffix, enc, v in (("", ret.encoder, cvecs[0]), ("_m", ret.encoder2, cvecs[1])):
        best = np.full(n, -1.0) if enc is not None and v is not None else np.zeros(n)
        if enc is not None and v is not None and normalize(question):
            np.maximum.at(best, owner, v @ enc.encode_one(question))
        out[f"cpiece{suffix}"] = best
        lifts[f"lift_cpiece{suffix}"] = _lift(best)
    return out, lifts


def extract(lexical: bool) -> list[dict[str, Any]]:
    """Per turn: every topic's features (:data:`ALL_RANK`, file order) and the question's
    (:data:`QUESTION`), for the reading the responder matched, or its fixed source."""
    import numpy as np

    cache = Path(f"/tmp/conversation-r10-items{'-lexical' if lexical else ''}.pkl")
    if cache.exists():
        return pickle.loads(cache.read_bytes())
    from broadcaster.answers.acts import question_like, split_turn
    from broadcaster.answers.retrieval import Weights
    from broadcaster.answers.rewrite import queries
    from broadcaster.answers.text import normalize

    rank, accept, bias = ROUND5
    answerers, _ = _answerers(None if lexical else Weights(rank=rank, accept=accept,
                                                           accept_bias=bias))
    items = []
    for path in [*POOL, *EVAL]:
        for r in load_set(path):
            item: dict[str, Any] = {"row": r, "set": path.stem}
            turn = split_turn(normalize(r["turn"]))
            direct = answerers[r["notes"]].without_notes(turn, r["turn"])
            if direct is not None:
                item["fixed"] = direct.source
                items.append(item)
                continue
            ret = answerers[r["notes"]].retriever
            readings = queries(r["turn"], turn.question)
            m = ret.match_any(readings)
            # the reading match_any kept: the first whose match is the same
            chosen = next(q for q in readings if ret.match(q).confidence == m.confidence)
            per, lifts = _piece_features(ret, chosen)
            hits = sorted(m.hits, key=lambda h: ret.topics.index(h.topic))
            rows = []
            for i, h in enumerate(hits):
                f = dict(h.features)
                f.update({k: float(per[k][i]) for k in ("piece", "piece_m", "piece_z",
                                                        "piece_mz", "cpiece", "cpiece_m")})
                f["unit"] = max(f["title"], f["piece"])
                f["unit_m"] = max(f["title_m"], f["piece_m"])
                rows.append([f[k] for k in ALL_RANK])
            item["X"] = np.array(rows)
            item["titles"] = [h.topic.title for h in hits]
            item.update({k: m.features[k] for k in QUESTION if k in m.features})
            item.update(lifts)
            item["asked"] = question_like(turn, r["turn"])
            items.append(item)
    cache.write_bytes(pickle.dumps(items))
    return items


class Variant:
    """Which inputs the two models get, and their regularization."""

    def __init__(self, rank: tuple[str, ...], accept: tuple[str, ...], l2: float = 0.01,
                 l2_accept: dict[str, float] | None = None) -> None:
        self.rank, self.accept, self.l2 = rank, accept, l2
        self.cols = [ALL_RANK.index(k) for k in rank]
        self.l2_accept = l2_accept or {}

    def row(self, item: dict[str, Any], w: Any) -> tuple[Any, int]:
        import numpy as np

        x = item["X"]
        s = x[:, self.cols] @ w
        order = np.argsort(-s, kind="stable")
        i = int(order[0])
        f = dict(zip(ALL_RANK, x[i], strict=True))
        f.update(score=s[i], margin=s[i] - (s[order[1]] if len(s) > 1 else 0.0))
        f.update({k: item.get(k, 0.0) for k in QUESTION})
        return np.array([f[k] for k in self.accept]), i

    def fit(self, items: list[dict[str, Any]]) -> tuple[Any, Any, float]:
        import numpy as np

        w = fit_rank(items, self.l2, self.cols)
        lam = np.array([self.l2_accept.get(k, self.l2) for k in self.accept])
        v, b = fit_accept(items, lambda it: self.row(it, w), lam)
        return w, v, b

    def predict(self, item: dict[str, Any], fitted: tuple[Any, Any, float]) -> str:
        if "fixed" in item:
            return item["fixed"]
        w, v, b = fitted
        a, i = self.row(item, w)
        z = max(min(float(a @ v + b), 50.0), -50.0)
        if 1 / (1 + math.exp(-z)) >= 0.5:
            return item["titles"][i]
        return "fallback" if item["asked"] else "conversation"


def variants() -> dict[str, Variant]:
    r, a = BASE_RANK, BASE_ACCEPT
    return {
        "baseline (current inputs, refit)": Variant(r, a),
        "pieces, both models": Variant((*r, "piece", "piece_m"), (*a, "piece", "piece_m")),
        "pieces, ranking only": Variant((*r, "piece", "piece_m"), a),
        "pieces, answering only": Variant(r, (*a, "piece", "piece_m")),
        "pieces + lift, both": Variant((*r, "piece", "piece_m"),
                                       (*a, "piece", "piece_m", "lift_piece", "lift_piece_m")),
        "best unit, both": Variant((*r, "unit", "unit_m"), (*a, "unit", "unit_m")),
        "best unit replaces heading, both": Variant(
            tuple("unit" if k == "title" else "unit_m" if k == "title_m" else k for k in r),
            tuple("unit" if k == "title" else "unit_m" if k == "title_m" else k for k in a)),
        "pieces z-scored, both": Variant((*r, "piece_z", "piece_mz"),
                                         (*a, "piece_z", "piece_mz")),
        "pieces ranking, lift answering": Variant(
            (*r, "piece", "piece_m"), (*a, "lift_piece", "lift_piece_m")),
        "lift of the best piece, answering only": Variant(r, (*a, "lift_piece", "lift_piece_m")),
        "pieces + lift, both, L2 0.03": Variant(
            (*r, "piece", "piece_m"), (*a, "piece", "piece_m", "lift_piece", "lift_piece_m"),
            l2=0.03),
        "pieces + lift, both, heading L2 x10": Variant(
            (*r, "piece", "piece_m"), (*a, "piece", "piece_m", "lift_piece", "lift_piece_m"),
            l2_accept={"title": 0.1, "title_m": 0.1}),
        "pieces with their heading + lift, both": Variant(
            (*r, "cpiece", "cpiece_m"),
            (*a, "cpiece", "cpiece_m", "lift_cpiece", "lift_cpiece_m")),
        "pieces + lift, and with their heading, both": Variant(
            (*r, "piece", "piece_m", "cpiece", "cpiece_m"),
            (*a, "piece", "piece_m", "lift_piece", "lift_piece_m", "cpiece", "cpiece_m")),
        "pieces + best unit, both": Variant((*r, "piece", "piece_m", "unit", "unit_m"),
                                            (*a, "piece", "piece_m", "unit", "unit_m")),
    }


def run(lexical: bool, names: list[str] | None = None) -> dict[str, Any]:
    items = extract(lexical)
    pool_sets = {p.stem for p in POOL}
    pool = [it for it in items if it["set"] in pool_sets]
    notes = sorted({it["row"]["notes"] for it in pool})
    result: dict[str, Any] = {"lexical": lexical, "when": now_iso(), "machine": machine(),
                              "loo": {}, "eval": {}}
    for name, var in variants().items():
        if names and name not in names and not name.startswith("baseline"):
            continue
        per = {}
        for n in notes:
            test = [it for it in pool if it["row"]["notes"] == n]
            fitted = var.fit([it for it in pool if it["row"]["notes"] != n])
            per[n] = score(test, [var.predict(it, fitted) for it in test])
        per["total"] = total(per)
        result["loo"][name] = per
        fitted = var.fit(pool)
        result["eval"][name] = {
            s.stem: score([it for it in items if it["set"] == s.stem],
                          [var.predict(it, fitted) for it in items if it["set"] == s.stem])
            for s in EVAL}
        print("LOO", name, per["total"], flush=True)
        print("EVAL", name, result["eval"][name], flush=True)
    return result


ALL_TURNS = ("baseline (current inputs, refit)", "pieces, both models", "pieces, ranking only",
             "pieces + lift, both", "best unit, both", "pieces z-scored, both")
"""The variants also left one notes file out over *every* turn (fitted and unfitted sets)."""


def all_turns(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Leave one notes file out over every labelled turn (the fitted sets, ``tune-r9`` and
    the unfitted sets: ten notes files); and, fitted on the pool, the two notes files no
    set in the pool is written on (clinic-open-day, benefits-enrolment)."""
    pool_sets = {p.stem for p in POOL}
    pool = [it for it in items if it["set"] in pool_sets]
    unfitted = [it for it in items if it["set"] not in pool_sets]
    notes = sorted({it["row"]["notes"] for it in items})
    out: dict[str, Any] = {}
    for name in ALL_TURNS:
        var = variants()[name]
        per = {}
        for n in notes:
            test = [it for it in items if it["row"]["notes"] == n]
            fitted = var.fit([it for it in items if it["row"]["notes"] != n])
            per[n] = score(test, [var.predict(it, fitted) for it in test])
        per["total"] = total(per)
        fitted = var.fit(pool)
        new = {}
        for n in ("clinic-open-day", "benefits-enrolment"):
            test = [it for it in unfitted if it["row"]["notes"] == n]
            new[n] = score(test, [var.predict(it, fitted) for it in test])
        out[name] = {"loo": per, "never_fitted_notes": new}
        print("ALL", name, per["total"], new, flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lexical", action="store_true", help="without the embedding models")
    ap.add_argument("variant", nargs="*", help="only these variants (and the baseline)")
    args = ap.parse_args()
    if args.lexical:
        os.environ["BROADCASTER_MODELS_DIR"] = "/nonexistent"
    result = run(args.lexical, args.variant or None)
    if not args.variant and not args.lexical:
        result["all_turns"] = all_turns(extract(args.lexical))
    name = f"conversation-r10{'-lexical' if args.lexical else ''}"
    if not args.variant:
        write_result(name, result)
        plot(result, name, "Round 10: pieces, leave one notes file out ({n} turns)")
    print(RESULTS)


if __name__ == "__main__":
    main()
