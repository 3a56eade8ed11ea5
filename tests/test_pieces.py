"""bench.conversation_pieces (round 10's experiment): a notes sentence cut into its facts.

What a presenter would notice: a question about one detail of a long sentence ("can a
task come back every week", against "New in this version: boards and a timeline view
share the same tasks, tasks can repeat on a schedule, and every team gets a weekly
summary email") is close to that detail, not diluted by the rest of the sentence. The
real embedding models (deploy/models.sh), as in tests/test_encoder.py.
"""

from __future__ import annotations

from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from bench.conversation_pieces import MIN_WORDS, clauses, pieces
from bench.conversation_r10 import _piece_features
from broadcaster.answers import Answerer, load_notes
from broadcaster.answers.text import words

LAUNCH = Path(__file__).resolve().parents[1] / "docs" / "examples" / "product-launch.md"
LISTING = ("New in this version: boards and a timeline view share the same tasks, tasks can "
           "repeat on a schedule, and every team gets a weekly summary email.")


def test_a_sentence_listing_facts_is_cut_into_one_fact_each():
    assert clauses(LISTING) == [
        "New in this version: boards and a timeline view share the same tasks",
        "tasks can repeat on a schedule", "every team gets a weekly summary email"]


def test_short_list_items_stay_together_with_their_words():
    # a list of names is one piece; "or later" is not rewritten as "and later"
    assert clauses("Plover 2 runs in Chrome, Firefox, Safari and Edge.") == [
        "Plover 2 runs in Chrome, Firefox, Safari and Edge"]
    assert "Desktop apps are available for Windows 10 or later and macOS 13 or later" in clauses(
        "Desktop apps are available for Windows 10 or later and macOS 13 or later, and mobile "
        "apps for iOS 16 or later and Android 10 or later.")


def test_pieces_keep_each_sentence_and_add_its_clauses_once():
    assert pieces([LISTING, "Yes.", LISTING]) == [LISTING, *clauses(LISTING), "Yes."]


_WORD = st.sampled_from(["tasks", "repeat", "schedule", "and", "or", "the", "team", "weekly",
                         "email", "plan", "costs", "6", "euros", "Frankfurt", "a", "is"])
_SEP = st.sampled_from([" ", " ", " ", ", ", "; ", ": ", " and ", " or ", " - "])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(_WORD, _SEP), min_size=1, max_size=40))
def test_clauses_lose_no_word_and_none_is_too_short(parts):
    sentence = "".join(w + s for w, s in parts).strip() + "."
    got = clauses(sentence)
    assert got, sentence
    # every content word of the sentence is in some clause, in order
    assert [w for c in got for w in words(c)] == words(sentence)
    if len(got) > 1:
        assert all(len(words(c)) >= MIN_WORDS for c in got), got


def test_a_detail_of_a_long_sentence_is_closest_in_its_own_topic():
    """The whole sentence is closer in another topic; the piece holding the detail wins."""
    ret = Answerer(load_notes(LAUNCH)).retriever
    question = "can I make a to-do come back every week"
    hits = {h.topic.title: h.features for h in ret.match(question).hits}
    per, _ = _piece_features(ret, question)
    by_piece = ret.topics[int(per["piece"].argmax())].title
    assert by_piece == "What Plover 2 is"
    assert max(hits, key=lambda t: hits[t]["sentence"]) != by_piece
    assert per["piece"].max() > hits[by_piece]["sentence"] + 0.05
