"""Summary rows of the multi-node cluster benches for docs/benchmarks.md (node loss)."""

from __future__ import annotations

from typing import Any

from bench.report_recovery import Row, _f


def node_loss(d: dict[str, Any]) -> list[Row]:
    """One row per round: the killed node's viewers back (and any lost), the others'
    frame rate before (the baseline) and after the kill."""
    rows: list[Row] = []
    goal = d.get("goal_s", 10.0)
    for r in d.get("rounds") or []:
        if r.get("skipped"):
            rows.append((f"round {r.get('round')}", "", f"skipped: {r['skipped']}", "", None))
            continue
        back, surv = r.get("watching_again_s") or {}, r.get("survivors") or {}
        before, after = surv.get("fps_before") or {}, surv.get("fps_after") or {}
        ok = (not r.get("never_back") and (back.get("max") or 1e9) <= goal
              and r.get("survivors_kept_rate"))
        rows.append((
            f"round {r.get('round')}: SIGKILL node {r.get('killed_node')} "
            f"({', '.join(x.rsplit('--', 1)[-1] for x in r.get('lost_shards') or [])}): its "
            f"{r.get('viewers_on_lost_node')} viewers watching again, p50 / p95 / max",
            f"≤ {goal:g} s, none lost; the others keep their rate",
            f"{_f(back.get('p50'), '.1f')} / {_f(back.get('p95'), '.1f')} / "
            f"{_f(back.get('max'), '.1f', ' s')}; never back: {len(r.get('never_back') or [])}"
            f" (noticed at p50 {_f((r.get('noticed_s') or {}).get('p50'), '.1f', ' s')})",
            f"other {surv.get('viewers')} viewers: median {_f(before.get('p50'), '.1f')} → "
            f"{_f(after.get('p50'), '.1f')} fps (min {_f(after.get('min'), '.1f')}), longest "
            f"gap {_f(surv.get('max_gap_ms'), '.0f', ' ms')}, rejoined "
            f"{len(surv.get('rejoined') or [])}",
            ok))
    return rows


def node_loss_details(d: dict[str, Any]) -> list[str]:
    """Per round: where the time went and where the viewers went."""
    out = ["| round | node killed (its shards) | its viewers | noticed p50 | connected p50 "
           "| first frame p50 / max | watching again p50 / p95 / max | joins (max) "
           "| went to | bot publishing again in the lost shards |",
           "|---|---|---|---|---|---|---|---|---|---|"]
    for r in d.get("rounds") or []:
        if r.get("skipped"):
            continue
        w, ff = r.get("watching_again_s") or {}, r.get("first_frame_s") or {}
        con = sorted(p["connected_s"] for p in r.get("per_viewer") or [] if "connected_s" in p)
        went = ", ".join(f"{_short(k)}: {v}" for k, v in sorted((r.get("moved_to") or {}).items()))
        bot = ", ".join(f"{_short(k)} +{_f(v, '.1f')} s"
                        for k, v in sorted((r.get("bot_published_again_s") or {}).items()))
        out.append(
            f"| {r.get('round')} | {r.get('killed_node')} "
            f"({', '.join(_short(x) for x in r.get('lost_shards') or [])}) "
            f"| {r.get('viewers_on_lost_node')} "
            f"| {_f((r.get('noticed_s') or {}).get('p50'), '.2f', ' s')} "
            f"| {_f(con[len(con) // 2] if con else None, '.2f', ' s')} "
            f"| {_f(ff.get('p50'), '.2f')} / {_f(ff.get('max'), '.2f', ' s')} "
            f"| {_f(w.get('p50'), '.2f')} / {_f(w.get('p95'), '.2f')} / "
            f"{_f(w.get('max'), '.2f', ' s')} "
            f"| {_f((r.get('joins') or {}).get('max'), '.0f')} | {went} | {bot} |")
    out.append("\n\"Noticed\": the viewer's last frame was 2.5 s old (the page's rule) or "
               "LiveKit dropped it; \"watching again\": 5 complete frames after its rejoin "
               "through the join API. The bot's own rejoin of a lost shard waits for "
               "LiveKit to count the node gone; the viewers do not wait for it.\n")
    return out


def _short(shard: str) -> str:
    """``room--a2`` -> ``a2``."""
    return shard.rsplit("--", 1)[-1]
