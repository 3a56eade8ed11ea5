"""Write docs/benchmarks.md from bench/results/*.json (called by ``python -m bench``)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.report_cluster import node_loss, node_loss_details
from bench.report_recovery import Row, fault_matrix, rollover, soak
from bench.report_recovery import _f as _f

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
DOC = ROOT / "docs" / "benchmarks.md"



def _load(name: str) -> dict[str, Any] | None:
    try:
        return json.loads((RESULTS / f"{name}.json").read_text())
    except (OSError, json.JSONDecodeError):
        return None


def _ok(v: Any) -> str:
    return "–" if v is None else ("yes" if v else "**no**")


def _g(d: dict[str, Any] | None, *path: str) -> Any:
    for p in path:
        if not isinstance(d, dict):
            return None
        d = d.get(p)
    return d


# ------------------------------------------------------------------------ per bench
def render_cost(d: dict[str, Any]) -> list[Row]:
    c = d.get("cases", {})
    budget = d.get("budget_ms", 3.0)
    rows = []
    for key, label in (("landscape_render", "720p frame"), ("portrait_render", "portrait frame")):
        if key in c:
            rows.append((f"avatar renderer CPU per {label} (p95)", f"≤ {budget:g} ms",
                         _f(c[key]["p95_ms"], ".3f", " ms"),
                         "np.copyto 720p: "
                         + _f(_g(d, "baseline_copyto_720p_i420", "p95_ms"), ".3f", " ms"),
                         c[key].get("within_budget_p95")))
    return rows


def republish_hop(d: dict[str, Any]) -> list[Row]:
    return [("republish hop CPU per 720p frame (decoded frame → LiveKit capture)",
             f"≤ {d.get('target_ms', 0.25):g} ms", _f(d.get("ours_ms"), ".3f", " ms"),
             f"pipecat 1.14 RGB path: {_f(d.get('pipecat_ms'), '.3f', ' ms')} "
             f"({_f(d.get('ratio'), '.1f', 'x')})", d.get("pass"))]


def republish_cpu(d: dict[str, Any]) -> list[Row]:
    # "ratio" is the default encoding's (one layer); "ratio_simulcast" the other
    bare = _g(d, "encodings", "single", "bare", "cpu_ms_per_frame")
    rep = _g(d, "encodings", "single", "republisher", "cpu_ms_per_frame")
    return [("republisher total CPU vs a bare encode of the same frames",
             f"≤ {d.get('target_ratio', 1.1):g}x",
             f"{_f(d.get('ratio'), '.3f', 'x')} one layer, "
             f"{_f(d.get('ratio_simulcast'), '.3f', 'x')} simulcast",
             f"bare encode {_f(bare, '.2f', ' ms')}/frame vs republisher {_f(rep, '.2f', ' ms')}",
             d.get("pass"))]


def republish_latency(d: dict[str, Any]) -> list[Row]:
    t = d.get("targets", {})
    return [("republish added latency at a viewer, p50 / p95",
             f"≤ {t.get('p50_ms', 40):g} / {t.get('p95_ms', 80):g} ms",
             f"{_f(d.get('p50_ms'))} / {_f(d.get('p95_ms'))} ms",
             f"direct viewer frame age p50 {_f(_g(d, 'direct_age_ms', 'p50'))} ms, "
             f"republished {_f(_g(d, 'republished_age_ms', 'p50'))} ms", d.get("pass"))]


def frame_delivery(d: dict[str, Any]) -> list[Row]:
    secs = d.get("seconds", 0)
    return [(f"frame delivery over {secs / 60:g} min: received / sent, fps",
             "≥ 99.9 %, 25 fps ± 1 %",
             f"{_f(100 * d['ratio'], '.3f', ' %')} (end to end "
             f"{_f(100 * d['end_to_end_ratio'], '.3f', ' %')}; republish path only "
             f"{_f(100 * d.get('relative_to_direct_ratio', 0), '.3f', ' %')}), "
             f"{_f(d.get('fps'), '.3f', ' fps')}",
             f"direct: {_f(100 * _g(d, 'direct_baseline', 'ratio'), '.3f', ' %')}, "
             f"{_f(_g(d, 'direct_baseline', 'fps'), '.3f', ' fps')}", d.get("pass"))]


def speech_latency(d: dict[str, Any]) -> list[Row]:
    return [("speaker stops → viewer sees the avatar speak, p50 (hears)",
             f"≤ {d.get('target_p50_s', 1.2):g} s",
             f"{_f(_g(d, 'sees_ms', 'p50'), '.0f', ' ms')} "
             f"({_f(_g(d, 'hears_ms', 'p50'), '.0f', ' ms')})",
             f"direct viewer sees {_f(_g(d, 'direct_sees_ms', 'p50'), '.0f', ' ms')}",
             d.get("pass"))]


def join_latency(d: dict[str, Any]) -> list[Row]:
    return [("viewer join → first avatar frame, p50 (p95)",
             f"≤ {d.get('target_p50_ms', 700):g} ms",
             f"{_f(d.get('p50_ms'), '.0f', ' ms')} ({_f(d.get('p95_ms'), '.0f', ' ms')})",
             f"direct join of the avatar room "
             f"{_f(_g(d, 'direct', 'first_frame_ms', 'p50'), '.0f', ' ms')}", d.get("pass"))]


def lipsync(d: dict[str, Any]) -> list[Row]:
    return [("lip-sync skew at a viewer (+ = sound first)", "−125 … +45 ms",
             _f(d.get("skew_ms"), "+.0f", " ms"),
             f"direct viewer {_f(_g(d, 'direct_baseline', 'skew_ms'), '+.0f', ' ms')}",
             d.get("pass"))]


def stt_speculation(d: dict[str, Any]) -> list[Row]:
    return [("VAD stop → transcript, Whisper started at the speaker's pause, p50",
             "sooner, words as right",
             f"{_f(_g(d, 'speculative_ms', 'p50'), '.0f', ' ms')} "
             f"({_f(d.get('ratio_p50'), '.2f', 'x')}; words right "
             f"{_f(100 * _g(d, 'word_accuracy', 'speculative'), '.1f', ' %')})",
             f"started at the stop (pipecat): {_f(_g(d, 'baseline_ms', 'p50'), '.0f', ' ms')}"
             f", words right {_f(100 * _g(d, 'word_accuracy', 'baseline'), '.1f', ' %')}",
             d.get("pass"))]


def barge_in(d: dict[str, Any]) -> list[Row]:
    return [("presenter talks over the avatar → a viewer stops hearing it, p50 (worst)",
             f"≤ {d.get('target_ms', 300):g} ms",
             f"{_f(_g(d, 'stage_ms', 'p50'), '.0f', ' ms')} "
             f"({_f(_g(d, 'stage_ms', 'max'), '.0f', ' ms')}; "
             f"{_g(d, 'stage_ms', 'n')} trials)",
             f"avatar's own room (interrupt only): "
             f"{_f(_g(d, 'direct_ms', 'p50'), '.0f', ' ms')}", d.get("pass"))]


def capacity(d: dict[str, Any]) -> list[Row]:
    a, b = d.get("avatar", {}), d.get("baseline", {})
    return [("receive-only viewers at ≥ 24 fps and ≤ 1 % loss on one 2-core box; "
             "viewers per SFU core (marginal SFU CPU per viewer)",
             "measured (issue 14)",
             f"{a.get('max_viewers_ok')} viewers; {_f(a.get('viewers_per_sfu_core'), '.0f')} "
             f"per SFU core ({_f(a.get('sfu_millicores_per_viewer'), '.2f')} mcore/viewer); "
             f"bot {_f(a.get('publisher_cores_mean'), '.2f')} core",
             f"plain publisher: {b.get('max_viewers_ok')} viewers, "
             f"{_f(b.get('viewers_per_sfu_core'), '.0f')} per SFU core "
             f"({_f(b.get('sfu_millicores_per_viewer'), '.2f')} mcore/viewer); ratio "
             f"{_f(d.get('ratio_viewers_per_core_vs_baseline'), '.2f')}; VP9 3-layer SVC: "
             f"{_f(_g(d, 'baseline_svc', 'sfu_millicores_per_viewer'), '.2f')} mcore/viewer",
             None)]


def layer_cost(d: dict[str, Any]) -> list[Row]:
    m = d.get("modes", {})

    def cell(name: str) -> str:
        x = m.get(name, {})
        return f"{_f(x.get('cores_median'), '.3f')} ({_f(x.get('ratio_vs_single'), '.2f', 'x')})"

    return [("publisher CPU (cores) for 720p25 with layers (x one VP8 layer)", "measured",
             f"VP8 simulcast {cell('vp8_simulcast')}; VP9 SVC L3T1 {cell('vp9_svc_l3t1')}; "
             f"VP9 L3T3_KEY {cell('vp9_svc')}; AV1 L3T3_KEY {cell('av1_svc')}",
             f"one VP8 layer {_f(_g(m, 'vp8_single', 'cores_median'), '.3f')} core", None)]


def weak_link(d: dict[str, Any]) -> list[Row]:
    if d.get("skipped"):
        return [("viewer behind 500 kbit/s", "≥ 15 fps on a lower layer",
                 f"not measured: {d['skipped']}", "", None)]
    m = d.get("modes", {})

    def cell(name: str) -> str:
        w = _g(m, name, "weak") or {}
        return f"{_f(w.get('fps'), '.1f')} fps at {w.get('size') or '–'}"

    best = next((n for n in ("vp9_svc_l3t1", "vp8_simulcast") if _g(m, n, "weak_ok")), None)
    return [("viewer behind a 500 kbit/s link (tc tbf) while another stays at 720p",
             "≥ 15 fps on a lower layer",
             f"VP9 SVC L3T1: {cell('vp9_svc_l3t1')}; VP8 simulcast: {cell('vp8_simulcast')}; "
             f"VP9 L3T3_KEY: {cell('vp9_svc')}",
             f"one VP8 layer: {cell('vp8_single')}", best is not None)]


def encode_once(d: dict[str, Any]) -> list[Row]:
    m = d.get("modes", {})
    return [("CPU per extra audience room fed the same 720p25 video", "≤ 0.05 core (issue 14)",
             f"encoded once (EncodedVideoSource): "
             f"{_f(_g(m, 'once', 'cores_per_extra_room'), '.3f')} core; three layers once: "
             f"{_f(_g(m, 'once_layers', 'cores_per_extra_room'), '.3f')} core; the stage's "
             f"VP9 SVC relayed (svcrelay, layers for weak links): "
             f"{_f(_g(m, 'svc_relay', 'cores_per_extra_room'), '.3f')} core",
             f"encoded per room: {_f(_g(m, 'reencode', 'cores_per_extra_room'), '.3f')} core",
             (_g(m, "once", "cores_per_extra_room") or 1) <= 0.05
             and (_g(m, "svc_relay", "cores_per_extra_room") or 0) <= 0.05)]


def caption_sync(d: dict[str, Any]) -> list[Row]:
    o = d.get("offset_ms", {})
    b = d.get("baseline_sentence_offset_ms", {})
    w = d.get("offset_ms_whisper") or {}
    return [("avatar caption word shown − heard at a stage viewer, p50 / p95 (p5)",
             f"within ±{d.get('target_ms', 300):g} ms",
             f"{_f(o.get('p50'), '.0f')} / {_f(o.get('p95'), '.0f')} ms "
             f"({_f(o.get('p5'), '.0f')} ms; {o.get('n')} of {d.get('words_shown')} words "
             f"matched; {_f((d.get('share_within_target') or 0) * 100, '.0f')} % within "
             f"target); unspoken words shown at barge-ins: {d.get('unspoken_words_shown')}",
             f"sentence at once: {_f(b.get('p50'), '.0f')} / {_f(b.get('p95'), '.0f')} ms"
             + (f"; heard by Whisper's times alone: {_f(w.get('p50'), '.0f')} / "
                f"{_f(w.get('p95'), '.0f')} ms ({_f(w.get('p5'), '.0f')} ms)" if w else ""),
             d.get("pass"))]


def conversation(d: dict[str, Any]) -> list[Row]:
    rows = []
    target = d.get("target_accuracy", 0.9)
    for name, res in d.get("sets", {}).items():
        ours, base = res["ours"], res["baseline"]
        kinds = ", ".join(f"{k.replace('_', ' ')} {v['right']}/{v['n']}"
                          for k, v in ours.get("by_kind", {}).items())
        fitted = res.get("fitted", name == "tune")
        rows.append((f"keyless responder, turns right: {name} set"
                     f"{' (fitted on)' if fitted else ' (not fitted on)'}",
                     f"≥ {100 * target:.0f} % unseen",
                     f"{_f(100 * ours['accuracy'], '.1f', ' %')} ({kinds})",
                     f"TF-IDF responder: {_f(100 * base['accuracy'], '.1f', ' %')}",
                     None if fitted else ours["accuracy"] >= target))
    for name, line in d.get("cross_validation", {}).items():
        if name.startswith("fit without"):
            rows.append((f"keyless responder, cross-validation: {name}",
                         f"≥ {100 * target:.0f} % unseen", line, "–", None))
    lat = d.get("latency", {})
    p50, p95 = _g(lat, "reply_ms", "p50"), _g(lat, "reply_ms", "p95")
    load = (lat.get("load_s") or [None])[0]
    cached = (lat.get("load_cached_s") or [None])[0]
    rows.append(("keyless responder latency per turn, p50 / p95 (load: cold, cached)",
                 "milliseconds",
                 f"{_f(p50, '.2f')} / {_f(p95, '.2f')} ms (load {_f(load, '.2f', ' s')}, "
                 f"{_f(cached, '.2f', ' s')})", "–", None))
    return rows


def llm_answer(d: dict[str, Any]) -> list[Row]:
    return [("final transcript → first answer audio, real LLM (SmolLM2-135M, llama.cpp), p50",
             "measured (no target)",
             f"{_f(_g(d, 'llm', 'first_audio_ms', 'p50'), '.0f', ' ms')} (first token "
             f"{_f(_g(d, 'llm', 'first_text_ms', 'p50'), '.0f', ' ms')}, whole answer "
             f"{_f(_g(d, 'llm', 'last_text_ms', 'p50'), '.0f', ' ms')})",
             f"keyless notes: {_f(_g(d, 'keyless', 'first_audio_ms', 'p50'), '.0f', ' ms')}",
             None)]


def reconcile_storm(d: dict[str, Any]) -> list[Row]:
    m = d.get("modes", {})
    rec, both, base = (m.get(k, {}) for k in ("reconcile_only", "webhooks_and_reconcile",
                                              "baseline"))
    return [(f"demoted presenter's stale token can publish while {d.get('viewers')} viewers "
             "join: webhooks off, max (p50)", "≤ 5 s",
             f"{_f(_g(rec, 'offender_publish_seconds', 'max'), '.2f', ' s')} "
             f"({_f(_g(rec, 'offender_publish_seconds', 'p50'), '.2f', ' s')}; "
             f"{_g(rec, 'offender_publish_seconds', 'n')} tries)",
             f"no guard: never demoted ({base.get('offenders_never_demoted')} of "
             f"{len(base.get('probes', []))} tries, gave up after {d.get('probe_timeout_s')} s)",
             d.get("pass")),
            ("… with webhooks and reconciliation (default), p50 (max)", "",
             f"{_f(1e3 * (_g(both, 'offender_publish_seconds', 'p50') or 0), '.0f', ' ms')} "
             f"({_f(1e3 * (_g(both, 'offender_publish_seconds', 'max') or 0), '.0f', ' ms')})",
             f"webhooks lost: {both.get('webhooks_lost_lines')}", None)]


def join_storm(d: dict[str, Any]) -> list[Row]:
    cpu = d.get("cpu_seconds") or {}
    return [(f"{d.get('viewers')} viewer joins (join API + LiveKit signal and WebRTC connect, "
             f"{d.get('shards')} shards on {d.get('nodes')} nodes): all in, errors",
             "≤ 10 s, no error",
             f"{_f(d.get('all_joined_and_connected_s'), '.1f', ' s')} "
             f"({_f(d.get('joins_per_second'), '.0f')}/s), {d.get('errors')} errors",
             f"join API p50 / p95 {_f(_g(d, 'join_api_ms', 'p50'), '.0f')} / "
             f"{_f(_g(d, 'join_api_ms', 'p95'), '.0f')} ms; connect p50 / p95 "
             f"{_f(_g(d, 'connect_ms', 'p50'), '.0f')} / "
             f"{_f(_g(d, 'connect_ms', 'p95'), '.0f')} ms", d.get("pass")),
            ("… the audience count's peak; the demoted presenter's stale token during it, "
             "p50 (max)", "= viewers; demoted",
             f"{max((c[1] for c in d.get('audience_polls') or []), default=None)} counted; "
             f"{_f(_g(d, 'stale_token_publish_s', 'p50'), '.2f')} "
             f"({_f(_g(d, 'stale_token_publish_s', 'max'), '.2f', ' s')}), never demoted "
             f"{d.get('stale_token_never_demoted')}",
             "webhooks dropped " + (", ".join(f"{v} {k}" for k, v in
                                             (d.get("webhooks_dropped") or {}).items())
                                   or "none") + "; "
             f"CPU s: web "
             f"{_f(cpu.get('web'), '.1f')}, nodes "
             + " / ".join(_f(v, ".1f") for k, v in sorted(cpu.items()) if k != "web"),
             None)]


def avatar_sessions(d: dict[str, Any]) -> list[Row]:
    after, before = d.get("after") or {}, d.get("before") or {}
    per = d.get("sessions_per_round")
    return [(f"avatar service RSS after rounds of {per} sessions (started, stopped)",
             "flat after the first round (≤ 20 MB)",
             " → ".join(_f(v, ".0f") for v in [after.get("idle_rss_mb"),
                                               *after.get("rss_mb", [])]) + " MB",
             (f"{d.get('compare')}: " + " → ".join(
                 _f(v, ".0f") for v in [before.get("idle_rss_mb"), *before.get("rss_mb", [])])
              + " MB") if before else "idle: " + _f(after.get("idle_rss_mb"), ".0f", " MB"),
             d.get("pass"))]


def faults(d: dict[str, Any]) -> list[Row]:
    rows: list[Row] = []
    for part, f in (d.get("faults") or {}).items():
        live, slate = f.get("live_after") or {}, f.get("slate_after") or {}
        rows.append((f"{part} killed (SIGKILL, {live.get('n', 0)} of {len(f.get('runs', []))} "
                     "back): live avatar at a viewer after, p50 / p95",
                     f"≤ {_f(f.get('goal_live_s'), '.0f', ' s')}",
                     f"{_f(live.get('p50'), '.1f')} / {_f(live.get('p95'), '.1f', ' s')} "
                     f"(round 1: {_f((f.get('runs') or [{}])[0].get('live_after'), '.1f', ' s')};"
                     f" kills {d.get('spacing', 'back to back')}"
                     + (f"; picture moving p50 {_f(f['moving_after'].get('p50'), '.1f', ' s')}"
                        if (f.get("moving_after") or {}).get("n") else "") + ")",
                     f"slate after p50 {_f(slate.get('p50'), '.2f', ' s')}"
                     if slate.get("n") else "no slate frame (nobody publishes)",
                     f.get("never_live") == 0
                     and (live.get("p95") or 99) <= f.get("goal_live_s", 0)))
    for name, s in (d.get("soak") or {}).items():
        rss, span = s.get("rss_mb") or [0], (s.get("t") or [0])[-1]
        fit = (f"fit {_f(s.get('rss_mb_per_hour_fit'), '.0f')} MB/h" if span >= 600
               else "too short (and across kills) for a growth figure")
        rows.append((f"{name}: RSS over {_f(span, '.0f')} s of faults (not a soak)",
                     "≤ 5 MB/hour", f"{_f(rss[0], '.0f')} → {_f(rss[-1], '.0f')} MB ({fit})",
                     f"threads {_f((s.get('threads') or [0])[-1], '.0f')}, open files "
                     f"{_f((s.get('files') or [0])[-1], '.0f')}", None))
    return rows


BENCHES: dict[str, tuple[str, Callable[[dict[str, Any]], list[Row]]]] = {
    "conversation": ("Answers and conversation (keyless)", conversation),
    "llm_answer": ("LLM path: time to first answer audio", llm_answer),
    "render_cost": ("Avatar renderer CPU", render_cost),
    "republish_hop": ("Republish hop CPU", republish_hop),
    "republish_cpu": ("Republisher total CPU", republish_cpu),
    "republish_latency": ("Republish added latency", republish_latency),
    "frame_delivery": ("Frame delivery", frame_delivery),
    "stt_speculation": ("Transcription started at the pause", stt_speculation),
    "speech_latency": ("Speaker stops → avatar speaks", speech_latency),
    "join_latency": ("Viewer join → first frame", join_latency),
    "lipsync": ("Lip sync", lipsync),
    "barge_in": ("Barge-in", barge_in),
    "capacity": ("Viewer capacity", capacity),
    "layer_cost": ("Layer encode cost", layer_cost),
    "weak_link": ("Viewer on a weak link", weak_link),
    "encode_once": ("Encode once for several rooms", encode_once),
    "caption_sync": ("Captions in step with the voice", caption_sync),
    "reconcile_storm": ("Floor guard under a join storm", reconcile_storm),
    "join_storm": ("Join storm on a 3-node cluster", join_storm),
    "node_loss": ("Node loss on a 3-node cluster (SIGKILL, viewers rejoin)", node_loss),
    "avatar_sessions": ("Avatar session memory", avatar_sessions),
    "faults": ("Recovery after crashes (SIGKILL under a watching viewer)", faults),
    "fault_matrix": ("Every part, every signal (SIGTERM, SIGINT, SIGKILL under a viewer)",
                     fault_matrix),
    "rollover": ("Session rollover over a webinar hour (accelerated 12x: the stress)",
                 rollover),
    "rollover_no_handover": ("Session rollover, accelerated 12x, without the speech handover "
                             "(baseline)", rollover),
    "rollover_minute": ("Session rollover at the real proportions, halved (30-s sessions)",
                        rollover),
    "rollover_minute_no_handover": ("Session rollover, 30-s sessions, without the speech "
                                    "handover (baseline)", rollover),
    "soak": ("Soak (50 viewers, a question a minute)", soak),
}


def _details(name: str, d: dict[str, Any]) -> list[str]:
    out: list[str] = []
    if name == "speech_latency":
        stages = d.get("bot_stages_ms", {})
        if stages:
            out.append("Bot stages (p50 over the counted turns, ms; from the bot's "
                       "`LatencyObserver`):\n")
            out.append("| " + " | ".join(stages) + " | bot total |")
            out.append("|" + "---|" * (len(stages) + 1))
            out.append("| " + " | ".join(_f(v.get("p50"), ".0f") for v in stages.values())
                       + f" | {_f(_g(d, 'bot_total_ms', 'p50'), '.0f')} |")
            err = [t["bot_speech_end_error_ms"] for t in d.get("turns", [])
                   if t.get("bot_speech_end_error_ms") is not None and not t.get("warmup")]
            if err:
                err.sort()
                out.append(f"\nThe bot dates the last word at its VAD stop − `stop_secs`; the "
                           f"real last word was {_f(err[len(err) // 2], '.0f')} ms earlier "
                           "(median): Silero's own detection delay plus the trip to the bot, "
                           "so true endpointing is that much longer than the 200 ms shown.")
            out.append("\nTurns:\n")
            out.append("| question | sees | hears | direct sees | bot total |")
            out.append("|---|---|---|---|---|")
            for t in d.get("turns", []):
                q = t["question"] + (" (warm-up, not counted)" if t.get("warmup") else "")
                out.append(f"| {q} | {_f(t['sees_ms'], '.0f')} | {_f(t['hears_ms'], '.0f')} | "
                           f"{_f(t['direct_sees_ms'], '.0f')} | {_f(t['bot_total_ms'], '.0f')} |")
    elif name == "join_latency":
        for kind in ("stage", "direct"):
            k = d.get(kind, {})
            out.append(f"- {kind}: token {_f(_g(k, 'token_ms', 'p50'))} ms, connect "
                       f"{_f(_g(k, 'connect_ms', 'p50'))} ms, connected → first frame "
                       f"{_f(_g(k, 'connected_to_frame_ms', 'p50'))} ms (p50 of "
                       f"{_g(k, 'first_frame_ms', 'n')} joins)")
    elif name == "lipsync":
        for key in ("stage", "direct_baseline"):
            k = d.get(key, {})
            per = ", ".join(_f(v, "+.0f") for v in k.get("per_turn_skew_ms", []))
            out.append(f"- {key}: {_f(k.get('skew_ms'), '+.1f')} ms (peak correlation "
                       f"{_f(k.get('peak_corr'), '.2f')}, {_f(k.get('seconds_analysed'), '.0f')} s "
                       f"of speech); per answer {per}; onset difference p50 "
                       f"{_f(_g(k, 'onset_skew_ms', 'p50'), '+.0f')} ms")
        added = _f(d.get("added_by_republish_ms"), "+.0f")
        out.append(f"- added by the republish path: {added} ms; the republisher's own audio "
                   f"lag at the end of the session (`broadcaster_republisher_last_audio_lag_"
                   f"seconds`): {_f(d.get('bot_last_audio_lag_ms'), '.0f')} ms, "
                   f"{_f(d.get('bot_audio_frames_dropped'), '.0f')} speech frames dropped to "
                   "bound it")
    elif name == "frame_delivery":
        for key in ("republished", "end_to_end_source_frames", "direct_baseline"):
            k = d.get(key, {})
            out.append(f"- {key}: {k.get('received')} of {k.get('expected')} frames, "
                       f"{_f(k.get('fps'), '.3f')} fps, longest gap {_f(k.get('max_gap_ms'))} ms")
        la = d.get("load_avg") or {}
        if la.get("mean") is not None:
            out.append(f"- load average during the run: mean {la['mean']:.1f}, max "
                       f"{la['max']:.1f} (on {_g(d, 'machine', 'cpus')} CPUs)")
        rs = d.get("relay_stats", {})
        out.append(f"- republisher: {rs.get('frames_published')} published, "
                   f"{rs.get('frames_repeated')} repeats, {rs.get('frames_dropped')} dropped")
    elif name == "capacity":
        out.append("| phase | viewers | fps q5 / p50 | loss q95 | video kbps | SFU cores | "
                   "publisher cores | load client cores | box cores |")
        out.append("|---|---|---|---|---|---|---|---|---|")
        for phase, pub in (("avatar", "bot"), ("baseline", "publisher"),
                           ("baseline_svc", "publisher")):
            for st in _g(d, phase, "steps") or []:
                c = st.get("cpu_cores", {})
                out.append(
                    f"| {phase} | {st['viewers']}{' (saturated)' if st.get('saturated') else ''}"
                    f" | {_f(st['fps_at_quantile'], '.1f')} / "
                    f"{_f(_g(st, 'fps', 'p50'), '.1f')} | "
                    f"{_f(100 * st['loss_at_quantile'], '.2f', ' %')} | "
                    f"{_f(_g(st, 'kbps', 'p50'), '.0f')} | {_f(c.get('sfu'), '.2f')} | "
                    f"{_f(c.get(pub), '.2f')} | {_f(c.get('loadviewers'), '.2f')} | "
                    f"{_f(st.get('box_cores'), '.2f')} |")
        out.append(f"\nStopped: avatar — {_g(d, 'avatar', 'stopped') or 'cap reached'}; "
                   f"baseline — {_g(d, 'baseline', 'stopped') or 'cap reached'}; baseline_svc"
                   f" — {_g(d, 'baseline_svc', 'stopped') or 'cap reached'}. Avatar "
                   f"service (HeyGen's stand-in, not on a production box): "
                   f"{_f(_g(d, 'avatar', 'avatar_service_cores_mean'), '.2f')} core. "
                   f"Commit {d.get('commit')}, livekit-server "
                   f"{_g(d, 'versions', 'livekit-server')}, server-sdk-go "
                   f"{_g(d, 'versions', 'server-sdk-go')}.")
    elif name == "layer_cost":
        out.append("| mode | publisher cores | x one layer | layers seen (size @ fps, kbit/s) |")
        out.append("|---|---|---|---|")
        for mode, x in d.get("modes", {}).items():
            layers = "; ".join(
                f"{q}: {ly['size'][0]}x{ly['size'][1]} @ {_f(ly.get('fps'), '.0f')}, "
                f"{_f(ly.get('kbps'), '.0f')}" if ly.get("size") and ly["size"][0]
                else f"{q}: ? @ {_f(ly.get('fps'), '.0f')}, {_f(ly.get('kbps'), '.0f')}"
                for q, ly in (x.get("layers") or {}).items())
            out.append(f"| {mode} | {_f(x.get('cores_median'), '.3f')} | "
                       f"{_f(x.get('ratio_vs_single'), '.2f')} | {layers} |")
        py = d.get("pyav", {})
        out.append("\nlibvpx VP8 per layer, encoded once in PyAV (ms per frame): "
                   + ", ".join(f"{k.removeprefix('pyav_vp8_')} {v:.2f}" for k, v in py.items()))
    elif name == "weak_link" and not d.get("skipped"):
        out.append("| mode | normal viewer | weak viewer (500 kbit/s) | weak viewer's sizes over"
                   " time (s: height) | through the link |")
        out.append("|---|---|---|---|---|")
        for mode, x in d.get("modes", {}).items():
            n, w = x.get("normal", {}), x.get("weak", {})
            ch = ", ".join(f"{c['t']:.0f}: {c['height']}" for c in w.get("size_changes", []))
            out.append(f"| {mode} | {_f(n.get('fps'), '.1f')} fps {n.get('size') or '–'} | "
                       f"{_f(w.get('fps'), '.1f')} fps {w.get('size') or '–'} | {ch} | "
                       f"{_f(x.get('weak_link_kbps'), '.0f')} kbit/s |")
    elif name == "encode_once":
        out.append("| mode | rooms | publisher cores | viewer fps | viewer size |")
        out.append("|---|---|---|---|---|")
        for mode, x in d.get("modes", {}).items():
            for r in x.get("runs", []):
                out.append(f"| {mode} | {r['k']} | {_f(r.get('cores'), '.3f')} | "
                           f"{_f(r.get('viewer_fps'), '.1f')} | {r.get('viewer_height')}p |")
    elif name == "reconcile_storm":
        for r in d.get("modes", {}).values():
            o = r.get("offender_publish_seconds", {})
            out.append(f"- {r.get('label')}: {r.get('viewers')} viewers connected in "
                       f"{_f(r.get('storm_seconds'))} s (join API p50 "
                       f"{_f(_g(r, 'join_api_ms', 'p50'))} ms, LiveKit connect p50 "
                       f"{_f(_g(r, 'connect_ms', 'p50'), '.0f')} ms on the loaded box); "
                       f"stale token publishing p50 {_f(o.get('p50'), '.3f')} s, max "
                       f"{_f(o.get('max'), '.3f')} s over {o.get('n', 0)} tries, never "
                       f"demoted {r.get('offenders_never_demoted')}; webhooks lost "
                       f"{r.get('webhooks_lost_lines')}; web app CPU "
                       f"{_f(r.get('web_app_cpu_seconds'), '.2f')} s")
    elif name == "node_loss":
        out += node_loss_details(d)
    elif name == "republish_latency":
        a = d.get("added_ms", {})
        out.append(f"- added latency: p50 {_f(a.get('p50'))}, p95 {_f(a.get('p95'))}, max "
                   f"{_f(a.get('max'))} ms over {d.get('frames_compared')} frames "
                   f"({d.get('seconds')} s)")
    return out


def _provenance_line(d: dict[str, Any]) -> str:
    """Say what a result ran on (results older than the stamp say so)."""
    if not d.get("commit"):
        return "- ran before results recorded their commit and package versions"
    pkgs = ", ".join(f"{k} {v}" for k, v in (d.get("packages") or {}).items() if v)
    return (f"- ran on commit {d['commit']}; {pkgs}; livekit-server "
            f"{d.get('livekit_server') or '?'}")


def write_report(path: Path = DOC) -> Path:
    rows: list[str] = []
    sections: list[str] = []
    for name, (title, fn) in BENCHES.items():
        d = _load(name)
        if d is None:
            rows.append(f"| {title} | (not run yet: `python -m bench {name}`) | | | | |")
            continue
        try:
            made = fn(d)
        except (KeyError, TypeError) as exc:
            rows.append(f"| {title} | (result file not understood: {exc}) | | | | |")
            continue
        for measure, target, result, baseline, ok in made:
            rows.append(f"| {title} | {measure} | {target} | {result} | {baseline} | {_ok(ok)} |")
        when = d.get("when") or time.strftime(
            "%Y-%m-%dT%H:%M:%S%z", time.localtime((RESULTS / f"{name}.json").stat().st_mtime))
        mode = " (quick mode)" if d.get("quick") else ""
        load = _g(d, "machine", "loadavg_1m")
        load_note = f" Load average when it finished: {load:g}." if load is not None else ""
        script = d.get("script") or f"bench/{name}.py"
        sec = [f"### {title}\n", f"`{script}`, {when}{mode}. " + (d.get("what") or "")
               + "." + load_note + "\n"]
        sec += _details(name, d)
        sec.append(_provenance_line(d))
        if d.get("note"):  # what the stamp cannot say (re-analysed, a dirty tree, outliers)
            sec.append(f"- note: {d['note']}")
        png = RESULTS / f"{name}.png"
        if png.exists():
            sec.append(f"\n![{title}](../bench/results/{name}.png)\n")
        sections.append("\n".join(sec))
    machine = next((d["machine"] for n in BENCHES
                    if (d := _load(n)) and "platform" in d.get("machine", {})), {})
    text = "\n".join([
        "# Benchmarks",
        "",
        "Generated by `python -m bench` (`./dev bench`) from `bench/results/*.json`; do not "
        "edit by hand. Every benchmark runs its baseline in the same script, at the same "
        "time, because the machines are noisy.",
        "",
        "```",
        "./dev bench                    # everything (frame delivery runs 10 minutes)",
        "./dev bench --quick            # shorter runs (frame delivery 60 s, fewer turns)",
        ".venv/bin/python -m bench lipsync join_latency   # some of them",
        ".venv/bin/python -m bench --report               # only rewrite this page",
        "```",
        "",
        f"Machine of the latest runs: {machine.get('platform', '?')}, "
        f"{machine.get('cpus', '?')} CPUs, Python {machine.get('python', '?')}. "
        "Everything runs on loopback: a local livekit-server, the local avatar service "
        "and the offline speech stack.",
        "",
        "## Summary",
        "",
        "| benchmark | measure | target | result | baseline (same run) | meets target |",
        "|---|---|---|---|---|---|",
        *rows,
        "",
        "## Details",
        "",
        "\n\n".join(sections),
        "",
    ])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


if __name__ == "__main__":
    print(write_report())
