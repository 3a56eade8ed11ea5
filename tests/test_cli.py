"""The `broadcaster` command: tokens, doctor, and clear start-up failures."""

import os
import re
import socket
import subprocess
import sys

from broadcaster.config import Settings
from broadcaster.netutil import free_port
from broadcaster.roles import verify_token


def _run(args, tmp_path, **env):
    return subprocess.run(
        [sys.executable, "-m", "broadcaster", *args], capture_output=True, text=True, timeout=60,
        env={**os.environ, "BROADCASTER_STATE_DIR": str(tmp_path), **env},
    )


def test_token_prints_a_valid_viewer_token(tmp_path):
    r = _run(["token", "--role", "viewer", "--room", "r1", "--identity", "bob"], tmp_path)
    assert r.returncode == 0, r.stderr
    settings = Settings.load(env={"BROADCASTER_STATE_DIR": str(tmp_path)})
    claims = verify_token(settings, r.stdout.strip())
    assert claims.identity == "bob" and claims.video.room == "r1" and not claims.video.can_publish


def test_token_names_the_bad_value(tmp_path):
    r = _run(["token", "--role", "wizard", "--room", "r1", "--identity", "bob"], tmp_path)
    assert r.returncode == 2 and "'wizard'" in r.stderr and "viewer" in r.stderr
    r = _run(["token", "--role", "viewer", "--room", "r1", "--identity", "b b"], tmp_path)
    assert r.returncode == 2 and "identity 'b b'" in r.stderr
    r = _run(["token", "--role", "viewer", "--room", "r1", "--identity", "bob"], tmp_path,
             BROADCASTER_TOKEN_TTL_SECONDS="ten")
    assert r.returncode == 2 and "BROADCASTER_TOKEN_TTL_SECONDS='ten'" in r.stderr


def _doctor(tmp_path, **env):
    """``broadcaster doctor`` on free ports (others may run a stack on the default ones)."""
    return _run(["doctor", "--web-port", str(free_port()), "--livekit-port", str(free_port()),
                 "--avatar-port", str(free_port())], tmp_path,
                BROADCASTER_LIVEKIT_RTC_TCP_PORT=str(free_port()),
                BROADCASTER_LIVEKIT_RTC_UDP_PORT=str(free_port()), **env)


def test_doctor_passes_on_a_machine_set_up_by_install(tmp_path):
    r = _doctor(tmp_path)
    assert "livekit-server binary" in r.stdout and "Whisper tiny.en" in r.stdout
    passed = re.search(r"(\d+)/(\d+) checks passed", r.stdout)
    assert passed and passed[1] == passed[2], r.stdout
    assert r.returncode == 0, r.stdout


def test_doctor_says_when_the_embedding_model_is_missing_but_still_passes(tmp_path):
    r = _doctor(tmp_path, BROADCASTER_MODELS_DIR=str(tmp_path / "no-models"))
    line = next(x for x in r.stdout.splitlines() if "embedding model" in x)
    assert "matches words only" in line, r.stdout
    assert "deploy/models.sh" in r.stdout
    assert r.returncode == 0, r.stdout  # the responder still answers: not required


def test_doctor_fails_naming_what_is_missing_and_the_fix(tmp_path):
    r = _doctor(tmp_path, BROADCASTER_LIVEKIT_SERVER_BIN=str(tmp_path / "nope"))
    assert r.returncode == 1, r.stdout
    line = next(x for x in r.stdout.splitlines() if "livekit-server binary" in x)
    assert "FAIL" in line.upper() or "missing" in line.lower() or "not found" in line.lower()
    assert "install.sh" in r.stdout


def test_up_says_when_livekit_server_is_missing(tmp_path):
    r = _run(["up"], tmp_path, BROADCASTER_LIVEKIT_SERVER_BIN=str(tmp_path / "nope"))
    assert r.returncode == 1 and "livekit-server not found" in r.stderr
    assert "deploy/install.sh" in r.stderr


def test_up_says_which_port_is_taken(tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        r = _run(["up", "--web-port", str(port), "--livekit-port", str(free_port()),
                  "--avatar-port", str(free_port())], tmp_path)
    assert r.returncode == 1 and f"web app port {port}/tcp is already in use" in r.stderr
