"""Round 10's experiment: contextual word-level matching (ColBERT-style MaxSim) as inputs.

``python -m bench.conversation_tokens``: each content word of the question (its subword
vectors averaged) is matched to its closest word of each topic by an encoder's own
contextual token vectors (all-MiniLM-L6-v2, then bge-small-en-v1.5); the mean and the
weakest matches (``cb_mean``, ``cb_min``, ``cb_min2``: "is there a *cafe*" has no
counterpart in an accessibility topic) go to the answering model. Compared
by leave-one-notes-file-out cross-validation over the fitted sets plus ``tune-r9`` (every
variant refit per fold, as in bench/conversation_r9.py) and on the unfitted sets. Not
adopted (docs/notes.md, round 10); results in bench/results/conversation-tokens.json.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.conversation import FIT_SETS, _answerers  # noqa: E402
from bench.conversation_r9 import extract, fit_items, predict, score  # noqa: E402
from bench.figures import write_result  # noqa: E402
from broadcaster.answers.acts import split_turn  # noqa: E402
from broadcaster.answers.retrieval import ACCEPT_FEATURES  # noqa: E402
from broadcaster.answers.text import STOPWORDS, normalize  # noqa: E402

CB = ("cb_mean", "cb_min", "cb_min2")


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
    """Put each item's per-topic :data:`CB` inputs (``model``: "minilm" or "bge")."""
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
        it.setdefault("per_topic", {}).update(
            {k: np.array([r[j] for r in rows]) for j, k in enumerate(CB)})


VARIANTS = {
    "baseline (round 7's inputs, refit)": ACCEPT_FEATURES,
    "+cb to answering": ACCEPT_FEATURES + CB,
    "+cb_min to answering": ACCEPT_FEATURES + ("cb_min",),
    "+cb_mean to answering": ACCEPT_FEATURES + ("cb_mean",),
}
"""The answering model's inputs per variant; ranking stays round 7's (fitted per fold as
bench/conversation_r9.py does, whose ``fit_items`` reads ``per_topic`` inputs)."""


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
        for name, accept in VARIANTS.items():
            preds, per = [], {}
            for n in notes:
                f = fit_items([it for it in pool if it["row"]["notes"] != n], accept)
                test = [it for it in pool if it["row"]["notes"] == n]
                got = [predict(it, f, accept) for it in test]
                preds += list(zip(test, got, strict=True))
                per[n] = score(test, got)["right"]
            f = fit_items(pool, accept)
            row = {"leave_one_notes_file_out": score([i for i, _ in preds], [g for _, g in preds]),
                   "per_notes": per, "unfitted": {}}
            for s in sorted({it["set"] for it in unfitted}):
                test = [it for it in unfitted if it["set"] == s]
                row["unfitted"][s] = score(test, [predict(it, f, accept) for it in test])
            result[f"{model}: {name}"] = row
            print(f"{model}: {name}", row, flush=True)
    return result


if __name__ == "__main__":
    print(write_result("conversation-tokens", run()))
