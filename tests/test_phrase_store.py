"""The phrase cache on disk: what a restarted bot reads instead of re-synthesizing.

Round trip of any sentences and chunks (hypothesis), the key changing with the
notes, the voice and the version, safe files (0600 in a 0700 directory, no
temporary left), and damaged files ignored and removed, never a crash.
"""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from broadcaster.speech import phrase_store
from broadcaster.speech.phrase_store import PhraseStore, decode, encode, store_key

phrases = st.dictionaries(st.text(min_size=1, max_size=40),
                          st.tuples(*[st.binary(max_size=64)] * 2), max_size=8)


@given(phrases)
@settings(max_examples=60, deadline=None)
def test_any_phrases_survive_the_round_trip(p: dict[str, tuple[bytes, ...]]) -> None:
    assert decode(encode(p)) == p


@given(phrases, st.integers(min_value=0, max_value=200), st.binary(max_size=8))
@settings(max_examples=80, deadline=None)
def test_damaged_data_is_refused_with_value_error(p: dict[str, tuple[bytes, ...]], cut: int,
                                                   junk: bytes) -> None:
    data = encode(p)
    for bad in (data[:cut] if cut < len(data) else data + b"x", junk, data + junk or b"x"):
        if bad == data:
            continue
        try:
            out = decode(bad)
        except ValueError:
            continue
        assert out == p and bad.startswith(data[:len(bad)]), "only a valid file decodes"


def test_the_key_follows_notes_voice_and_version(monkeypatch: pytest.MonkeyPatch) -> None:
    base = store_key(["Hello there.", "Bye."], "en_US-joe-medium")
    assert base == store_key(["Bye.", "Hello there."], "en_US-joe-medium"), "order-free"
    assert base != store_key(["Hello there!", "Bye."], "en_US-joe-medium")
    assert base != store_key(["Hello there.", "Bye."], "en_US-amy-medium")
    monkeypatch.setattr(phrase_store.broadcaster, "__version__", "9.9.9")
    assert base != store_key(["Hello there.", "Bye."], "en_US-joe-medium")


def test_files_are_private_and_written_whole(tmp_path: Path) -> None:
    store = PhraseStore(tmp_path / "phrases")
    store.save("old", {"a": (b"1",)})
    store.save("k", {"Hello.": (b"\x00\x01" * 100, b"\x02")})
    assert store.load("k") == {"Hello.": (b"\x00\x01" * 100, b"\x02")}
    assert stat.S_IMODE((tmp_path / "phrases").stat().st_mode) == 0o700
    files = list((tmp_path / "phrases").iterdir())
    assert [f.name for f in files] == ["k.phrases"], "no temporary, the old key removed"
    assert stat.S_IMODE(files[0].stat().st_mode) == 0o600


def test_a_damaged_file_is_ignored_and_removed(tmp_path: Path) -> None:
    store = PhraseStore(tmp_path)
    store.save("k", {"Hello.": (b"abc",)})
    store.path("k").write_bytes(store.path("k").read_bytes()[:-1])
    assert store.load("k") == {}
    assert not store.path("k").exists()
    assert store.load("missing") == {}
