"""Whisper started at the speaker's pause vs at the VAD's confirmed stop.

The bot's speech front end in one process, as the bot runs it: SpeakerVADProcessor
(Silero with the bot's VAD settings) → SpeakerAwareWhisperSTTService (tiny.en,
greedy). Debian's flite asks the sample questions in real time (20 ms chunks at
16 kHz, 0.8 s of silence after each, the next one only once the transcript is in).
Measured per question: the VAD's confirmed stop (``VADUserStoppedSpeakingFrame``,
``vad_stop_secs`` after the last voiced window) → the ``TranscriptionFrame``: the
bot's "transcription" stage. Baseline in the same run: the same questions with
speculation off (pipecat's behaviour: transcribe at the stop), alternating with it
so machine noise hits both alike. Both must get as many of the questions' words
right (word accuracy).

Run: ``.venv/bin/python -m bench stt_speculation [--quick]``.
"""

from __future__ import annotations

import asyncio
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.figures import RESULTS, machine, now_iso, progress, pyplot, summary, write_result  # noqa: E402
from probes.speech import flite  # noqa: E402

NAME = "stt_speculation"
RATE = 16_000
CHUNK = RATE // 50  # 20 ms
QUESTIONS = (
    "What is on the agenda today?",
    "Will the slides be shared?",
    "How do I ask a question?",
    "Who are the speakers today?",
    "When does the live demo start?",
)


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z']+", text.lower())


def _accuracy(rows: list[dict[str, Any]]) -> float:
    """Share of the questions' words that the transcripts have, in order (LCS)."""
    right = total = 0
    for r in rows:
        want, got = _words(r["question"]), _words(r["text"])
        lcs = [[0] * (len(got) + 1) for _ in range(len(want) + 1)]
        for i, w in enumerate(want):
            for j, g in enumerate(got):
                lcs[i + 1][j + 1] = lcs[i][j] + 1 if w == g else max(lcs[i][j + 1], lcs[i + 1][j])
        right, total = right + lcs[-1][-1], total + len(want)
    return right / total if total else 0.0


async def _measure(rounds: int) -> list[dict[str, Any]]:
    from pipecat.frames.frames import (
        EndFrame,
        Frame,
        InputAudioRawFrame,
        TranscriptionFrame,
        VADUserStoppedSpeakingFrame,
    )
    from pipecat.pipeline.pipeline import Pipeline
    from pipecat.pipeline.task import PipelineParams
    from pipecat.pipeline.worker import PipelineWorker
    from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
    from pipecat.workers.runner import WorkerRunner

    from broadcaster.config import Settings
    from broadcaster.speech import make_stt, make_vad
    from broadcaster.speech.vad import SpeakerVADProcessor

    class Sink(FrameProcessor):
        def __init__(self) -> None:
            super().__init__()
            self.stop_at = 0.0
            self.got: asyncio.Queue[tuple[float, float, str]] = asyncio.Queue()

        async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
            await super().process_frame(frame, direction)
            if isinstance(frame, VADUserStoppedSpeakingFrame):
                self.stop_at = time.perf_counter()
            elif isinstance(frame, TranscriptionFrame):
                self.got.put_nowait((self.stop_at, time.perf_counter(), frame.text))
            await self.push_frame(frame, direction)

    settings = Settings.load(env={}, state_dir=tempfile.mkdtemp(prefix="bench-stt-"))
    stt = make_stt(settings)
    sink = Sink()
    worker = PipelineWorker(
        Pipeline([SpeakerVADProcessor(vad_analyzer=make_vad(settings)), stt, sink]),
        params=PipelineParams(audio_in_sample_rate=RATE), cancel_on_idle_timeout=False,
    )
    clips = {q: flite(q, RATE, voice="slt", trim=True) for q in QUESTIONS}
    plan = [(QUESTIONS[0], True, True)]  # warm-up: Whisper's first run is slow
    for r in range(rounds):
        for i, q in enumerate(QUESTIONS):
            first = (i + r) % 2 == 0  # alternate which mode goes first
            plan += [(q, first, False), (q, not first, False)]
    rows: list[dict[str, Any]] = []
    bar = progress(len(plan), NAME)

    async def speak(pcm: np.ndarray) -> None:
        audio = np.concatenate([np.zeros(RATE // 5, np.int16), pcm,
                                np.zeros(RATE * 4 // 5, np.int16)])
        t0 = time.perf_counter()
        for n, i in enumerate(range(0, audio.size - CHUNK + 1, CHUNK)):
            await worker.queue_frame(InputAudioRawFrame(
                audio=audio[i : i + CHUNK].tobytes(), sample_rate=RATE, num_channels=1))
            await asyncio.sleep(max(0.0, t0 + (n + 1) * CHUNK / RATE - time.perf_counter()))

    async def drive() -> None:
        await asyncio.sleep(1.0)  # the pipeline starts, Whisper loads
        try:
            for question, speculate, warmup in plan:
                stt.speculate = speculate
                await speak(clips[question])
                stop, done, text = await asyncio.wait_for(sink.got.get(), 30)
                rows.append({"question": question, "speculate": speculate, "warmup": warmup,
                             "stop_to_transcript_ms": (done - stop) * 1e3, "text": text})
                bar.update(1)
        finally:
            bar.close()
            await worker.queue_frame(EndFrame())

    runner = WorkerRunner(handle_sigint=False)
    await runner.add_workers(worker)
    await asyncio.gather(runner.run(), drive())
    return rows


def run(quick: bool = False) -> dict[str, Any]:
    rows = asyncio.run(_measure(rounds=2 if quick else 4))
    counted = [r for r in rows if not r["warmup"]]
    on = [r["stop_to_transcript_ms"] for r in counted if r["speculate"]]
    off = [r["stop_to_transcript_ms"] for r in counted if not r["speculate"]]
    accuracy = {mode: _accuracy([r for r in counted if r["speculate"] is mode])
                for mode in (True, False)}
    s_on, s_off = summary(on), summary(off)
    result = {
        "what": "VAD-confirmed stop → transcript with Whisper started at the pause, vs "
                "started at the stop (baseline, same process, alternating)",
        "when": now_iso(), "quick": quick, "machine": machine(),
        "speculative_ms": s_on, "baseline_ms": s_off,
        "saved_p50_ms": s_off["p50"] - s_on["p50"],
        "ratio_p50": s_on["p50"] / s_off["p50"],
        "word_accuracy": {"speculative": accuracy[True], "baseline": accuracy[False]},
        "pass": s_on["p50"] < s_off["p50"] and accuracy[True] >= accuracy[False] - 0.02,
        "turns": rows,
    }
    write_result(NAME, result)
    plt = pyplot()
    if plt is not None:
        fig, ax = plt.subplots(figsize=(7, 3.6))
        ax.boxplot([off, on], orientation="horizontal", widths=0.5)
        for y, values in ((1, off), (2, on)):
            ax.scatter(values, np.full(len(values), y) + np.linspace(-0.12, 0.12, len(values)),
                       s=14, alpha=0.7)
        ax.set_yticks([1, 2], ["at the stop\n(pipecat)", "at the pause\n(broadcaster)"])
        ax.set_xlabel("VAD stop → transcript (ms), Whisper tiny.en, this machine")
        ax.set_title(f"Transcription stage: p50 {s_off['p50']:.0f} → {s_on['p50']:.0f} ms "
                     f"({result['ratio_p50']:.2f}x)")
        fig.tight_layout()
        fig.savefig(RESULTS / f"{NAME}.png", dpi=110)
    print(f"{NAME}: p50 {s_off['p50']:.0f} ms at the stop -> {s_on['p50']:.0f} ms at the "
          f"pause ({result['ratio_p50']:.2f}x); words right {accuracy[False]:.1%} -> "
          f"{accuracy[True]:.1%}")
    return result


if __name__ == "__main__":
    run(quick="--quick" in sys.argv)
