"""Summary rows of the recovery benches for docs/benchmarks.md (soak, rollover, fault matrix)."""

from __future__ import annotations

from typing import Any

Row = tuple[str, str, str, str, Any]  # measure, target, result, baseline, pass


def _f(v: Any, fmt: str = ".1f", unit: str = "") -> str:
    """A result value for a table cell ("–" when missing); bench/report.py uses it too."""
    if v is None:
        return "–"
    try:
        return f"{v:{fmt}}{unit}"
    except (TypeError, ValueError):
        return str(v)


def soak(d: dict[str, Any]) -> list[Row]:
    rows: list[Row] = []
    goal = d.get("goal_rss_mb_per_hour", 5.0)
    for name, p in (d.get("processes") or {}).items():
        rate = p.get("rss_mb_per_hour")
        ours = name != "loadviewers"
        rows.append((f"{name}: RSS growth over {_f(d.get('minutes'), 'g')} min (fit after "
                     f"{_f(d.get('warmup_excluded_s'), '.0f')} s)",
                     f"≤ {goal:g} MB/hour" if ours else "(load client, not ours)",
                     f"{_f(rate, '+.1f', ' MB/h')} ({_f(p.get('rss_mb_first'), '.0f')} → "
                     f"{_f(p.get('rss_mb_last'), '.0f')} MB; second half "
                     f"{_f(p.get('rss_mb_per_hour_second_half'), '+.1f')}, last third "
                     f"{_f(p.get('rss_mb_per_hour_last_third'), '+.1f', ' MB/h')})",
                     f"open files {_f(p.get('files_first'), '.0f')} → "
                     f"{_f(p.get('files_last'), '.0f')}, threads "
                     f"{_f(p.get('threads_first'), '.0f')} → {_f(p.get('threads_last'), '.0f')}",
                     (rate is not None and rate <= goal) if ours else None))
    if heap := d.get("sfu_go_heap"):
        rows.append(("livekit-server: live Go heap after each GC (GODEBUG=gctrace=1; a leak "
                     "grows it)", "flat",
                     f"{_f(heap.get('live_mb_per_hour'), '+.1f', ' MB/h')} (second half "
                     f"{_f(heap.get('live_mb_per_hour_second_half'), '+.1f')}; "
                     f"{_f(heap.get('live_mb_first'), '.0f')} → "
                     f"{_f(heap.get('live_mb_last'), '.0f')} MB, {heap.get('gcs')} GCs)",
                     f"heap goal at most {_f(heap.get('goal_mb_max'), '.0f', ' MB')}", None))
    if env := d.get("env"):
        rows.append(("the stack's environment in this run", "–",
                     ", ".join(f"{k}={v}" for k, v in env.items()), "–", None))
    q, c = d.get("questions") or {}, d.get("captions") or {}
    rows.append(("nothing lost: typed questions stored; final captions a viewer got on disk; "
                 "spoken questions captioned",
                 "all", f"{q.get('typed_stored')}/{q.get('typed')} stored; "
                 f"{c.get('final_received', 0) - c.get('received_not_on_disk_n', 0)}/"
                 f"{c.get('final_received')} captions on disk; "
                 f"{q.get('spoken_with_a_speaker_caption')}/{q.get('spoken')} spoken",
                 f"{_f(_viewer_fps(d), '.1f')} fps at the 5th-percentile viewer",
                 not q.get("missing") and not c.get("received_not_on_disk_n")
                 and q.get("spoken_with_a_speaker_caption") == q.get("spoken")))
    return rows


def _viewer_fps(d: dict[str, Any]) -> Any:
    w = d.get("viewer_window") or {}
    return w.get("fps_at_quantile")


def rollover(d: dict[str, Any]) -> list[Row]:
    held, change = d.get("held_s") or {}, d.get("switch_jump") or {}
    window = d.get("switch_change") or {}
    normal = d.get("normal_change") or {}
    handover = "" if d.get("speech_handover", True) else " — baseline: no speech handover"
    jumps = d.get("switch_jumps") or []
    rows: list[Row] = [
        (f"{d.get('sessions_planned')} sandbox sessions of {_f(d.get('session_s'), 'g')} s "
         f"(lead {_f(d.get('lead_s'), 'g')} s, {_f(d.get('accelerated_x'), 'g')}x), a question "
         f"every {_f(d.get('ask_every_s', 20.0), 'g')} s{handover}: slate frames at a viewer; "
         "picture held and moved at a switch",
         "0 slate; held ≤ 0.1 s; no jump",
         f"{d.get('slate_frames')} slate frames; {d.get('rollovers')} rollovers "
         f"({d.get('overlapped', '–')} overlapped, {d.get('sequential', '–')} sequential), "
         f"{d.get('ended_by_service')} ended by the service; held per switch p50 "
         f"{_f(held.get('p50'), '.3f')} / max {_f(held.get('max'), '.3f', ' s')}; change at a "
         f"switch's first frame p50 {_f(change.get('p50'), '.2f')} / max "
         f"{_f(change.get('max'), '.2f')}, {sum(1 for j in jumps if j > 0.5)} over 0.5, "
         f"{d.get('jumps_over_allowed', '–')} over the pass line "
         f"{_f(d.get('jump_allowed'), '.2f')}",
         f"{_f(d.get('fps'), '.1f')} fps, longest gap at the viewer "
         f"{_f(d.get('longest_gap_s'), '.2f', ' s')}; window around a switch max "
         f"{_f(window.get('max'), '.2f')} (normal windows p99 {_f(normal.get('p99'), '.2f')}, "
         f"max {_f(normal.get('max'), '.2f')})",
         d.get("pass"))]
    if "answers_heard" in d:
        diff, across = d.get("heard_minus_sent_s") or {}, \
            d.get("heard_minus_sent_across_a_switch_s") or {}
        ho = d.get("handovers") or {}
        rows.append((
            f"the answers a viewer heard{handover}: voiced time heard − sent per answer",
            f"none cut or doubled (±{_f(d.get('heard_slack_s', 0.25), 'g')} s)",
            f"{d.get('answers_cut')} cut, {d.get('answers_doubled')} doubled of "
            f"{d.get('answers_heard')} ({d.get('answers_with_a_switch')} with a switch "
            f"inside); heard − sent min {_f(diff.get('min'), '+.2f')} / p50 "
            f"{_f(diff.get('p50'), '+.2f')} / max {_f(diff.get('max'), '+.2f', ' s')} "
            f"(across a switch: min {_f(across.get('min'), '+.2f', ' s')}; with none inside: "
            f"min {_f((d.get('heard_minus_sent_no_switch_s') or {}).get('min'), '+.2f', ' s')})",
            "handovers: " + ", ".join(f"{k} {v}" for k, v in ho.items()) if ho else "–",
            d.get("answers_cut") == 0 and d.get("answers_doubled") == 0))
    return rows


def fault_matrix(d: dict[str, Any]) -> list[Row]:
    """One row per part and signal (bench/fault_matrix.py)."""
    rows: list[Row] = []
    for r in d.get("rows") or []:
        if "error" in r:
            rows.append((f"{r['part']} {r['signal']}", "back", f"error: {r['error'][:80]}",
                         "–", False))
            continue
        gone = r.get("gone_after_s")
        left = (f"bot participants {r.get('bot_participants')}, avatar sessions open "
                f"{r.get('avatar_sessions_open')}, bot {r.get('bot_state')}")
        rows.append((
            f"{r['part']} sent {r['signal']} (up {_f(r.get('up_before_s'), '.0f', ' s')}): gone "
            "after; exit logged; tracebacks; at the viewer: longest time without a frame, "
            "live avatar moving after",
            "exit 0 / back, no traceback, nothing left",
            f"{_f(gone, '.2f', ' s') if gone is not None else 'not gone (draining)'}; exit "
            f"{r.get('exit_code_logged')}; {r.get('tracebacks')} tracebacks; no frame for "
            f"{_f(r.get('longest_gap'), '.2f', ' s')}, moving after "
            f"{_f(r.get('moving_after'), '.2f', ' s')}"
            + (f", viewer rejoined {r['viewer_rejoined']}x" if r.get("viewer_rejoined") else ""),
            left,
            gone is not None and r.get("tracebacks") == 0 and r.get("bot_participants") == 1
            and r.get("avatar_sessions_open") == 1 and r.get("bot_state") == "running"))
    return rows
