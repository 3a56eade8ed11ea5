"""broadcaster.answers.encoder: bge-small-en-v1.5 (int8 ONNX) as deploy/models.sh installs it.

The real model, not a stand-in: these tests need `deploy/install.sh` to have fetched it
(it does at every level). What a presenter would notice is a question matched to the
section that answers it though they share no word ("tech stack" / "which software"),
and a responder that still answers, by words, when the model is missing.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from loguru import logger

from broadcaster.answers import encoder as enc_mod
from broadcaster.answers.encoder import (
    MODEL,
    MODELS,
    SECOND,
    SentenceEncoder,
    sentence_encoder,
    sentence_encoders,
)

PARAPHRASES = [  # (question, the heading that answers it, another heading of those notes)
    ("what's the tech stack behind this", "Which software is this built on?",
     "Will the slides be shared?"),
    ("um what does the syllabus look like", "Course outline", "When are office hours?"),
    ("what integrations do you have", "Which tools does Plover connect to?",
     "Is there a free trial?"),
    ("can i watch it later", "Will the live sessions be recorded?",
     "How much does the course cost, and can I get a refund?"),
    ("we're on trello, how do we switch", "How do I move my projects over from another tool?",
     "Where is my data stored, and who can see it?"),
]


@pytest.fixture(scope="module", params=[MODEL, SECOND], ids=lambda m: m.name)
def enc(request) -> SentenceEncoder:
    encoder = sentence_encoder(request.param)
    assert encoder is not None, f"no model in {enc_mod.model_dir(request.param)}: run install"
    return encoder


@pytest.mark.parametrize(("question", "right", "wrong"), PARAPHRASES)
def test_a_paraphrase_with_no_shared_word_is_nearer_its_heading(enc, question, right, wrong):
    q = enc.encode([question], query=True)[0]
    near, far = enc.encode([right, wrong], query=True)
    assert float(q @ near) > float(q @ far) + 0.05


SENTENCES = [  # the notes' sentences (sample-agenda) the questions below are matched against
    "Yes. The webinar is recorded, and the recording and the captions are sent to every "
    "registered attendee within a day.",
    "Just a modern web browser. There is nothing to install and no account to create.",
    "The stage is a self-hosted LiveKit server, the avatar runs in a pipecat pipeline.",
    "Type your question in the questions box under the video.",
]


@pytest.mark.parametrize(("question", "right"), [("can i catch up on it afterwards", 0),
                                                 ("where do i put my question", 3)])
def test_a_question_is_nearest_the_sentence_that_answers_it(enc, question, right):
    sims = enc.encode(SENTENCES) @ enc.encode_one(question)
    assert int(np.argmax(sims)) == right, sims


@settings(max_examples=20, deadline=None)
@given(st.lists(st.text(min_size=0, max_size=60), min_size=1, max_size=5),
       st.sampled_from(MODELS))
def test_vectors_are_unit_length_and_independent_of_the_batch(texts, model):
    enc = sentence_encoder(model)
    assert enc is not None
    together = enc.encode(texts)
    assert together.shape == (len(texts), enc.dim) and together.dtype == np.float32
    assert np.allclose(np.linalg.norm(together, axis=1), 1.0, atol=1e-4)
    alone = np.stack([enc.encode([t])[0] for t in texts])
    assert np.allclose(together, alone, atol=2e-3)  # padding changes nothing
    enc.forget_recent()
    questions = enc.encode(texts, query=True)
    remembered = enc.encode_many([*texts, *texts])  # repeats, then from memory
    assert np.allclose(remembered, np.concatenate([questions, questions]), atol=2e-3)


def test_long_inputs_are_cut_not_refused(enc):
    vec = enc.encode(["word " * 5000])
    assert vec.shape == (1, enc.dim) and np.isfinite(vec).all()


def test_the_notes_embeddings_are_cached_on_disk_by_content_and_role(enc, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    texts = ["Pricing and plans", "There are three plans."]
    first = enc.encode_cached(texts)
    files = list((tmp_path / "broadcaster" / "embeddings").glob("*.npy"))
    assert len(files) == 1
    assert np.array_equal(enc.encode_cached(texts), first)
    as_questions = enc.encode_cached(texts, query=True)  # another role: another file
    assert len(list((tmp_path / "broadcaster" / "embeddings").glob("*.npy"))) == 2
    if enc.model.query_prefix:  # bge puts its instruction in front of a question
        assert not np.allclose(as_questions, first)
    files[0].write_bytes(b"not numpy")  # a broken cache file is recomputed, not trusted
    assert np.allclose(enc.encode_cached(texts), first)
    monkeypatch.setenv("XDG_CACHE_HOME", "/proc/no-such-place")  # unwritable: still works
    assert np.allclose(enc.encode_cached(texts), first)


def test_the_installed_models_are_the_pinned_ones():
    script = (Path(__file__).resolve().parents[1] / "deploy" / "models.sh").read_text()
    for model in MODELS:
        d = enc_mod.model_dir(model)
        assert (d / model.onnx).stat().st_size > 20_000_000
        assert (d / model.tokenizer).is_file()
        assert f'"{model.name}|' in script


@pytest.fixture
def no_model(tmp_path, monkeypatch):
    """The model's files are not there (a machine where deploy/models.sh did not run)."""
    monkeypatch.setenv("BROADCASTER_MODELS_DIR", str(tmp_path / "models"))
    sentence_encoder.cache_clear()
    yield tmp_path / "models" / MODEL.name
    sentence_encoder.cache_clear()


def _warnings() -> tuple[list[str], int]:
    seen: list[str] = []
    return seen, logger.add(lambda m: seen.append(str(m)), level="WARNING")


def test_a_missing_model_is_said_once_and_the_responder_answers_by_words(no_model):
    from broadcaster.answers.answerer import Answerer
    from broadcaster.answers.notes import load_notes
    from broadcaster.config.paths import DATA_DIR

    seen, sink = _warnings()
    try:
        answerer = Answerer(load_notes(DATA_DIR / "sample-agenda.md"))
        again = Answerer(load_notes(DATA_DIR / "sample-agenda.md"))
    finally:
        logger.remove(sink)
    assert sum("word matching only" in s for s in seen) == 1, seen
    assert answerer.retriever.encoder is None and again.retriever.encoder is None
    assert sentence_encoders() is None
    reply = answerer.reply("will the slides be shared afterwards")
    assert reply.source == "Will the slides be shared?"
    assert reply.hits[0].features["body"] == 0.0  # no embedding took part
    assert answerer.reply("who won the football last night").source == "fallback"
    assert answerer.reply("hello, can you hear me?").source == "conversation"


def test_one_missing_model_means_word_matching(no_model):
    """The weights are fitted on both models' similarities: one alone is not used."""
    import os

    real = Path(enc_mod.PROJECT_ROOT / ".tools" / "models" / MODEL.name)
    no_model.parent.mkdir(parents=True)
    os.symlink(real, no_model)  # the first model is there, the second is not
    assert sentence_encoder(MODEL) is not None
    assert sentence_encoders() is None


def test_a_broken_model_file_is_not_fatal(no_model):
    no_model.mkdir(parents=True)
    (no_model / MODEL.onnx).write_bytes(b"not an onnx model")
    (no_model / MODEL.tokenizer).write_text("{}")
    seen, sink = _warnings()
    try:
        assert sentence_encoder() is None
    finally:
        logger.remove(sink)
    assert any("did not load" in s for s in seen), seen
