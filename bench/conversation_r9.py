"""Round 9's experiment: does the responder generalize to notes it was not fitted on?

``python -m bench.conversation_r9 [--extract] [--lexical]``: extracts every turn's
features once (cached under /tmp), then compares, by leave-one-notes-file-out
cross-validation (the notes file left out entirely: the never-seen case) and on the
unfitted sets (``tune-r9-eval``, ``heldout-r7``, ``tune-r7``):

- the shipped weights (no refit);
- a refit on round 7's fitted sets (the "before" of a refit);
- a refit with ``tune-r9`` (two new notes files) added;
- the same with per-notes calibration inputs to the answering model: the best topic's
  similarities minus the notes' own section-vs-section similarities (the mean over
  pairs of headings / topics, and the best topic's nearest other topic), so a notes
  file whose sections are all alike (one subject throughout) and one whose sections
  differ are read on the same scale;
- a per-notes threshold: moved, in logits, by how sure the model is of the notes' own
  pseudo near misses (each heading asked of its notes with its topic taken out)
  against the training notes' (:func:`per_notes_threshold`).

Results go to bench/results/conversation-r9[-lexical].json.
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

from bench.conversation import DATA, FIT_SETS, _answerers, _right, load_set  # noqa: E402
from bench.conversation_fit import _features, fit_accept, fit_rank  # noqa: E402
from bench.figures import RESULTS, machine, now_iso, write_result  # noqa: E402

NEW = [DATA / "tune-r9.jsonl"]
EVAL = [DATA / "tune-r9-eval.jsonl", DATA / "heldout-r7.jsonl", DATA / "tune-r7.jsonl"]
CAL = ("cal_title", "cal_body", "nn_title", "nn_body")


def _notes_stats(answerer: Any) -> dict[str, Any]:
    """Per notes file: section-vs-section similarities (bge), the scale of its scores."""
    import numpy as np

    ret = answerer.retriever
    titles, bodies, _ = ret._vecs[0]
    out: dict[str, Any] = {}
    for name, v in (("title", titles), ("body", bodies)):
        s = v @ v.T
        n = len(s)
        off = s[~np.eye(n, dtype=bool)] if n > 1 else np.zeros(1)
        np.fill_diagonal(s, -1.0)
        out[f"mu_{name}"] = float(off.mean())
        out[f"nn_{name}"] = s.max(1) if n > 1 else np.zeros(n)
    return out


def extract(lexical: bool) -> list[dict[str, Any]]:
    cache = Path(f"/tmp/conversation-r9-items{'-lexical' if lexical else ''}.pkl")
    if cache.exists():
        return pickle.loads(cache.read_bytes())
    answerers, _ = _answerers()
    stats = {n: _notes_stats(a) for n, a in answerers.items()}
    items = []
    for p in [*FIT_SETS, *NEW, *EVAL]:
        for it in _features(load_set(p), answerers):
            it["set"] = p.stem
            it["stats"] = stats[it["row"]["notes"]]
            items.append(it)
    cache.write_bytes(pickle.dumps(items))
    return items


def extract_pseudo(lexical: bool) -> list[dict[str, Any]]:
    """Each topic's heading asked of its notes with that topic taken out: a question on
    the notes' subject that they do not answer, as the notes themselves make it."""
    import numpy as np

    cache = Path(f"/tmp/conversation-r9-pseudo{'-lexical' if lexical else ''}.pkl")
    if cache.exists():
        return pickle.loads(cache.read_bytes())
    answerers, _ = _answerers()
    stats = {n: _notes_stats(a) for n, a in answerers.items()}
    out = []
    for n, a in answerers.items():
        rows = [{"notes": n, "turn": t.title, "kind": "pseudo", "expect": "fallback"}
                for t in a.retriever.topics]
        for j, it in enumerate(_features(rows, answerers)):
            if "X" not in it or len(it["X"]) < 3:
                continue
            it["X"] = np.delete(it["X"], j, axis=0)
            it["titles"] = it["titles"][:j] + it["titles"][j + 1:]
            it["stats"] = stats[n]
            out.append(it)
    cache.write_bytes(pickle.dumps(out))
    return out


def _logit(item: dict[str, Any], fitted: tuple[Any, Any, float],
           accept: tuple[str, ...]) -> float:
    w, v, b = fitted
    a, _ = _accept_row(item, w, accept)
    return float(a @ v + b)


def per_notes_threshold(items: list[dict[str, Any]], pseudo: list[dict[str, Any]],
                        sets: set[str], accept: tuple[str, ...]) -> dict[str, Any]:
    """Leave one notes file out, with the threshold moved per notes file by how sure the
    model is of the notes' own pseudo near misses (in logits, against the mean of the
    training notes')."""
    import numpy as np

    pool = [it for it in items if it["set"] in sets]
    notes = sorted({it["row"]["notes"] for it in pool})
    out: dict[str, Any] = {}
    for alpha in (0.25, 0.5, 1.0):
        for stat in ("mean", "median", "q75"):
            per = {}
            for n in notes:
                train = [it for it in pool if it["row"]["notes"] != n]
                fitted = fit_items(train, accept)

                def level(m: str, fitted: Any = fitted, stat: str = stat) -> float:
                    z = [_logit(p, fitted, accept) for p in pseudo if p["row"]["notes"] == m]
                    return float({"mean": np.mean, "median": np.median,
                                  "q75": lambda x: np.percentile(x, 75)}[stat](z))

                base = float(np.mean([level(m) for m in notes if m != n]))
                shift = alpha * (level(n) - base)
                thr = 1 / (1 + math.exp(-shift))
                test = [it for it in pool if it["row"]["notes"] == n]
                per[n] = score(test, [predict(it, fitted, accept, thr) for it in test])
                per[n]["threshold"] = round(thr, 3)
            tot = {"right": sum(d["right"] for d in per.values())}
            for k in ("answerable", "out_of_scope", "social"):
                ab = [tuple(map(int, d[k].split("/"))) for d in per.values() if k in d]
                tot[k] = f"{sum(a for a, _ in ab)}/{sum(b for _, b in ab)}"
            per["total"] = tot
            out[f"alpha {alpha}, {stat}"] = per
    return out


def _accept_row(item: dict[str, Any], w: Any, accept: tuple[str, ...]) -> tuple[Any, int]:
    import numpy as np

    from broadcaster.answers.retrieval import QUESTION_FEATURES, RANK_FEATURES

    s = item["X"] @ w
    order = np.argsort(-s, kind="stable")
    i = int(order[0])
    f = dict(zip(RANK_FEATURES, item["X"][i], strict=True))
    f.update(score=s[i], margin=s[i] - (s[order[1]] if len(s) > 1 else 0.0))
    f.update({k: item[k] for k in QUESTION_FEATURES})
    st = item["stats"]
    f.update(cal_title=f["title"] - st["mu_title"], cal_body=f["body"] - st["mu_body"],
             nn_title=f["title"] - float(st["nn_title"][i]),
             nn_body=f["body"] - float(st["nn_body"][i]))
    # per-topic inputs computed elsewhere (bench/conversation_reader.py: the LLM reader)
    f.update({k: float(v[i]) for k, v in item.get("per_topic", {}).items()})
    return np.array([f[k] for k in accept]), i


def fit_items(items: list[dict[str, Any]], accept: tuple[str, ...],
              l2: float = 0.01) -> tuple[Any, Any, float]:
    """bench.conversation_fit._fit_items with the answering inputs as a parameter."""

    w = fit_rank(items, l2)
    v, b = fit_accept(items, lambda it: _accept_row(it, w, accept), l2)
    return w, v, b


def predict(item: dict[str, Any], fitted: tuple[Any, Any, float], accept: tuple[str, ...],
            threshold: float = 0.5) -> str:
    if "fixed" in item:
        return item["fixed"]
    w, v, b = fitted
    a, i = _accept_row(item, w, accept)
    z = max(min(float(a @ v + b), 50.0), -50.0)
    if 1 / (1 + math.exp(-z)) >= threshold:
        return item["titles"][i]
    return "fallback" if item["asked"] else "conversation"


def score(items: list[dict[str, Any]], preds: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for it, s in zip(items, preds, strict=True):
        k = it["row"]["kind"]
        d = out.setdefault(k, [0, 0])
        d[0] += _right(it["row"], s)
        d[1] += 1
    right = sum(v[0] for v in out.values())
    n = sum(v[1] for v in out.values())
    return {"right": right, "n": n, **{k: f"{v[0]}/{v[1]}" for k, v in sorted(out.items())}}


def shipped(lexical: bool) -> tuple[Any, Any, float]:
    import numpy as np

    from broadcaster.answers.retrieval import ACCEPT_FEATURES, RANK_FEATURES, Weights

    wt = Weights()
    if lexical:
        wt = wt.without_embeddings()
    return (np.array([wt.rank.get(k, 0.0) for k in RANK_FEATURES]),
            np.array([wt.accept.get(k, 0.0) for k in ACCEPT_FEATURES]), wt.accept_bias)


def run(lexical: bool) -> dict[str, Any]:
    from broadcaster.answers.retrieval import ACCEPT_FEATURES

    base = tuple(ACCEPT_FEATURES)
    items = extract(lexical)
    old = {p.stem for p in FIT_SETS}
    new = {p.stem for p in NEW}
    fitted_pool = [it for it in items if it["set"] in old | new]
    notes = sorted({it["row"]["notes"] for it in fitted_pool})
    variants: dict[str, tuple[set[str], tuple[str, ...]]] = {
        "refit on round 7's sets": (old, base),
        "refit with tune-r9": (old | new, base),
        "refit with tune-r9, calibrated (mu)": (old | new, (*base, "cal_title", "cal_body")),
        "refit with tune-r9, calibrated (nearest section)": (old | new,
                                                             (*base, "nn_title", "nn_body")),
        "refit with tune-r9, calibrated (both)": (old | new, (*base, *CAL)),
    }
    result: dict[str, Any] = {"lexical": lexical, "when": now_iso(), "machine": machine(),
                              "loo": {}, "eval": {}}
    sw = shipped(lexical)
    # the shipped weights, on every fitted turn (not left out: fitted on the old sets)
    result["loo"]["shipped weights (not refit)"] = {
        n: score([it for it in fitted_pool if it["row"]["notes"] == n],
                 [predict(it, sw, base) for it in fitted_pool if it["row"]["notes"] == n])
        for n in notes}
    result["eval"]["shipped weights (not refit)"] = {
        s.stem: score([it for it in items if it["set"] == s.stem],
                      [predict(it, sw, base) for it in items if it["set"] == s.stem])
        for s in EVAL}
    for name, (sets, accept) in variants.items():
        pool = [it for it in items if it["set"] in sets]
        per = {}
        for n in notes:
            test = [it for it in fitted_pool if it["row"]["notes"] == n]
            fitted = fit_items([it for it in pool if it["row"]["notes"] != n], accept)
            per[n] = score(test, [predict(it, fitted, accept) for it in test])
        result["loo"][name] = per
        fitted = fit_items(pool, accept)
        result["eval"][name] = {
            s.stem: score([it for it in items if it["set"] == s.stem],
                          [predict(it, fitted, accept) for it in items if it["set"] == s.stem])
            for s in EVAL}
    pseudo = extract_pseudo(lexical)
    result["per_notes_threshold"] = per_notes_threshold(items, pseudo, old | new, base)
    result["pseudo_negatives"] = pseudo_negatives(items, pseudo, old | new, base)
    for per in result["loo"].values():
        per["total"] = total(per)
    return result


def total(per: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Add up :func:`score` results (one per notes file) into one."""
    tot: dict[str, Any] = {"right": 0, "n": 0}
    kinds: dict[str, list[int]] = {}
    for d in per.values():
        tot["right"] += d["right"]
        tot["n"] += d["n"]
        for k in ("answerable", "out_of_scope", "social"):
            if k in d:
                a, b = map(int, d[k].split("/"))
                kinds.setdefault(k, [0, 0])
                kinds[k][0] += a
                kinds[k][1] += b
    return {**tot, **{k: f"{a}/{b}" for k, (a, b) in kinds.items()}}


def pseudo_negatives(items: list[dict[str, Any]], pseudo: list[dict[str, Any]],
                     sets: set[str], accept: tuple[str, ...]) -> dict[str, Any]:
    """Leave one notes file out with the training notes' pseudo near misses added to the
    answering model's negatives (once, twice): more varied out-of-scope turns for free."""
    pool = [it for it in items if it["set"] in sets]
    notes = sorted({it["row"]["notes"] for it in pool})
    out: dict[str, Any] = {}
    for reps in (1, 2):
        kinds: dict[str, list[int]] = {}
        for n in notes:
            train = ([it for it in pool if it["row"]["notes"] != n]
                     + [p for p in pseudo if p["row"]["notes"] != n] * reps)
            fitted = fit_items(train, accept)
            for it in (it for it in pool if it["row"]["notes"] == n):
                d = kinds.setdefault(it["row"]["kind"], [0, 0])
                d[0] += _right(it["row"], predict(it, fitted, accept))
                d[1] += 1
        fitted = fit_items(pool + pseudo * reps, accept)
        out[f"pseudo near misses x{reps}"] = {
            "loo": {"right": sum(a for a, _ in kinds.values()),
                    **{k: f"{a}/{b}" for k, (a, b) in kinds.items()}},
            **{s.stem: score([it for it in items if it["set"] == s.stem],
                             [predict(it, fitted, accept)
                              for it in items if it["set"] == s.stem]) for s in EVAL}}
    return out


def plot(result: dict[str, Any], name: str, title: str = "Round 9: leave one notes file out"
         " ({n} turns, 6 notes files)") -> None:
    """Leave one notes file out, per kind, for each variant (``title``: ``{n}`` the turns)."""
    from bench.figures import pyplot

    plt = pyplot()
    if plt is None:
        return
    fig, ax = plt.subplots(figsize=(11, 4.5))
    variants = list(result["loo"])
    kinds = ("answerable", "out_of_scope", "social")
    width = 0.8 / len(variants)
    for j, v in enumerate(variants):
        tot = result["loo"][v]["total"]
        vals = [100 * int(tot[k].split("/")[0]) / int(tot[k].split("/")[1]) for k in kinds]
        vals.append(100 * tot["right"] / tot["n"])
        ax.bar([x + j * width for x in range(4)], vals, width, label=v)
    ax.axhline(90, color="black", lw=0.8, ls="--")
    ax.set_xticks([x + 0.4 - width / 2 for x in range(4)])
    ax.set_xticklabels([*kinds, "all"])
    ax.set_ylim(0, 105)
    ax.set_ylabel("right when the notes file is left out (%)")
    n = result["loo"][variants[0]]["total"]["n"]
    lexical = " without the embedding models" if result["lexical"] else ""
    ax.set_title(title.format(n=n) + lexical, fontsize=9)
    ax.legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    fig.savefig(RESULTS / f"{name}.png", dpi=110)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lexical", action="store_true", help="without the embedding models")
    args = ap.parse_args()
    if args.lexical:
        os.environ["BROADCASTER_MODELS_DIR"] = "/nonexistent"
    result = run(args.lexical)
    name = f"conversation-r9{'-lexical' if args.lexical else ''}"
    write_result(name, result)
    plot(result, name)
    for name, per in result["loo"].items():
        print("LOO", name, per["total"])
    for name, per in result["eval"].items():
        print("EVAL", name, per)
    for name, per in result["per_notes_threshold"].items():
        print("THR", name, per["total"], {n: d.get("threshold") for n, d in per.items()})
    for name, per in result["pseudo_negatives"].items():
        print("AUG", name, per)
    print(RESULTS)


if __name__ == "__main__":
    main()
