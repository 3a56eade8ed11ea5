#!/usr/bin/env bash
# Idempotent set-up for broadcaster: each step says what it does and skips
# itself when its result is already there.
#
#   deploy/install.sh            python env + livekit-server + livekit-client
#   deploy/install.sh --test     ... plus Debian chromium, flite and redis-server (browser,
#                                speech and multi-node LiveKit tests)
#   deploy/install.sh --bench    ... plus the benchmark extras (and the Go load viewers)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="$ROOT/.tools"
VENV="$ROOT/.venv"
LIVEKIT_VERSION="v1.13.5"
LIVEKIT_CLIENT_VERSION="2.23.0"
PYTHON="${PYTHON:-python3}"
WANT_TEST=0; WANT_BENCH=0
for arg in "$@"; do
  case "$arg" in
    --test) WANT_TEST=1 ;;
    --bench) WANT_BENCH=1 ;;
    *) echo "install.sh: unknown option '$arg' (use --test or --bench)" >&2; exit 2 ;;
  esac
done

say() { printf '\033[1m[install]\033[0m %s\n' "$*"; }
mkdir -p "$TOOLS/bin"

# 1. Debian packages (only for tests: chromium for the browser tests, flite for test speech,
#    redis-server for the multi-node LiveKit cluster)
if [ "$WANT_TEST" = 1 ] || [ "$WANT_BENCH" = 1 ]; then  # the benches speak with flite too
  missing=()
  command -v chromium >/dev/null || missing+=(chromium)
  command -v flite >/dev/null || missing+=(flite)
  command -v redis-server >/dev/null || missing+=(redis-server)
  if [ "${#missing[@]}" -gt 0 ]; then
    SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
    say "apt: installing ${missing[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    say "apt: chromium, flite and redis-server already installed"
  fi
fi

# 2. Python virtualenv with the package and its extras, re-run only when pyproject changes
extras="test"; [ "$WANT_BENCH" = 1 ] && extras="test,bench"
stamp="$VENV/.broadcaster-$(sha256sum "$ROOT/pyproject.toml" | cut -c1-16)-$extras"
if [ ! -x "$VENV/bin/python" ]; then
  say "python: creating virtualenv in .venv"
  "$PYTHON" -m venv "$VENV"
fi
if [ ! -f "$stamp" ]; then
  say "python: installing broadcaster[$extras] into .venv (about a minute when cold)"
  log="$TOOLS/pip-install.log"
  { "$VENV/bin/python" -m pip install --upgrade pip &&
    "$VENV/bin/python" -m pip install -e "$ROOT[$extras]"; } > "$log" 2>&1 ||
    { tail -n 40 "$log" >&2; echo "install.sh: pip install failed (full log: $log)" >&2; exit 1; }
  rm -f "$VENV"/.broadcaster-*
  touch "$stamp"
else
  say "python: .venv is up to date"
fi

# 3. livekit-server, built from source with the Go toolchain (cached in .tools/bin)
LK="$TOOLS/bin/livekit-server"
if [ -x "$LK" ] && [ "$(cat "$TOOLS/bin/livekit-server.version" 2>/dev/null)" = "$LIVEKIT_VERSION" ]; then
  say "livekit-server $LIVEKIT_VERSION already built"
else
  command -v go >/dev/null || { echo "install.sh: Go is needed to build livekit-server (https://go.dev/dl)" >&2; exit 1; }
  say "livekit-server: go install github.com/livekit/livekit-server/cmd/server@$LIVEKIT_VERSION (about 1.5 min when cold)"
  GOBIN="$TOOLS/gobin" go install "github.com/livekit/livekit-server/cmd/server@$LIVEKIT_VERSION"
  mv "$TOOLS/gobin/server" "$LK"
  rmdir "$TOOLS/gobin" 2>/dev/null || true
  echo "$LIVEKIT_VERSION" > "$TOOLS/bin/livekit-server.version"
fi

# 4. livekit-client (browser SDK) from npm, served by our web app (no CDN)
CLIENT="$TOOLS/npm/node_modules/livekit-client/dist/livekit-client.esm.mjs"
if [ -f "$CLIENT" ] && grep -q "\"version\": \"$LIVEKIT_CLIENT_VERSION\"" "$TOOLS/npm/node_modules/livekit-client/package.json"; then
  say "livekit-client $LIVEKIT_CLIENT_VERSION already installed"
else
  command -v npm >/dev/null || { echo "install.sh: npm is needed for livekit-client (install Node.js)" >&2; exit 1; }
  say "livekit-client: npm install livekit-client@$LIVEKIT_CLIENT_VERSION into .tools/npm"
  mkdir -p "$TOOLS/npm"
  npm install --silent --no-audit --no-fund --prefix "$TOOLS/npm" "livekit-client@$LIVEKIT_CLIENT_VERSION" >/dev/null
fi
# 5. the Go load viewers for the capacity benchmarks (cached in .tools/bin)
if [ "$WANT_BENCH" = 1 ]; then
  bash "$ROOT/bench/loadviewers/build.sh"
fi
say "done"
