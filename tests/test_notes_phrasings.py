"""The host's own phrasings of a topic (``<!-- asked: ... -->``) and ``broadcaster ask --explain``.

A host checks the notes with ``broadcaster ask`` before going live; when a question the
audience will ask gets the fallback, they add the way it is asked to the topic instead of
renaming its heading. The phrasings are never said.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from broadcaster.answers import Answerer, Dialogue, load_notes, parse_notes
from broadcaster.config import DATA_DIR

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = DATA_DIR / "sample-agenda.md"
SETS = ROOT / "bench" / "data" / "conversation"
HEADING = "### Which software is this built on?\n"
UNDER_THE_HOOD = ["what's this running on under the hood", "so what's under the hood here"]


def _with_phrasings(tmp_path: Path, comment: str) -> Path:
    text = SAMPLE.read_text()
    assert HEADING in text
    path = tmp_path / "notes.md"
    path.write_text(text.replace(HEADING, HEADING + comment + "\n"))
    return path


def test_phrasings_are_parsed_from_the_topic_and_never_said():
    notes = parse_notes("## Pricing\n<!-- asked: what does it cost? | is there a free tier\n"
                        "  how much per seat -->\nThree plans.\n<!-- a note -->\n"
                        "## Other\nText.\n")
    pricing, other = notes.topics
    assert pricing.asked == ("what does it cost?", "is there a free tier", "how much per seat")
    assert pricing.answer == "Three plans."
    assert other.asked == ()


@pytest.mark.parametrize("comment", ["<!-- asked: just words, no heading -->"])
def test_phrasings_outside_a_topic_are_ignored(comment):
    notes = parse_notes(f"{comment}\n## Only\nText.\n")
    assert [t.asked for t in notes.topics] == [()]


def test_a_host_phrasing_answers_the_way_people_ask(tmp_path):
    before = Answerer(load_notes(SAMPLE))
    assert [before.reply(q, Dialogue()).source for q in UNDER_THE_HOOD] == ["fallback"] * 2
    after = Answerer(load_notes(_with_phrasings(
        tmp_path, "<!-- asked: what's under the hood? | what is it running on -->")))
    replies = [after.reply(q, Dialogue()) for q in UNDER_THE_HOOD]
    assert [r.source for r in replies] == ["Which software is this built on?"] * 2
    assert "under the hood" not in replies[0].text  # the phrasing is not said


def test_a_phrasing_does_not_pull_other_questions(tmp_path):
    """Every sample-agenda turn of the tuning set answers as before with a phrasing added."""
    plain = Answerer(load_notes(SAMPLE))
    phrased = Answerer(load_notes(_with_phrasings(
        tmp_path, "<!-- asked: what's under the hood? | what is it running on -->")))
    rows = [json.loads(x) for x in (SETS / "tune.jsonl").read_text().splitlines()]
    rows = [r for r in rows if r["notes"] == "sample-agenda"]
    assert len(rows) > 30
    changed = [r["turn"] for r in rows
               if plain.reply(r["turn"], Dialogue()).source
               != phrased.reply(r["turn"], Dialogue()).source]
    assert changed == []


def _ask(*args: str, stdin: str = "") -> list[dict]:
    r = subprocess.run([sys.executable, "-m", "broadcaster", "ask", *args], input=stdin.encode(),
                       capture_output=True, timeout=60,
                       env={**os.environ, "BROADCASTER_STATE_DIR": "/nonexistent"})
    assert r.returncode == 0, r.stderr
    return [json.loads(x) for x in r.stdout.decode().splitlines()]


def test_ask_explain_shows_how_sure_and_the_runners_up():
    lines = _ask("--notes", str(SAMPLE), "--explain",
                 stdin="will this be recorded\nhi there\nwho won the football last night\n")
    recorded, hello, football = lines
    assert recorded["source"] == "Will the recording be available afterwards?"
    assert 0.5 <= recorded["confidence"] <= 1
    headings = [c["heading"] for c in recorded["candidates"]]
    assert headings[0] == recorded["source"] and len(headings) == 3
    scores = [c["score"] for c in recorded["candidates"]]
    assert scores == sorted(scores, reverse=True)
    assert hello["source"] == "conversation" and hello["confidence"] is None
    assert hello["candidates"] == []
    assert football["source"] == "fallback" and football["confidence"] < 0.5
    assert len(football["candidates"]) == 3  # what it was closest to, for the host


def test_ask_without_explain_prints_only_the_three_fields():
    (line,) = _ask("--notes", str(SAMPLE), "will this be recorded")
    assert set(line) == {"question", "answer", "source"}
