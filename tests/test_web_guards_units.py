"""Units behind issue 11's limits: who the client is behind a proxy, the token bucket, the
webhook replay memory, and cleaned question text (the HTTP behaviour is tested on the
real app in test_security_limits.py)."""

from __future__ import annotations

import ipaddress

from aiohttp.test_utils import make_mocked_request
from hypothesis import given, settings
from hypothesis import strategies as st

from broadcaster.web.client_address import client_key, parse_ip
from broadcaster.web.rate_limit import LogThrottle, RecentIds, TokenBuckets
from broadcaster.web.text import clean_text

PROXIES = (ipaddress.ip_network("127.0.0.1/32"), ipaddress.ip_network("10.0.0.0/8"))


def _key(peer: str, xff: str | None, proxies: tuple = PROXIES) -> str:
    # make_mocked_request is aiohttp's own test helper; clone(remote=) sets the peer
    headers = {"X-Forwarded-For": xff} if xff is not None else {}
    req = make_mocked_request("GET", "/", headers=headers)
    return client_key(req.clone(remote=peer), proxies)


def test_forwarded_for_counts_only_from_a_trusted_proxy() -> None:
    assert _key("203.0.113.5", "198.51.100.1") == "203.0.113.5"  # not a proxy: ignored
    assert _key("127.0.0.1", "198.51.100.1") == "198.51.100.1"
    # a client's own left-most entries are ignored: the right-most untrusted hop counts
    assert _key("127.0.0.1", "6.6.6.6, 198.51.100.1") == "198.51.100.1"
    assert _key("127.0.0.1", "198.51.100.1, 10.1.2.3") == "198.51.100.1"  # two proxies
    assert _key("127.0.0.1", "junk") == "127.0.0.1"  # a broken proxy: count the proxy
    assert _key("127.0.0.1", None) == "127.0.0.1"
    assert _key("127.0.0.1", "198.51.100.1", proxies=()) == "127.0.0.1"
    # IPv6 by /64 (one host holds a whole /64); IPv4-mapped as IPv4
    assert _key("2001:db8:1:2:aaaa::1", None) == _key("2001:db8:1:2:ffff::9", None) \
        == "2001:db8:1:2::/64"
    assert _key("::ffff:192.0.2.7", None) == "192.0.2.7"
    assert parse_ip("[::1]:8080".split("]")[0] + "]") == ipaddress.ip_address("::1")


def test_token_bucket_lets_a_burst_through_then_refills() -> None:
    b = TokenBuckets(burst=3, per_minute=60.0)
    assert [b.hit("a", now=0.0) for _ in range(3)] == [None, None, None]
    wait = b.hit("a", now=0.0)
    assert wait is not None and 0.9 < wait <= 1.0  # one a second
    assert b.hit("b", now=0.0) is None  # per key
    assert b.hit("a", now=1.01) is None and b.hit("a", now=1.02) is not None
    assert [b.hit("a", now=100.0) for _ in range(4)][:3] == [None] * 3  # full again, capped


def test_token_bucket_memory_is_bounded() -> None:
    b = TokenBuckets(burst=2, per_minute=60.0, max_keys=100)
    for i in range(1000):
        b.hit(f"k{i}", now=float(i))  # each key idle long enough to be full again
    assert len(b._buckets) <= 101  # noqa: SLF001


def test_recent_ids_forget_after_their_time() -> None:
    ids = RecentIds(ttl=10.0, max_ids=3)
    assert not ids.seen("a", now=0.0) and ids.seen("a", now=5.0)
    assert not ids.seen("a", now=11.0)  # expired, so a fresh event
    for i, name in enumerate("bcd"):
        ids.seen(name, now=12.0 + i)
    assert len(ids._seen) <= 3  # noqa: SLF001


def test_log_throttle_lets_one_line_through_per_interval() -> None:
    t = LogThrottle(10.0)
    assert t.allow(now=0.0) == 0
    assert [t.allow(now=x) for x in (1.0, 2.0, 9.9)] == [None, None, None]
    assert t.allow(now=10.5) == 3  # the next line says how many were left out


def test_clean_text_drops_controls_and_bidi_keeps_words() -> None:
    assert clean_text("Is\x00 this\x1b[31m safe\u202e? \u2066txt.exe\u2069\x07") == \
        "Is this[31m safe? txt.exe"
    assert clean_text("line one\r\nline\ttwo\u2028three") == "line one\nline two three"
    assert clean_text("👩\u200d💻 co\u0301de") == "👩\u200d💻 c\u00f3de"  # ZWJ kept, NFC
    assert clean_text("\u202e\u2066\x00 ") == ""


@settings(max_examples=300, deadline=None)
@given(st.text(st.characters(exclude_categories=("Cs",))))
def test_clean_text_never_keeps_a_control_or_bidi_character(text: str) -> None:
    import unicodedata

    out = clean_text(text)
    assert out == out.strip()
    for ch in out:
        assert ch == "\n" or ch in "\u200c\u200d" or unicodedata.category(ch) not in (
            "Cc", "Cf"), repr(ch)
