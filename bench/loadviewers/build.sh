#!/usr/bin/env bash
# Build the Go load viewers into .tools/bin/loadviewers, once per source change
# (a hash of the Go sources, go.mod and go.sum is kept beside the binary).
# Called by deploy/install.sh --bench (./dev bench) and by bench/loadtool.py.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
BIN="$ROOT/.tools/bin/loadviewers"
hash="$(find "$HERE" -maxdepth 1 \( -name '*.go' ! -name '*_test.go' -o -name go.mod -o -name go.sum \) \
  | sort | xargs cat | sha256sum | cut -c1-16)"
if [ -x "$BIN" ] && [ "$(cat "$BIN.hash" 2>/dev/null)" = "$hash" ]; then
  printf '\033[1m[install]\033[0m loadviewers (Go load client) already built\n'
  exit 0
fi
command -v go >/dev/null || { echo "build.sh: Go is needed for the load viewers (https://go.dev/dl)" >&2; exit 1; }
printf '\033[1m[install]\033[0m loadviewers: go build (server-sdk-go v2.19.0; about a minute when cold)\n'
mkdir -p "$ROOT/.tools/bin"
(cd "$HERE" && go build -trimpath -o "$BIN.tmp" .)
mv "$BIN.tmp" "$BIN"
echo "$hash" > "$BIN.hash"
