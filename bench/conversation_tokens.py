"""Round 10's experiment: contextual word-level matching (ColBERT-style MaxSim) as inputs.

``python -m bench.conversation_tokens``: each content word of the question (its subword
vectors averaged) is matched to its closest word of each topic by an encoder's own
contextual token vectors (all-MiniLM-L6-v2, then bge-small-en-v1.5); the mean and the
weakest matches (``cb_mean``, ``cb_min``, ``cb_min2``: "is there a *cafe*" has no
counterpart in an accessibility topic) go to the ranking and answering models. Compared
by leave-one-notes-file-out cross-validation over the fitted sets plus ``tune-r9`` (every
variant refit per fold, as in bench/conversation_r9.py) and on the unfitted sets. Not
adopted (docs/notes.md, round 10); results in bench/results/conversation-tokens.json.
"""

from __future__ import annotations

import math
import re
import sys
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.conversation import FIT_SETS, _answerers, _right  # noqa: E402
from bench.conversation_r9 import extract  # noqa: E402
from bench.figures import write_result  # noqa: E402
from broadcaster.answers.acts import split_turn  # noqa: E402
from broadcaster.answers.retrieval import (  # noqa: E402
    ACCEPT_FEATURES,
    QUESTION_FEATURES,
    RANK_FEATURES,
)
from broadcaster.answers.text import STOPWORDS, normalize  # noqa: E402

CB = ("cb_mean", "cb_min", "cb_min2")
ALL = RANK_FEATURES + CB


def word_vecs(enc: Any, text: str, query: bool = False) -> np.ndarray:
    """Unit vectors of ``text``'s content words: each its subword tokens' mean."""
    prefix = enc.model.query_prefix if query else ""
    e = enc._tokenizer.encode(prefix + text)
    ids = np.asarray([e.ids], dtype=np.int64)
    feed = {"input_ids": ids, "attention_mask": np.ones_like(ids)}
    if "token_type_ids" in enc._inputs:
        feed["token_type_ids"] = np.zeros_like(ids)
    hidden = np.asarray(enc._session.run(None, feed)[0], dtype=np.float32)[0]
    groups: dict[int, list[int]] = {}
    for t, (wid, (a, _)) in enumerate(zip(e.word_ids, e.offsets, strict=True)):
        if wid is not None and a >= len(prefix):
            groups.setdefault(wid, []).append(t)
    out = []
    for ts in groups.values():
        w = (prefix + text)[e.offsets[ts[0]][0]:e.offsets[ts[-1]][1]].lower()
        if re.match(r"^[a-z0-9]", w) and w not in STOPWORDS and (len(w) > 1 or w.isdigit()):
            v = hidden[ts].mean(0)
            out.append(v / (np.linalg.norm(v) + 1e-9))
    return np.array(out) if out else np.zeros((0, hidden.shape[1]), np.float32)


def add_token_features(items: list[dict[str, Any]], answerers: dict[str, Any],
                       model: str) -> None:
    """Put each item's per-topic ``CB`` columns (``model``: "minilm" or "bge")."""
    def encoder(n: str) -> Any:
        r = answerers[n].retriever
        return r.encoder2 if model == "minilm" else r.encoder

    topics = {n: [word_vecs(encoder(n), f"{t.title}. {t.answer}") for t in a.retriever.topics]
              for n, a in answerers.items()}
    for it in items:
        if "X" not in it:
            continue
        n = it["row"]["notes"]
        q = split_turn(normalize(it["row"]["turn"])).question or it["row"]["turn"]
        qv = word_vecs(encoder(n), q, query=model == "bge")
        rows = []
        for tv in topics[n]:
            if len(qv) == 0 or len(tv) == 0:
                rows.append([0.0, 0.0, 0.0])
                continue
            best = np.sort((qv @ tv.T).max(1))
            rows.append([float(best.mean()), float(best[0]), float(best[:2].mean())])
        it["CB"] = np.array(rows)


def _accept_row(it: dict[str, Any], w: np.ndarray, cols: list[int],
                accept: tuple[str, ...]) -> tuple[np.ndarray, int]:
    full_x = np.hstack([it["X"], it["CB"]])
    s = full_x[:, cols] @ w
    order = np.argsort(-s, kind="stable")
    i = int(order[0])
    f = dict(zip(ALL, full_x[i], strict=True))
    f.update(score=s[i], margin=s[i] - (s[order[1]] if len(s) > 1 else 0.0))
    f.update({k: it[k] for k in QUESTION_FEATURES})
    return np.array([f[k] for k in accept]), i


def fit(train: list[dict[str, Any]], rank: tuple[str, ...], accept: tuple[str, ...],
        l2: float = 0.01) -> tuple[Any, ...]:
    """Both models, as bench/conversation_fit.py fits them, on ``rank`` / ``accept``."""
    cols = [ALL.index(k) for k in rank]
    ranked = [(np.hstack([it["X"], it["CB"]])[:, cols],
               [j for j, t in enumerate(it["titles"]) if _right(it["row"], t)])
              for it in train if "X" in it and it["row"]["kind"] == "answerable"]
    ranked = [(x, y) for x, y in ranked if y]
    w = np.zeros(len(cols))
    for _ in range(800):
        g = np.zeros_like(w)
        for x, y in ranked:
            s = x @ w * 10
            p = np.exp(s - s.max())
            p /= p.sum()
            target = np.zeros_like(p)
            target[y] = 1 / len(y)
            g += 10 * x.T @ (p - target)
        w -= 0.1 * (g / len(ranked) + l2 * w)
    rows, labels = [], []
    for it in train:
        if "X" not in it:
            continue
        a, i = _accept_row(it, w, cols, accept)
        if it["row"]["kind"] == "answerable":
            if not _right(it["row"], it["titles"][i]):
                continue
            labels.append(1.0)
        else:
            labels.append(0.0)
        rows.append(a)
    a_mat, y = np.array(rows), np.array(labels)
    mu, sd = a_mat.mean(0), a_mat.std(0) + 1e-6
    z = (a_mat - mu) / sd
    v, b = np.zeros(z.shape[1]), 0.0
    for _ in range(4000):
        p = 1 / (1 + np.exp(-(z @ v + b)))
        v -= 0.5 * (z.T @ (p - y) / len(y) + l2 * v)
        b -= 0.5 * float((p - y).mean())
    return w, cols, v / sd, b - float((v * mu / sd).sum())


def predict(it: dict[str, Any], fitted: tuple[Any, ...], accept: tuple[str, ...]) -> str:
    if "fixed" in it:
        return str(it["fixed"])
    w, cols, v, b = fitted
    a, i = _accept_row(it, w, cols, accept)
    return str(it["titles"][i]) if 1 / (1 + math.exp(-(a @ v + b))) >= 0.5 else "fallback"


def tally(pairs: list[tuple[dict[str, Any], str]]) -> dict[str, Any]:
    c = {"answerable": [0, 0], "out_of_scope": [0, 0], "social": [0, 0]}
    for it, p in pairs:
        k = c[it["row"]["kind"]]
        k[0] += _right(it["row"], p)
        k[1] += 1
    return {"right": sum(v[0] for v in c.values()), **{k: f"{a}/{b}" for k, (a, b) in c.items()}}


VARIANTS = {
    "baseline (round 7's inputs, refit)": (RANK_FEATURES, ACCEPT_FEATURES),
    "+cb to answering": (RANK_FEATURES, ACCEPT_FEATURES + CB),
    "+cb_mean to ranking, +cb to answering": (RANK_FEATURES + ("cb_mean",), ACCEPT_FEATURES + CB),
    "+cb_min to answering": (RANK_FEATURES, ACCEPT_FEATURES + ("cb_min",)),
    "+cb_mean to ranking": (RANK_FEATURES + ("cb_mean",), ACCEPT_FEATURES),
}


def run() -> dict[str, Any]:
    items = extract(lexical=False)
    answerers, _ = _answerers()
    fitted_sets = {p.stem for p in FIT_SETS} | {"tune-r9"}
    pool = [it for it in items if it["set"] in fitted_sets]
    unfitted = [it for it in items if it["set"] not in fitted_sets]
    notes = sorted({it["row"]["notes"] for it in pool})
    result: dict[str, Any] = {"turns_cross_validated": len(pool)}
    for model in ("minilm", "bge"):
        add_token_features(items, answerers, model)
        for name, (rank, accept) in VARIANTS.items():
            pairs, per = [], {}
            for n in notes:
                f = fit([it for it in pool if it["row"]["notes"] != n], rank, accept)
                got = [(it, predict(it, f, accept)) for it in pool if it["row"]["notes"] == n]
                pairs += got
                per[n] = tally(got)["right"]
            f = fit(pool, rank, accept)
            sets = sorted({it["set"] for it in unfitted})
            row = {"leave_one_notes_file_out": tally(pairs), "per_notes": per,
                   "unfitted": {s: tally([(it, predict(it, f, accept)) for it in unfitted
                                          if it["set"] == s]) for s in sets}}
            result[f"{model}: {name}"] = row
            print(f"{model}: {name}", row, flush=True)
    return result


if __name__ == "__main__":
    print(write_result("conversation-tokens", run()))
