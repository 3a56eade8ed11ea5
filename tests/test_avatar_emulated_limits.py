"""HeyGen's session limits as the local avatar service emulates them (off by default).

The limits are checked on the reaper's decision function directly (the reaper's own
sweep and the session's stop are covered by tests/test_avatar_limits.py); the bot's
answer to a session that ends is the keeper's in-place reopen (tests/test_avatar_keeper.py).
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from hypothesis import assume, given
from hypothesis import strategies as st

from broadcaster.avatar.limits import emulated_limit
from broadcaster.config import Settings

ON = Settings.load(env={}, avatar_emulate_limits=True, avatar_sandbox_session_seconds=60,
                   avatar_idle_timeout_seconds=300)


def session(sandbox: bool, started: float = 100.0, active: float = 0.0) -> Any:
    return SimpleNamespace(request=SimpleNamespace(is_sandbox=sandbox), started_at=started,
                           active_at=active)


def test_off_by_default_no_session_is_ended() -> None:
    off = Settings.load(env={})
    assert off.avatar_emulate_limits is False
    assert emulated_limit(session(True), 10_000.0, off) is None


def test_a_sandbox_session_ends_after_its_minute() -> None:
    s = session(True, active=155.0)
    assert emulated_limit(s, 159.9, ON) is None
    assert emulated_limit(s, 160.0, ON) == "sandbox session limit reached"
    assert emulated_limit(session(False, active=155.0), 160.0, ON) is None


@given(st.floats(0, 1e5), st.floats(0, 1e5), st.floats(0, 1e4))
def test_idle_sessions_end_300_s_after_the_last_keep_alive(started: float, active: float,
                                                           later: float) -> None:
    assume(abs(later - 300) > 1e-3)  # float rounding of last + later
    s = session(False, started=started, active=active)
    last = max(started, active)
    expected = "idle timeout (no keep-alive)" if later >= 300 else None
    assert emulated_limit(s, last + later, ON) == expected
