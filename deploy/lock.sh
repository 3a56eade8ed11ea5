#!/usr/bin/env bash
# Regenerate the lock files in requirements/ from pyproject.toml: every package pinned
# (and hashed) for Python >= 3.11 on any platform, with uv from PyPI.
#
#   ./dev lock              after changing dependencies in pyproject.toml: adds and
#                           removes what changed, keeps every other pin as it is
#   ./dev lock --upgrade    move every pin to the newest version pyproject.toml allows
#
# deploy/lock-excludes.txt names packages left out of every lock (a dependency declared by
# a package whose code using it broadcaster never runs); install.sh installs the locks with
# --no-deps, which a complete lock allows.
#
# Three locks, each a superset of the one before (the same pins where they overlap):
#   requirements/run.txt    what running needs (./dev up, the container image)
#   requirements/test.txt   + the test and llm extras (./dev test, CI)
#   requirements/bench.txt  + the bench extra (./dev bench)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
UV_VERSION="0.13.8"
UV_VENV="$ROOT/.tools/uv"
UV="$UV_VENV/bin/uv"
PYTHON="${PYTHON:-python3}"
upgrade=()
for arg in "$@"; do
  case "$arg" in
    --upgrade) upgrade=(--upgrade) ;;
    *) echo "lock.sh: unknown option '$arg' (use --upgrade)" >&2; exit 2 ;;
  esac
done

say() { printf '\033[1m[lock]\033[0m %s\n' "$*"; }

if [ ! -x "$UV" ] || [ "$("$UV" --version | cut -d' ' -f2)" != "$UV_VERSION" ]; then
  say "installing uv $UV_VERSION from PyPI into .tools/uv"
  "$PYTHON" -m venv "$UV_VENV"
  "$UV_VENV/bin/python" -m pip install --disable-pip-version-check -q "uv==$UV_VERSION"
fi

cd "$ROOT"
mkdir -p requirements
compile() {  # compile NAME [uv options...]: requirements/NAME.txt
  local out="requirements/$1.txt"; shift
  say "$out"
  # uv keeps the pins already in the output file (unless --upgrade)
  "$UV" pip compile pyproject.toml --universal --python-version 3.11 --generate-hashes \
    --excludes deploy/lock-excludes.txt --quiet "${upgrade[@]}" "$@" -o "$out"
  sed -i "1i # Locked dependencies: do not edit; regenerate with ./dev lock (deploy/lock.sh)." "$out"
}
compile run
compile test --extra test --extra llm -c requirements/run.txt
compile bench --extra test --extra llm --extra bench -c requirements/test.txt
say "done: commit requirements/*.txt with the pyproject.toml change"
