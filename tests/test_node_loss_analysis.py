"""bench/node_loss.py's reading of the load viewers' lines: who was on the killed node,
when each watched again, who never came back, and whether the others kept their rate
(synthetic lines, the shape bench/loadviewers/rejoin.go prints)."""

from __future__ import annotations

from typing import Any

from bench.node_loss import analyse

KILL = 1000.0


def _events(stall_survivor: bool, second_back: bool) -> list[dict[str, Any]]:
    rooms = ["w--a2", "w--a2", "w--a1", "w--a3"]
    frames = [0.0] * 4
    out: list[dict[str, Any]] = []
    t = KILL - 10
    while t <= KILL + 12:
        gaps = [40.0] * 4
        for i in range(4):
            dead = i < 2 and KILL < t < KILL + 3.4 or (i == 1 and not second_back and t > KILL)
            stalled = stall_survivor and i == 3 and KILL + 2 < t <= KILL + 4
            if dead or stalled:
                gaps[i] = 1000 * (t - KILL)
            else:
                frames[i] += 25 * 0.25
        moved = [r if not (i == 0 and t > KILL + 3.4) else "w--a1" for i, r in enumerate(rooms)]
        out.append({"type": "tick", "t": t, "frames": [int(f) for f in frames],
                    "gap_ms": gaps, "rooms": moved})
        t += 0.25
    out.append({"type": "rejoin", "id": 0, "reason": "frozen", "lost": "w--a2",
                "noticed": KILL + 2.6, "connected": KILL + 3.1, "first_frame": KILL + 3.3,
                "watching": KILL + 3.45, "joins": 1, "room": "w--a1", "done": True})
    if second_back:
        out.append({"type": "rejoin", "id": 1, "reason": "frozen", "lost": "w--a2",
                    "noticed": KILL + 2.5, "connected": KILL + 8.0, "first_frame": KILL + 8.2,
                    "watching": KILL + 8.4, "joins": 3, "room": "w--a3", "done": True})
    unfinished = [] if second_back else [{"id": 1, "noticed": KILL + 2.5, "done": False}]
    out.append({"type": "final", "rejoins_unfinished": unfinished})
    return out


def test_a_round_where_everyone_came_back_and_the_others_played_on() -> None:
    r = analyse(_events(stall_survivor=False, second_back=True), KILL, {"w--a2"})
    assert r["viewers_on_lost_node"] == 2 and r["never_back"] == []
    assert r["watching_again_s"]["max"] == 8.4 and r["watching_again_s"]["min"] == 3.45
    assert r["moved_to"] == {"w--a1": 1, "w--a3": 1}
    assert r["survivors"]["viewers"] == 2 and r["survivors_kept_rate"]
    assert 24 <= r["survivors"]["fps_after"]["min"] <= 26


def test_a_viewer_never_back_and_a_survivor_that_stalled_are_reported() -> None:
    r = analyse(_events(stall_survivor=True, second_back=False), KILL, {"w--a2"})
    assert r["never_back"] == [1]
    assert [row for row in r["per_viewer"] if row["id"] == 1][0]["unfinished"]
    assert r["watching_again_s"]["n"] == 1
    assert r["survivors"]["max_gap_ms"] >= 1900
    assert not r["survivors_kept_rate"]  # a 2 s freeze is no "kept frame rate"
