"""Fitting the keyless responder's two models on the conversation sets.

``python -m bench.conversation --fit [SET ...]`` (default: bench.conversation.FIT_SETS):

- **ranking**: a linear score over :data:`broadcaster.answers.retrieval.RANK_FEATURES`,
  fitted as a softmax over each notes file's topics with the right topic(s) as the
  target (L2-regularized gradient descent, numpy);
- **answering**: a logistic model over :data:`~broadcaster.answers.retrieval.ACCEPT_FEATURES`
  of the best topic: a right best topic of an answerable turn (1) against an
  out-of-scope or social turn that reached retrieval (0). Answerable turns whose best
  topic is wrong are left out: they are wrong whether answered or not.

It prints the weights to keep as ``Weights``' defaults in
broadcaster/answers/retrieval.py, and, before that, the accuracy of fits that left one
set or one notes file out, on what they left out: the honest estimate of how the
weights do on turns and notes they were not fitted on.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from bench.conversation import _answerers, _right, load_set


def _features(rows: list[dict[str, Any]], answerers: dict[str, Any]) -> list[dict[str, Any]]:
    """Per row: the ranking features of every topic (file order) and the question-level
    ones, or the fixed source when nothing is left to retrieve for."""
    import numpy as np

    from broadcaster.answers.acts import question_like, split_turn
    from broadcaster.answers.retrieval import QUESTION_FEATURES, RANK_FEATURES
    from broadcaster.answers.rewrite import queries
    from broadcaster.answers.text import normalize

    out = []
    for r in rows:
        turn = split_turn(normalize(r["turn"]))
        item: dict[str, Any] = {"row": r}
        direct = answerers[r["notes"]].without_notes(turn, r["turn"])
        if direct is not None:
            item["fixed"] = direct.source
        else:
            ret = answerers[r["notes"]].retriever
            m = ret.match_any(queries(r["turn"], turn.question))
            hits = sorted(m.hits, key=lambda h: ret.topics.index(h.topic))
            item["X"] = np.array([[h.features[k] for k in RANK_FEATURES] for h in hits])
            item["titles"] = [h.topic.title for h in hits]
            item.update({k: m.features[k] for k in QUESTION_FEATURES})
            item["asked"] = question_like(turn, r["turn"])
        out.append(item)
    return out


def _accept_row(item: dict[str, Any], w: Any) -> tuple[Any, int]:
    import numpy as np

    from broadcaster.answers.retrieval import ACCEPT_FEATURES, QUESTION_FEATURES, RANK_FEATURES

    s = item["X"] @ w
    order = np.argsort(-s, kind="stable")
    i = int(order[0])
    f = dict(zip(RANK_FEATURES, item["X"][i], strict=True))
    f.update(score=s[i], margin=s[i] - (s[order[1]] if len(s) > 1 else 0.0))
    f.update({k: item[k] for k in QUESTION_FEATURES})
    return np.array([f[k] for k in ACCEPT_FEATURES]), i


def fit_rank(items: list[dict[str, Any]], l2: float = 0.01,
             cols: list[int] | None = None) -> Any:
    """Rank weights: a softmax over each answerable turn's topics, its right topics as the
    target (gradient descent, L2 ``l2``); on the columns ``cols`` of ``X`` if given (an
    experiment's inputs), else on all of them."""
    import numpy as np

    ranked = [(it["X"] if cols is None else it["X"][:, cols],
               [j for j, t in enumerate(it["titles"]) if _right(it["row"], t)])
              for it in items if "X" in it and it["row"]["kind"] == "answerable"]
    ranked = [(x, y) for x, y in ranked if y]
    w = np.zeros(ranked[0][0].shape[1])
    for _ in range(800):
        g = np.zeros_like(w)
        for x, y in ranked:
            s = x @ w * 10
            p = np.exp(s - s.max())
            p /= p.sum()
            q = np.zeros_like(p)
            q[y] = p[y] / p[y].sum()
            g += 10 * (x.T @ (p - q))
        w -= 0.5 * (g / len(ranked) + l2 * w)
    return w


def _fit_items(items: list[dict[str, Any]], l2: float = 0.01) -> tuple[Any, Any, float]:
    """Rank weights (softmax over topics, right topics as the target), then the accept
    model (logistic: a right best topic of an answerable turn vs an out-of-scope or
    social turn)."""


    w = fit_rank(items, l2)
    v, b = fit_accept(items, lambda it: _accept_row(it, w), l2)
    return w, v, b


def fit_accept(items: list[dict[str, Any]], row: Any, l2: Any = 0.01) -> tuple[Any, float]:
    """The answering model: logistic regression of a right best topic of an answerable
    turn (1) against an out-of-scope or social turn (0), on ``row(item)`` -> (inputs, best
    topic); z-scored, L2 ``l2`` (a number, or one per input), returned on the raw inputs."""
    import numpy as np

    a_rows, labels = [], []
    for it in items:
        if "X" not in it:
            continue
        a, i = row(it)
        if it["row"]["kind"] == "answerable":
            if not _right(it["row"], it["titles"][i]):
                continue  # a wrong best topic is wrong whether said or not
            labels.append(1.0)
        else:
            labels.append(0.0)
        a_rows.append(a)
    a_mat, y_vec = np.array(a_rows), np.array(labels)
    mu, sd = a_mat.mean(0), a_mat.std(0) + 1e-6
    z = (a_mat - mu) / sd
    v, b = np.zeros(z.shape[1]), 0.0
    for _ in range(4000):
        p = 1 / (1 + np.exp(-(z @ v + b)))
        v -= 0.5 * (z.T @ (p - y_vec) / len(y_vec) + l2 * v)
        b -= 0.5 * float((p - y_vec).mean())
    # back to raw features: z = (a - mu) / sd
    return v / sd, b - float((v * mu / sd).sum())


def _predict(item: dict[str, Any], w: Any, v: Any, b: float, threshold: float) -> str:
    if "fixed" in item:
        return item["fixed"]
    a, i = _accept_row(item, w)
    if 1 / (1 + math.exp(-(a @ v + b))) >= threshold:
        return item["titles"][i]
    return "fallback" if item["asked"] else "conversation"


def _accuracy(items: list[dict[str, Any]], fitted: tuple[Any, Any, float],
              threshold: float = 0.5) -> str:
    by_kind: dict[str, list[bool]] = {}
    for it in items:
        ok = _right(it["row"], _predict(it, *fitted, threshold))
        by_kind.setdefault(it["row"]["kind"], []).append(ok)
    right = sum(sum(v) for v in by_kind.values())
    n = sum(len(v) for v in by_kind.values())
    kinds = ", ".join(f"{k} {sum(v)}/{len(v)}" for k, v in by_kind.items())
    return f"{right}/{n} = {right / max(n, 1):.3f} ({kinds})"


def fit(paths: list[Path]) -> dict[str, Any]:
    """Fit the ranking and answering models on ``paths``; report on what was held out."""
    from broadcaster.answers.retrieval import ACCEPT_FEATURES, RANK_FEATURES

    answerers, _ = _answerers()
    items = []
    for p in paths:
        for it in _features(load_set(p), answerers):
            it["set"] = p.stem
            items.append(it)
    report = {}
    splits = {f"fit without {s}, on {s}": (lambda it, s=s: it["set"] != s)
              for s in sorted({it["set"] for it in items})}
    splits.update({f"fit without {n}, on {n}": (lambda it, n=n: it["row"]["notes"] != n)
                   for n in sorted({it["row"]["notes"] for it in items})})
    for name, keep in splits.items():
        train = [it for it in items if keep(it)]
        test = [it for it in items if not keep(it)]
        if train and test:
            report[name] = _accuracy(test, _fit_items(train))
    w, v, b = _fit_items(items)
    report["fit on all, on all"] = _accuracy(items, (w, v, b))
    for t in (0.3, 0.4, 0.5, 0.6, 0.7):
        report[f"fit on all, threshold {t}"] = _accuracy(items, (w, v, b), t)
    return {"held_out": report,
            "rank": {k: round(float(x), 3) for k, x in zip(RANK_FEATURES, w, strict=True)},
            "accept": {k: round(float(x), 3) for k, x in zip(ACCEPT_FEATURES, v, strict=True)},
            "accept_bias": round(b, 3)}
