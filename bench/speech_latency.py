"""Speaker stops → a viewer sees (and hears) the avatar answer, offline default stack.

The whole stack runs as ``broadcaster up`` (bench/e2e.py): local livekit-server,
local avatar service, web app and the demo room's bot with Whisper tiny.en, the FAQ
responder and Piper. A presenter asks questions with Debian's flite voice; the moment
the last word leaves the presenter's microphone queue is the start. At a viewer of
the stage room:

- *sees*: the first video frame whose mouth box shows the mouth opening (renderer
  openness 0.1);
- *hears*: the first 10 ms of avatar audio as loud as that opening (-44.6 dBFS).

Baseline, same turns: a viewer subscribed directly to the avatar's source room (what
the avatar itself delivers; the difference is the republish path). The bot's own
stage breakdown (broadcaster/bot/latency.py: endpointing, transcription, responder,
TTS, avatar, publish) is read from its log for each turn. The first question is a
warm-up (Whisper's first inference is slow) and is not counted. Target: p50 ≤ 1.2 s.

Run: ``.venv/bin/python -m bench speech_latency [--quick]``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import e2e  # noqa: E402
from bench.figures import RESULTS, machine, now_iso, pyplot, summary, write_result  # noqa: E402
from broadcaster.metrics import STAGES  # noqa: E402

NAME = "speech_latency"
TARGET_P50_S = 1.2


def analyse(run: e2e.StackRun) -> dict[str, Any]:
    rows = []
    for t in run.turns:
        end = t.speech_end_us
        until = t.answer_end_us or end + 15_000_000

        def ms(us: int | None, end: int = end) -> float | None:
            return None if us is None else (us - end) / 1e3

        bot = e2e.match_bot_turn(run, t)
        rows.append({
            "question": t.question,
            "warmup": t.warmup,
            "sees_ms": ms(e2e.mouth_onset(run.stage, end, until)),
            "hears_ms": ms(e2e.audio_onset(run.stage, end, until)),
            "direct_sees_ms": ms(e2e.mouth_onset(run.direct, end, until)),
            "direct_hears_ms": ms(e2e.audio_onset(run.direct, end, until)),
            "bot_total_ms": None if bot is None or bot["total"] is None else bot["total"] * 1e3,
            "bot_stages_ms": None if bot is None
            else {k: v * 1e3 for k, v in bot["stages"].items()},
            "bot_speech_end_error_ms": None if bot is None else
            ((bot["moments"]["vad_stop"] - bot["moments"]["stop_secs"]) * 1e6 - end) / 1e3,
            # last word leaving the presenter -> the bot's VAD calls the utterance over
            "endpointing_measured_ms": None if bot is None else
            (bot["moments"]["vad_stop"] * 1e6 - end) / 1e3,
        })
    counted = [r for r in rows if not r["warmup"]]

    def col(key: str) -> list[float]:
        return [r[key] for r in counted if r[key] is not None]

    stages = {"endpointing (measured)": summary(col("endpointing_measured_ms"))}
    stages.update({name: summary(r["bot_stages_ms"][name] for r in counted
                                 if r["bot_stages_ms"] and name in r["bot_stages_ms"])
                   for name in STAGES})
    sees = summary(col("sees_ms"))
    hears = summary(col("hears_ms"))
    return {
        "turns": rows,
        "sees_ms": sees,
        "hears_ms": hears,
        "direct_sees_ms": summary(col("direct_sees_ms")),
        "direct_hears_ms": summary(col("direct_hears_ms")),
        "bot_total_ms": summary(col("bot_total_ms")),
        "bot_stages_ms": stages,
        "p50_s": sees["p50"] / 1e3 if sees.get("n") else None,
        "hears_p50_s": hears["p50"] / 1e3 if hears.get("n") else None,
        "pass": bool(sees.get("n")) and sees["p50"] / 1e3 <= TARGET_P50_S,
    }


COLORS = {"endpointing": "#9aa5b1", "transcription": "#4c78a8", "responder": "#72b7b2",
          "tts": "#54a24b", "avatar": "#f58518", "publish": "#e45756"}


def plot(result: dict[str, Any], path: Path) -> None:
    plt = pyplot()
    if plt is None:
        return
    rows = [r for r in result["turns"] if not r["warmup"]]
    if not rows:
        return
    fig, ax = plt.subplots(figsize=(10, 1.9 + 0.55 * len(rows)), dpi=100)
    y = np.arange(len(rows))[::-1]
    for yi, r in zip(y, rows, strict=True):
        left = 0.0
        for name in STAGES:
            v = (r["bot_stages_ms"] or {}).get(name)
            if name == "endpointing":  # as measured from the real last word, not stop_secs
                v = r.get("endpointing_measured_ms", v)
            if v is None:
                continue
            ax.barh(yi, v, left=left, height=0.5, color=COLORS[name],
                    label=(name + (" (measured)" if name == "endpointing" else ""))
                    if yi == y[0] else None)
            left += v
        for key, marker, label in (("sees_ms", "D", "viewer sees (mouth opens)"),
                                   ("hears_ms", "o", "viewer hears"),
                                   ("direct_sees_ms", "d", "direct viewer sees (baseline)")):
            if r[key] is not None:
                ax.plot(r[key], yi, marker, color="k" if "direct" not in key else "0.5",
                        ms=6, mfc="none" if key == "hears_ms" else None,
                        label=label if yi == y[0] else None)
    ax.axvline(TARGET_P50_S * 1e3, color="tab:red", ls="--", lw=1,
               label=f"target p50 {TARGET_P50_S:g} s")
    ax.set_yticks(y, [r["question"][:38] for r in rows], fontsize=8)
    ax.set_xlabel("ms after the presenter's last word")
    s = result["sees_ms"]
    ax.set_title(f"Speaker stops → viewer sees the avatar speak: p50 {s['p50']:.0f} ms "
                 f"(bars: the bot's stages)")
    ax.grid(axis="x", alpha=0.3)
    ax.set_xlim(0, max(ax.get_xlim()[1], TARGET_P50_S * 1e3 * 1.1))
    fig.tight_layout(rect=(0, 0.16, 1, 1))
    fig.legend(*ax.get_legend_handles_labels(), loc="lower center", ncol=5, fontsize=7,
               frameon=False)
    fig.savefig(path)
    plt.close(fig)


def run(quick: bool = False) -> dict[str, Any]:
    res = analyse(e2e.session(quick))
    result = {
        "bench": NAME,
        "what": "presenter's last word -> a stage viewer sees the avatar's mouth open / "
                "hears it (offline default stack via broadcaster up, loopback); baseline: "
                "a viewer of the avatar's source room; stages from the bot's observer",
        "quick": quick,
        "target_p50_s": TARGET_P50_S,
        **res,
        "machine": machine(),
        "when": now_iso(),
    }
    write_result(NAME, result)
    plot(result, RESULTS / f"{NAME}.png")
    return result


if __name__ == "__main__":
    e2e.main(run, __doc__, ("p50_s", "hears_p50_s", "pass"))
