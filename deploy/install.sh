#!/usr/bin/env bash
# Idempotent set-up for broadcaster: checks what it needs first, then each step says
# what it does, shows its progress and skips itself when its result is already there.
#
#   deploy/install.sh            what running needs: Python packages (requirements/run.txt),
#                                livekit-server, livekit-client, the responder's
#                                embedding model (deploy/models.sh)
#   deploy/install.sh --test     ... plus the test tools (requirements/test.txt) and Debian's
#                                chromium, flite and redis-server (browser, speech and
#                                multi-node LiveKit tests), and a local
#                                LLM for the LLM path (deploy/llm.sh)
#   deploy/install.sh --bench    ... plus the benchmark extras (requirements/bench.txt)
#
# Python packages come from the lock files only (pinned and hashed; ./dev lock makes them).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="$ROOT/.tools"
VENV="$ROOT/.venv"
LIVEKIT_VERSION="v1.13.5"
LIVEKIT_GO="1.26"  # the go directive of livekit-server's go.mod at that version
LIVEKIT_CLIENT_VERSION="2.23.0"
PYTHON="${PYTHON:-python3}"
level=run
for arg in "$@"; do
  case "$arg" in
    --test) [ "$level" = bench ] || level=test ;;
    --bench) level=bench ;;
    *) echo "install.sh: unknown option '$arg' (use --test or --bench)" >&2; exit 2 ;;
  esac
done

mkdir -p "$TOOLS/bin" "$TOOLS/logs"
# shellcheck source=deploy/steps.sh
source "$ROOT/deploy/steps.sh"

version_at_least() {  # version_at_least HAVE WANT (dotted numbers)
  [ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -n 1)" = "$2" ]
}

# 0. Prerequisites, all checked before anything is installed -----------------------------
CLIENT="$TOOLS/npm/node_modules/livekit-client/dist/livekit-client.esm.mjs"
LK="$TOOLS/bin/livekit-server"
need_livekit=1
[ -x "$LK" ] && [ "$(cat "$TOOLS/bin/livekit-server.version" 2>/dev/null)" = "$LIVEKIT_VERSION" ] \
  && need_livekit=0
need_client=1
[ -f "$CLIENT" ] && grep -q "\"version\": \"$LIVEKIT_CLIENT_VERSION\"" \
  "$TOOLS/npm/node_modules/livekit-client/package.json" && need_client=0

missing=()
if ! command -v "$PYTHON" >/dev/null; then
  missing+=("Python >= 3.11: '$PYTHON' is not on PATH (Debian/Ubuntu: apt-get install python3 python3-venv; or set PYTHON=/path/to/python3.11)")
elif ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  missing+=("Python >= 3.11: $PYTHON is $("$PYTHON" -V 2>&1) (set PYTHON=/path/to/python3.11 or newer)")
elif [ ! -x "$VENV/bin/python" ] && ! "$PYTHON" -c 'import venv, ensurepip' 2>/dev/null; then
  missing+=("Python's venv module with pip: $PYTHON has none (Debian/Ubuntu: apt-get install python3-venv)")
fi
if [ "$need_livekit" = 1 ]; then
  if ! command -v go >/dev/null; then
    missing+=("Go >= $LIVEKIT_GO, to build livekit-server $LIVEKIT_VERSION: 'go' is not on PATH (https://go.dev/dl)")
  else
    go_version="$(go env GOVERSION 2>/dev/null | sed 's/^go//')"
    version_at_least "${go_version:-0}" "$LIVEKIT_GO" ||
      missing+=("Go >= $LIVEKIT_GO, to build livekit-server $LIVEKIT_VERSION: found go $go_version")
  fi
fi
if [ "$need_client" = 1 ] && ! command -v npm >/dev/null; then
  missing+=("npm, to fetch livekit-client $LIVEKIT_CLIENT_VERSION (Debian/Ubuntu: apt-get install npm, or install Node.js)")
fi
if [ "$level" != run ] && ! ls "$TOOLS"/wheels/llama_cpp_python-*.whl >/dev/null 2>&1; then
  for tool in cmake c++; do  # deploy/llm.sh builds llama-cpp-python from source once
    command -v "$tool" >/dev/null ||
      missing+=("$tool, to build llama-cpp-python for the LLM path's tests (Debian/Ubuntu: apt-get install cmake g++)")
  done
fi
if [ "${#missing[@]}" -gt 0 ]; then
  echo "install.sh: this machine is missing what broadcaster needs:" >&2
  printf '  - %s\n' "${missing[@]}" >&2
  exit 1
fi

# 1. Debian packages (tests and benches only: chromium for the browser tests, flite for speech,
#    redis-server for the multi-node LiveKit cluster)
if [ "$level" != run ]; then
  apt_missing=()
  command -v chromium >/dev/null || apt_missing+=(chromium)
  command -v flite >/dev/null || apt_missing+=(flite)
  command -v redis-server >/dev/null || apt_missing+=(redis-server)
  if [ "${#apt_missing[@]}" -gt 0 ]; then
    SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
    say "apt: installing ${apt_missing[*]}"
    run_step apt-update $SUDO apt-get update
    run_step apt-install $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y \
      "${apt_missing[@]}"
  else
    say "apt: chromium, flite and redis-server already installed"
  fi
fi

# 2. Python virtualenv from the lock file; re-run only when the lock or pyproject changes
lock_hash() { cat "$ROOT/requirements/$1.txt" "$ROOT/pyproject.toml" | sha256sum | cut -c1-16; }
installed() {  # a level at or above the one asked for is installed from the current locks
  local l
  for l in "$@"; do [ -f "$VENV/.installed-$l-$(lock_hash "$l")" ] && return 0; done
  return 1
}
case "$level" in
  run) satisfied=(run test bench) ;;
  test) satisfied=(test bench) ;;
  bench) satisfied=(bench) ;;
esac
if [ ! -x "$VENV/bin/python" ]; then
  say "python: creating a virtualenv in .venv ($("$PYTHON" -V 2>&1))"
  "$PYTHON" -m venv "$VENV"
fi
if installed "${satisfied[@]}"; then
  say "python: .venv is up to date (requirements/$level.txt)"
else
  say "python: installing requirements/$level.txt into .venv (about a minute when cold)"
  run_step pip "$VENV/bin/python" -m pip install --disable-pip-version-check --progress-bar off \
    --require-hashes --no-deps -r "$ROOT/requirements/$level.txt"
  run_step broadcaster "$VENV/bin/python" -m pip install --disable-pip-version-check -q \
    --no-deps -e "$ROOT"
  rm -f "$VENV"/.installed-* "$VENV"/.broadcaster-*
  touch "$VENV/.installed-$level-$(lock_hash "$level")"
fi

# 3. livekit-server, built from source with the Go toolchain (cached in .tools/bin)
if [ "$need_livekit" = 0 ]; then
  say "livekit-server $LIVEKIT_VERSION already built"
else
  say "livekit-server: go install github.com/livekit/livekit-server/cmd/server@$LIVEKIT_VERSION (about 1.5 min when cold)"
  run_step livekit-server env GOBIN="$TOOLS/gobin" go install -v \
    "github.com/livekit/livekit-server/cmd/server@$LIVEKIT_VERSION"
  mv "$TOOLS/gobin/server" "$LK"
  rmdir "$TOOLS/gobin" 2>/dev/null || true
  echo "$LIVEKIT_VERSION" > "$TOOLS/bin/livekit-server.version"
fi

# 4. livekit-client (browser SDK) from npm, served by our web app (no CDN)
if [ "$need_client" = 0 ]; then
  say "livekit-client $LIVEKIT_CLIENT_VERSION already installed"
else
  say "livekit-client: npm install livekit-client@$LIVEKIT_CLIENT_VERSION into .tools/npm"
  mkdir -p "$TOOLS/npm"
  run_step npm npm install --no-audit --no-fund --prefix "$TOOLS/npm" \
    "livekit-client@$LIVEKIT_CLIENT_VERSION"
fi
# 5. the responder's sentence-embedding model (.tools/models; the responder falls back to
#    word matching without it)
PY="$VENV/bin/python" bash "$ROOT/deploy/models.sh"
# 6. a real LLM for the LLM path's tests and benchmark (llama.cpp server + SmolLM2-135M)
if [ "$level" != run ]; then
  bash "$ROOT/deploy/llm.sh"
fi
# 7. the SVC relay that carries the stage's video layers into audience shards (Go; the bot
#    encodes once, one layer, without it)
if [ "$level" != run ]; then
  bash "$ROOT/relay/svcrelay/build.sh"
elif command -v go >/dev/null; then
  bash "$ROOT/relay/svcrelay/build.sh" || say "svcrelay not built: audience shards get one layer"
fi
# 8. the Go load viewers for the capacity benchmarks (cached in .tools/bin)
if [ "$level" = bench ]; then
  bash "$ROOT/bench/loadviewers/build.sh"
fi
say "done"
