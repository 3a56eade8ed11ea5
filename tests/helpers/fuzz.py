"""Hypothesis strategies for hostile request bodies: any JSON (huge numbers, lone
surrogates, deep nesting, control and bidi characters), near-valid objects with the
endpoint's own field names, and raw bytes that are not JSON or not UTF-8."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import strategies as st

#: every character, lone surrogates included (hypothesis leaves them out by default)
ANY_CHAR = st.characters(exclude_categories=())
NASTY_TEXT = st.one_of(
    st.text(ANY_CHAR, max_size=40),
    st.sampled_from(["", " ", "\x00", "\u202e", "\ud800", "a\udfffb", "²", "٣", "-1", "1e999",
                     "null", "🙂" * 3, "x" * 600, "<script>", "../..", "%00", "\r\n"]),
)
NUMBERS = st.one_of(st.integers(), st.floats(allow_nan=False, allow_infinity=False), st.just(1e308))
#: JSON numbers Python refuses to convert (over 4,300 digits), written as raw text
HUGE = [b"7" * 5000, b"-" + b"9" * 4301, b"1" + b"0" * 5000 + b".5", b"1e99999"]
SCALARS = st.one_of(st.none(), st.booleans(), NUMBERS, NASTY_TEXT)
JSON = st.recursive(
    SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(NASTY_TEXT, inner, max_size=4)),
    max_leaves=12,
)


def encode(value: Any) -> bytes:
    """JSON text for ``value`` (lone surrogates escaped as ``\\udXXX``)."""
    return json.dumps(value, allow_nan=False).encode()


def with_huge_numbers(fields: list[str]) -> st.SearchStrategy[bytes]:
    """An object whose field (one of ``fields``, or any) holds a number too long for
    Python's int conversion."""
    names = st.sampled_from(fields) if fields else NASTY_TEXT
    return st.builds(lambda name, digits: b'{' + encode(name) + b": " + digits + b"}",
                     names, st.sampled_from(HUGE))


def objects(fields: list[str]) -> st.SearchStrategy[dict[str, Any]]:
    """Objects that use the endpoint's own field names (so the validation beyond the
    parser is reached), sometimes with an extra field."""
    known = st.dictionaries(st.sampled_from(fields), JSON, max_size=len(fields)) if fields \
        else st.just({})
    return st.one_of(known, st.builds(lambda a, b: {**a, **b}, known,
                                      st.dictionaries(NASTY_TEXT, JSON, max_size=2)))


def bodies(fields: list[str]) -> st.SearchStrategy[bytes]:
    """Raw request bodies: near-valid objects, any JSON, non-JSON, non-UTF-8, deep."""
    return st.one_of(
        objects(fields).map(encode),
        JSON.map(encode),
        with_huge_numbers(fields),
        st.binary(max_size=64),
        st.integers(1, 40_000).map(lambda n: b"[" * n + b"]" * n),
        st.sampled_from([b"", b"   ", b"{", b"\xff\xfe{}", b'{"a": 1}' * 3, b"\x00",
                         b'{"a": "\\ud800"}', b"[]" * 10_000]),
    )


#: path segments (room names, identities): quoted by the caller
SEGMENTS = st.one_of(NASTY_TEXT.filter(lambda s: s not in ("", ".", "..")),
                     st.sampled_from(["heygen", "avatar-bot", "host", "a" * 300, "UPPER"]))
