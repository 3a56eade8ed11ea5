#!/usr/bin/env bash
# Build the SVC relay (audience shards' layers, docs/scaling.md) into .tools/bin/svcrelay,
# once per source change (a hash of the Go sources, go.mod and go.sum beside the binary).
# Called by deploy/install.sh; the bot falls back to encoding once without it.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
BIN="$ROOT/.tools/bin/svcrelay"
hash="$(find "$HERE" -maxdepth 1 \( -name '*.go' ! -name '*_test.go' -o -name go.mod -o -name go.sum \) \
  | sort | xargs cat | sha256sum | cut -c1-16)"
if [ -x "$BIN" ] && [ "$(cat "$BIN.hash" 2>/dev/null)" = "$hash" ]; then
  printf '\033[1m[install]\033[0m svcrelay (shard layers relay) already built\n'
  exit 0
fi
command -v go >/dev/null || { echo "build.sh: Go is needed for the SVC relay (https://go.dev/dl)" >&2; exit 1; }
printf '\033[1m[install]\033[0m svcrelay: go build (server-sdk-go v2.19.0; about a minute when cold)\n'
mkdir -p "$ROOT/.tools/bin"
(cd "$HERE" && go build -trimpath -o "$BIN.tmp" .)
mv "$BIN.tmp" "$BIN"
echo "$hash" > "$BIN.hash"
