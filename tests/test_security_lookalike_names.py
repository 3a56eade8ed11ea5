"""A viewer may not take a staff name spelled with look-alike letters (a known limit
closed): ``Ноst`` with Cyrillic letters, Greek capitals, mixed scripts, zero-width joiners
and combining marks read as "Host" to the audience, so the join is refused (422 naming
the name and why), as for "Host" itself; names in every script that read as themselves
still get in. The look-alikes below are written here by hand (Cyrillic, Greek, Armenian,
Cherokee, IPA), apart from the Unicode data the check uses. Against the session's app."""

from __future__ import annotations

import uuid

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fixtures_web import WebClient

FUZZ = settings(max_examples=60, deadline=None, derandomize=True,
                suppress_health_check=list(HealthCheck))
STAFF = ["Host", "Avatar", "Presenter", "Moderator", "Admin", "Administrator", "Organizer",
         "Staff", "System", "Support", "Broadcaster", "Bot"]
#: letters of the staff words and what a viewer could type instead (not Latin)
LOOKALIKES = {
    "a": "аАαΑɑ", "b": "ВΒЬ", "c": "сСϲ", "d": "ԁᎠ", "e": "еЕΕҽ", "g": "ɡց",
    "h": "һНΗᎻ", "i": "іΙıӀ", "m": "МΜ", "n": "ոΝ", "o": "оОοΟօ", "p": "рРρΡ",
    "r": "г", "s": "ѕЅ", "t": "ТΤᎢ", "u": "ս", "v": "νѵ", "y": "уΥү", "z": "Ζᴢ",
}
#: nothing to see, or a mark on a letter: zero-width space/joiners, word joiner, soft
#: hyphen (not printable: refused as such), the combining grapheme joiner, the Hangul
#: filler (a printable letter drawn as nothing), acute, diaeresis, dot above
INVISIBLE = ["\u200b", "\u200c", "\u200d", "\u2060", "\u00ad", "\u034f", "\u3164",
             "\u0301", "\u0308", "\u0307"]
ORDINARY = ["José", "Zoë", "王芳", "Ольга", "محمد", "Jürgen", "Siobhán", "Nguyễn Văn An",
            "Παναγιώτης", "Анна Петрова", "Сергей", "שרה", "Ayşe", "Łukasz", "佐藤 花子",
            "김민준", "Προεδρος Ελενη", "Ιωάννης", "Hosta Gardener", "Avatar Fan", "Thea",
            "Adminah", "Ηλίας", "Mohammed Hosny", "Bottle"]


def _disguise(word: str, data: st.DataObject) -> str:
    out = []
    for ch in word:
        alts = LOOKALIKES.get(ch.lower(), "")
        if alts and data.draw(st.booleans()):
            ch = data.draw(st.sampled_from(alts))
        elif data.draw(st.booleans()):
            ch = ch.swapcase()
        out.append(ch)
        if data.draw(st.integers(0, 3)) == 0:
            out.append(data.draw(st.sampled_from(INVISIBLE)))
    return "".join(out)


async def _room(c: WebClient, room: str) -> str:
    if (await c.call("GET", f"/api/webinars/{room}")).status == 404:
        await c.new_webinar("Look-alike names", room)
    return room


@FUZZ
@given(data=st.data())
async def test_a_staff_name_in_look_alike_letters_is_refused(web_client: WebClient,
                                                             data: st.DataObject) -> None:
    c = web_client
    room = await _room(c, "lookalike-names")
    word = data.draw(st.sampled_from(STAFF))
    name = _disguise(word, data)
    identity = f"fan-{uuid.uuid4().hex[:12]}"
    r = await c.join(room, identity, name=name)
    assert r.status == 422, (word, name, [hex(ord(x)) for x in name], r.text)
    if name.isprintable():  # else refused for that, before its reading is looked at
        assert "reserved" in r.data["error"], r.text
        assert word.lower() in r.data["error"].lower(), r.text
    assert c.store().claim(room, identity) is None  # nothing kept


async def test_the_examples_of_the_known_limit_are_refused(web_client: WebClient) -> None:
    c = web_client
    room = await _room(c, "lookalike-names")
    for name in ["Ноst", "НОЅТ", "Ηοѕτ", "Н\u034fost", "Ho\u0301st", "Αdmіn", "ΑDΜΙΝ",
                 "Mоdеrаtоr", "Аvаtаr", "Рrеsеntеr", "Adrnin", "H0st",
                 "Hㅤost", "ʜᴏꜱᴛ", "нoѕт"]:
        r = await c.join(room, f"fan-{uuid.uuid4().hex[:12]}", name=name)
        assert r.status == 422 and "reserved" in r.data["error"], (name, r.text)


async def test_names_in_every_script_still_get_in(web_client: WebClient) -> None:
    c = web_client
    room = await _room(c, "lookalike-names")
    for i, name in enumerate(ORDINARY):
        r = await c.join(room, f"ordinary-{uuid.uuid4().hex[:8]}-{i}", name=name)
        assert r.status == 200, (name, r.text)
