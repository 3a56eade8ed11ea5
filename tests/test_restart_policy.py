"""The restart policy: at once after a healthy run, a growing delay in a crash loop."""

from hypothesis import given
from hypothesis import strategies as st

from broadcaster.restart_policy import RestartPolicy, RestartTracker

POLICY = RestartPolicy(healthy_after=30.0, first_delay=1.0, max_delay=10.0,
                       max_crashes=5, window=60.0)


def test_a_crash_after_a_healthy_run_restarts_at_once_even_after_a_loop():
    t = RestartTracker(POLICY)
    assert [t.on_exit(s, s + 2) for s in (0, 10, 20)] == [1.0, 2.0, 4.0]
    assert t.on_exit(30.0, 65.0) == 0.0  # up 35 s: healthy, whatever came before
    assert t.on_exit(65.0, 66.0) == 1.0  # and the loop count started over


def test_a_crash_loop_doubles_up_to_the_cap_then_gives_up():
    t = RestartTracker(POLICY)
    delays = [t.on_exit(float(i), i + 0.5) for i in range(6)]
    assert delays == [1.0, 2.0, 4.0, 8.0, 10.0, None]


def test_short_crashes_outside_the_window_are_forgotten():
    t = RestartTracker(POLICY)
    assert t.on_exit(0.0, 1.0) == 1.0
    assert t.on_exit(100.0, 101.0) == 1.0  # 100 s later: a first crash again


@given(st.lists(st.tuples(st.floats(0, 120), st.floats(0.01, 100)), max_size=30))
def test_delays_stay_within_the_policy(runs):
    t, now = RestartTracker(POLICY), 0.0
    for gap, ran in runs:
        started = now + gap
        now = started + ran
        delay = t.on_exit(started, now)
        if now - started >= POLICY.healthy_after:  # the run as the tracker sees it (float sums)
            assert delay == 0.0 and t.crashes == []
        elif delay is None:
            assert len(t.crashes) > POLICY.max_crashes
            assert all(now - c < POLICY.window for c in t.crashes)
            return
        else:
            assert POLICY.first_delay <= delay <= POLICY.max_delay
            assert delay == min(2.0 ** (len(t.crashes) - 1), POLICY.max_delay)
