"""broadcaster.answers: notes, conversational acts, retrieval on unseen phrasing, `ask`.

The accuracy figures belong to bench/conversation.py; here slices of the sets must
stay above a floor, so a change that breaks the responder fails CI.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from broadcaster.answers import Answerer, Dialogue, load_notes, parse_notes
from broadcaster.answers.acts import split_turn
from broadcaster.answers.qtypes import question_types
from broadcaster.answers.text import normalize, words
from broadcaster.config import DATA_DIR, ConfigError

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = DATA_DIR / "sample-agenda.md"
LAUNCH = ROOT / "docs" / "examples" / "product-launch.md"
SETS = ROOT / "bench" / "data" / "conversation"
TUNE = SETS / "tune.jsonl"
COURSE = ROOT / "docs" / "examples" / "course-intro.md"
ENERGY = ROOT / "docs" / "examples" / "home-energy.md"


@pytest.fixture(scope="module")
def answerers() -> dict[str, Answerer]:
    return {"sample-agenda": Answerer(load_notes(SAMPLE)),
            "product-launch": Answerer(load_notes(LAUNCH)),
            "course-intro": Answerer(load_notes(COURSE)),
            "home-energy": Answerer(load_notes(ENERGY)),
            "rowing-season": Answerer(load_notes(ROOT / "docs" / "examples" / "rowing-season.md")),
            "security-briefing": Answerer(
                load_notes(ROOT / "docs" / "examples" / "security-briefing.md"))}


def test_speech_recognition_style_text_is_normalized():
    assert normalize("What's the PLAN, um, for today?") == "what is the plan for today"
    assert normalize("whats the plan for today") == "what is the plan for today"
    assert normalize("I can't hear Tomás") == "i can not hear tomas"
    assert words("will my plover one projects carry over") == ["plover", "1", "projects", "carry"]
    # speech recognition spells acronyms out
    assert normalize("is there an a p i") == "is there an api"
    assert normalize("who are the T A's") == "who are the ta"


def test_who_asks_for_a_person_only_as_the_question_word():
    assert question_types("who is hosting today") == {"person"}
    assert question_types("can you tell me who is presenting") == {"person"}
    assert question_types("is there a transcript for people who are hard of hearing") == set()


@pytest.mark.parametrize(("turn", "act", "question"), [
    ("Hello, can you hear me?", "hearing_check", ""),
    ("Thanks, that was helpful", "thanks", ""),
    ("Hold on, stop there, let me ask something else", "hold_on", ""),
    ("Okay, please go on", "go_on", ""),
    ("Good morning everyone", "greeting", ""),
    ("see you next time", "goodbye", ""),
    ("could you say that again", "repeat", ""),
    ("hi, quick question: will it be recorded?", "greeting", "will it be recorded"),
    ("will it be recorded thanks", "thanks", "will it be recorded"),
    ("can i ask the avatar something directly", None, "can i ask the avatar something directly"),
])
def test_turns_split_into_acts_and_question(turn, act, question):
    t = split_turn(normalize(turn))
    assert t.question == question
    assert (t.acts[0] if t.acts else None) == act


def test_hosts_override_conversation_replies(tmp_path):
    notes = parse_notes(
        "## Agenda\nWe demo at ten.\n\n## Conversation\n\n### greeting\n"
        "- Hi there, welcome to the launch!\n- Hello again!\n\n### goodbye\nSee you soon.\n"
        "\n## Fallback\nNot in my notes.\n")
    assert [t.title for t in notes.topics] == ["Agenda"]
    assert notes.conversation == {"greeting": ("Hi there, welcome to the launch!",
                                               "Hello again!"),
                                  "goodbye": ("See you soon.",)}
    a = Answerer(notes)
    assert [a.reply("hello").text for _ in range(3)] == [
        "Hi there, welcome to the launch!", "Hello again!", "Hi there, welcome to the launch!"]
    assert a.reply("bye everyone").text == "See you soon."
    assert a.reply("thank you").text == "You're welcome!"  # not overridden: built in
    assert a.reply("who won the football").source == "fallback"
    assert "Hi there, welcome to the launch!" in a.known_answers()


@pytest.mark.parametrize("text", ["", "<!-- only a comment -->", "# Title only\n", "just text"])
def test_notes_without_topics_are_refused(tmp_path, text):
    path = tmp_path / "notes.md"
    path.write_text(text)
    with pytest.raises(ConfigError, match="has no topics"):
        load_notes(path)


def test_unreadable_notes_name_the_file(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_notes(tmp_path / "missing.md")
    with pytest.raises(ConfigError, match="is a directory"):
        load_notes(tmp_path)
    huge = tmp_path / "huge.md"
    huge.write_text("## Topic\n" + "words " * 200_000)
    with pytest.raises(ConfigError, match="at most 1000 kB"):
        load_notes(huge)
    binary = tmp_path / "b.md"
    binary.write_bytes(b"\xff\xfe\x00## x\n")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_notes(binary)


@pytest.mark.parametrize(("name", "step", "floor"), [
    ("tune", 4, 0.85),  # fitted on (with dev and heldout-v1)
    ("heldout-v1", 3, 0.72),  # written blind by someone else; fitted on since round 2
    ("course", 2, 0.65),  # course-intro turns, fitted on since round 2
    ("heldout-r2", 2, 0.75),  # a notes file and turns never fitted on (87.5 % in the bench)
    ("tune-r9", 3, 0.65),  # round 9's two notes files, never fitted on (73.2 % in the bench)
])
def test_slices_of_the_sets_stay_above_a_floor(answerers, name, step, floor):
    """Every step-th turn; bench/conversation.py reports the real figures."""
    rows = [json.loads(line) for line in (SETS / f"{name}.jsonl").read_text().splitlines()]
    rows = rows[::step]
    right = 0
    for r in rows:
        source = answerers[r["notes"]].reply(r["turn"], Dialogue()).source
        right += source == r["expect"] or source in r.get("also", [])
    assert right / len(rows) >= floor, f"{right}/{len(rows)}"


@pytest.mark.parametrize("turn", [
    # a hearing check names whoever is listening, wherever they are, in any words
    "can the folks at the very back hear me", "can everybody in the hall hear me alright",
    "do the people watching online hear us okay", "is this microphone thing on",
    "is the mic working", "can the viewers at home still hear me",
])
def test_a_hearing_check_names_any_listener(answerers, turn):
    for a in answerers.values():
        reply = a.reply(turn, Dialogue())
        assert (reply.source, reply.act) == ("conversation", "hearing_check"), turn


@pytest.mark.parametrize("turn", [
    "are you able to hear me okay", "avatar can you hear me now",
    "is my audio coming through on your side", "hi are you ready to go",
    "perfect thanks so much", "you sound very natural", "you're doing great",
    "that's everything from my side, thanks all", "see you all next wednesday",
    "thanks, that clears it up", "sorry I was on mute",
])
def test_conversational_turns_get_a_conversational_reply(answerers, turn):
    for a in answerers.values():
        assert a.reply(turn, Dialogue()).source == "conversation", turn


@pytest.mark.parametrize("turn", [
    "sorry, you cut out there", "one more question", "I've got another one actually",
    "can I jump in here", "you're breaking up a bit", "hang on a sec, let me find my notes",
    "brilliant, cheers Lena", "I'll leave it there", "that's all from me", "wait, I lost you",
])
def test_turns_that_only_keep_the_conversation_going_never_get_the_fallback(answerers, turn):
    for a in answerers.values():
        reply = a.reply(turn, Dialogue())
        assert reply.source == "conversation" and reply.text != a.notes.fallback, turn


def test_after_a_dropout_the_last_answer_is_said_again(answerers):
    a = answerers["sample-agenda"]
    reply = a.reply("sorry, you cut out", Dialogue(last="We start at four."))
    assert reply.source == "conversation" and reply.text.endswith("We start at four.")
    # a problem report after a social phrase is still answered from the notes
    assert a.reply("sorry, there's no sound", Dialogue()).source.startswith("The video is frozen")


@pytest.mark.parametrize("turn", [
    "what do you think about AI taking jobs", "what's your favourite movie",
    "do you like pizza", "what's your take on remote work",
])
def test_opinions_are_deflected_not_answered_from_a_topic(answerers, turn):
    for a in answerers.values():
        assert a.reply(turn, Dialogue()).source == "fallback", turn


def test_a_detail_the_notes_lack_gets_the_fallback(answerers):
    launch = answerers["product-launch"]
    assert launch.reply("how much is the team plan", Dialogue()).source == "Pricing and plans"
    # the notes have prices, not payment methods: "paypal" is what this question is about
    assert launch.reply("can I pay with paypal", Dialogue()).source == "fallback"


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(max_size=300))
def test_any_transcript_gets_a_reply_from_the_notes(answerers, text):
    a = answerers["product-launch"]
    reply = a.reply(text, Dialogue())
    titles = {t.title for t in a.notes.topics}
    assert reply.source in titles | {"fallback", "conversation"}
    assert reply.text and reply.text.strip() == reply.text


def _ask(*args: str, stdin: str | bytes = b"", **env: str) -> subprocess.CompletedProcess:
    data = stdin.encode() if isinstance(stdin, str) else stdin
    return subprocess.run([sys.executable, "-m", "broadcaster", "ask", *args], input=data,
                          capture_output=True, timeout=60,
                          env={**os.environ, "BROADCASTER_STATE_DIR": "/nonexistent", **env})


def test_ask_prints_one_json_line_per_question():
    r = _ask("--notes", str(LAUNCH), stdin="hi, can you hear me?\n\nhow much is the team plan\n"
             "who won the football last night\n")
    assert r.returncode == 0, r.stderr
    lines = [json.loads(x) for x in r.stdout.decode().splitlines()]
    assert [x["source"] for x in lines] == ["conversation", "Pricing and plans", "fallback"]
    assert lines[1]["question"] == "how much is the team plan"
    assert "6 euros" in lines[1]["answer"]
    assert not Path("/nonexistent").exists()  # no secrets generated for a dry run


def test_ask_uses_the_bots_settings():
    r = _ask("will there be a recording", BROADCASTER_FAQ_PATH=str(SAMPLE))
    assert json.loads(r.stdout)["source"] == "Will the recording be available afterwards?"
    r = _ask("will there be a recording", BROADCASTER_FAQ_PATH=str(SAMPLE),
             BROADCASTER_ANSWER_THRESHOLD="1.0")
    assert json.loads(r.stdout)["source"] == "fallback"


def test_ask_defaults_to_the_shipped_sample_notes():
    # no --notes, no setting: the package's own sample agenda (a host's first try)
    env = {k: v for k, v in os.environ.items() if not k.startswith("BROADCASTER_")}
    r = subprocess.run([sys.executable, "-m", "broadcaster", "ask", "will there be a recording"],
                       capture_output=True, timeout=60, env=env, cwd="/")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["source"] == "Will the recording be available afterwards?"


@pytest.mark.parametrize(("args", "stdin", "message"), [
    (["--notes", "/no/such/notes.md", "hi"], b"", "'/no/such/notes.md' does not exist"),
    (["--notes", "/tmp", "hi"], b"", "'/tmp' is a directory"),
    (["--notes", "", "hi"], b"", "--notes is empty"),
    (["--notes", str(SAMPLE), ""], b"", "question 1 is empty"),
    (["--notes", str(SAMPLE), "x" * 2001], b"", "question 1 is 2001 characters long"),
    (["--notes", str(SAMPLE)], b"hello\n\xff\xfe\n", "stdin line 2 is not UTF-8"),
])
def test_ask_names_bad_input_without_a_traceback(args, stdin, message):
    r = _ask(*args, stdin=stdin)
    err = r.stderr.decode()
    assert r.returncode == 2 and message in err, err
    assert "Traceback" not in err


def test_ask_refuses_notes_with_nothing_to_answer(tmp_path):
    empty = tmp_path / "empty.md"
    empty.write_text("# Nothing here\n")
    r = _ask("--notes", str(empty), "hi")
    assert r.returncode == 2 and "has no topics" in r.stderr.decode()
    r = _ask("--config", str(tmp_path / "nope.toml"), "hi")
    assert r.returncode == 2 and "nope.toml does not exist" in r.stderr.decode()


@pytest.mark.parametrize(("turn", "source"), [
    ("one second, my dog is barking", "conversation"),  # a social phrase, then a remark
    ("I'll let you go", "conversation"),  # a remark, not a question
    ("who won the football last night", "fallback"),  # a question the notes lack
    ("I'd like a refund for my ticket", "fallback"),  # a request the notes lack
    ("I might be away next week, can I get a refund", "fallback"),  # asked mid-sentence
])
def test_remarks_are_not_answered_as_questions(answerers, turn, source):
    assert answerers["sample-agenda"].reply(turn, Dialogue()).source == source


@pytest.mark.parametrize("turn", [
    # a social core with a remark around it, not a question about the notes
    "thanks, that was exactly what I needed to know",
    "can you hear me alright, my audio's been a bit funny today",
    "are you getting me, I think my mic keeps dropping out",
    "did my voice drop out just then, can you still hear me",
    "sorry, go ahead, what were you saying",
    "please carry on where you left off",
    "go ahead and finish your answer",
    "bear with me for a second while I sort this out",
    "I love how quickly you answer",
    "I'm a bit nervous, this is my first online course",
])
def test_a_social_core_with_words_around_it_stays_social(answerers, turn):
    for a in answerers.values():
        assert a.reply(turn, Dialogue()).source == "conversation", turn


@pytest.mark.parametrize(("notes", "turn", "source"), [
    # a social phrase joined to a real question stays a question
    ("product-launch", "great demo, when can we actually get it", "Release dates and availability"),
    ("sample-agenda", "hello, can you hear me? will this be recorded",
     "Will the recording be available afterwards?"),
    ("sample-agenda", "if I miss part of it can I watch it later",
     "Will the recording be available afterwards?"),
    # a bare fragment is not answered from a topic its heading does not name
    ("sample-agenda", "today", "fallback"),
    ("product-launch", "tomorrow", "fallback"),
    ("product-launch", "pricing", "Pricing and plans"),
])
def test_questions_and_fragments_around_social_phrases(answerers, notes, turn, source):
    assert answerers[notes].reply(turn, Dialogue()).source == source


# ----------------------------------------------------------------- round 4: readings, types
# notes no set was written on, and turns that are in no set
BAKERY = """# Sourdough at home — live baking class

A live class from the Crumb & Co bakery, Saturday 6 June from 10 am to noon.

## What we bake today

We mix a country loaf together, shape it, and bake it in a cast iron pot.

## Your teacher

Your teacher is Marta Silva, head baker at Crumb & Co for twelve years.

## What you need at home

A kitchen scale, a big bowl, a cast iron pot with a lid, flour, salt and a jar of
starter.

## Class fee and refunds

The class costs 35 euros. Cancel up to two days before for a full refund.

## Fallback

That isn't in my class notes.
"""


@pytest.fixture(scope="module")
def bakery() -> Answerer:
    return Answerer(parse_notes(BAKERY))


def test_a_turns_readings_drop_the_preamble_undo_the_frame_and_split_two_questions():
    from broadcaster.answers.rewrite import queries, unframe

    q = normalize("so lots of you have been writing in, and I was wondering, what flour is best")
    assert queries("so lots of you have been writing in, and I was wondering, what flour is "
                   "best", q)[1:] == ["what flour is best"]
    assert unframe("can you remind everybody when the loaf goes in") == "when the loaf goes in"
    assert unframe("i wanted to check whether the pot needs a lid") == "the pot needs a lid"
    two = queries("do I need a scale, and is rye flour fine", "do i need a scale and is rye "
                                                              "flour fine")
    assert "do i need a scale" in two and "is rye flour fine" in two


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_readings_start_with_the_whole_question_and_stay_few(text):
    from broadcaster.answers.rewrite import MAX_QUERIES, queries

    question = split_turn(normalize(text)).question
    out = queries(text, question)
    assert out[0] == question and 1 <= len(out) <= MAX_QUERIES
    assert all(words(q) for q in out[1:])


@pytest.mark.parametrize(("turn", "source"), [
    # a question after a preamble, or framed, still finds its topic
    ("right, so loads of people in the chat have been asking about this, who's teaching",
     "Your teacher"),
    ("somebody wants to know if they need a special pot", "What you need at home"),
    ("a couple of people asked this earlier, can they get their money back",
     "Class fee and refunds"),
    # a price asked of a topic with no price, a count of a thing the topic never names
    ("how much is a jar of starter", "fallback"),
    # a price of a thing the priced topic never names; a price it does name
    ("how much does the cast iron pot cost", "fallback"),
    ("how much is the class", "Class fee and refunds"),
    ("how many students has Marta taught", "fallback"),
    # a taste, not a fact, whoever's it is
    ("what's Marta's favourite bread", "fallback"),
])
def test_round_four_turns_on_notes_no_set_was_written_on(bakery, turn, source):
    assert bakery.reply(turn, Dialogue()).source == source, turn


def test_how_much_of_a_thing_is_a_quantity_not_a_price():
    assert "money" not in question_types(normalize("how much flour do I need"))
    assert "money" in question_types(normalize("how much is it"))
    assert "money" in question_types(normalize("how much does the class cost"))


# ----------------------------------------------------------------- round 5: named facts
# A fact asked for by name (an e-mail address, a phone number, the office, a future event,
# a language) must be in the topic that answers; a topic near in words is not enough.
# Turns written for these tests; none is in a bench set.
@pytest.mark.parametrize(("notes", "turn", "source"), [
    ("sample-agenda", "could I have Sam's email address for later", "fallback"),
    ("sample-agenda", "is there a phone line for technical problems", "fallback"),
    ("sample-agenda", "will you run a second webinar in the spring", "fallback"),
    ("sample-agenda", "can the avatar answer in german", "fallback"),
    ("product-launch", "where is plover's head office", "fallback"),
    # the same kinds of fact, where the notes do hold them
    ("product-launch", "what email address do I write to when something breaks",
     "How do I get help if something goes wrong?"),
    ("product-launch", "is it available in french", "Release dates and availability"),
    ("home-energy", "what phone number can I call you on after tonight",
     "How do I contact Greenfield after the webinar?"),
])
def test_a_fact_asked_by_name_must_be_in_the_topic(answerers, notes, turn, source):
    assert answerers[notes].reply(turn, Dialogue()).source == source


@pytest.mark.parametrize("turn", [
    "testing testing, is my audio coming through",
    "am I still connected or did I lose you",
    "hang on, I need to find my notes",
    "one sec, let me pull up the page",
])
def test_audio_checks_and_looking_for_notes_are_social(answerers, turn):
    assert answerers["course-intro"].reply(turn, Dialogue()).source == "conversation"


@pytest.mark.parametrize(("notes", "turn", "source"), [
    # the attendee's word for what the host wrote in other words (text.SYNONYM_GROUPS)
    ("course-intro", "what's the curriculum", "Course outline"),
    ("course-intro", "what modules are covered", "Course outline"),
    ("sample-agenda", "what tooling did you use to build the avatar",
     "Which software is this built on?"),
    ("product-launch", "what apps does it hook into", "Which tools does Plover connect to?"),
])
def test_everyday_words_reach_the_topic_written_in_other_words(answerers, notes, turn, source):
    assert answerers[notes].reply(turn, Dialogue()).source == source


def test_word_groups_stand_for_each_other_both_ways():
    from broadcaster.answers.text import SYNONYM_GROUPS, SYNONYMS

    for group in SYNONYM_GROUPS:
        for word in group:
            assert set(group) - {word} <= set(SYNONYMS[word]), word


def test_every_example_notes_file_is_in_the_bench_and_loads():
    """The bench scores every example the docs ship; each loads with topics and a fallback."""
    from bench.conversation import NOTES

    examples = {p.stem for p in (ROOT / "docs" / "examples").glob("*.md")}
    assert examples <= set(NOTES), examples - set(NOTES)
    for name, path in NOTES.items():
        notes = load_notes(path)
        assert len(notes.topics) >= 5, name
        assert notes.fallback, name
    for path in sorted(SETS.glob("*.jsonl")):
        for line in path.read_text().splitlines():
            assert json.loads(line)["notes"] in NOTES, path.name
