"""livekit-server's configs under deploy/ and in the package, checked by livekit-server itself.

livekit-server v1.13.5 (the project-local build) parses the local config, the
production config and the ``livekit:`` section of the Helm values in STRICT mode
(unknown keys are errors) through its ``ports`` command, which loads and validates a
config without serving; ``use_external_ip`` is satisfied by a STUN responder on
loopback. The production config is also started for real on free loopback ports
(without Redis, which is not installed here). Independently of the binary, every key
of those configs is a ``yaml:"..."`` tag of livekit-server's Go config structs
(module source from GOMODCACHE).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import socket
import struct
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from broadcaster.config import PROJECT_ROOT, Settings
from broadcaster.netutil import free_port
from tests.helpers.deploy import (
    HELM_ONLY_TURN_KEYS,
    HELM_VALUES,
    LIVEKIT_VERSION,
    LOCAL_CONFIG,
    PROD_CONFIG,
)

# --------------------------------------------------------------------------------------
# livekit-server configs


def helm_livekit_section() -> dict[str, Any]:
    """The Helm values' ``livekit:`` block as livekit-server sees it (chart-only keys off)."""
    section = json.loads(json.dumps(yaml.safe_load(HELM_VALUES.read_text())["livekit"]))
    for key in HELM_ONLY_TURN_KEYS:
        section.get("turn", {}).pop(key, None)
    return section


LIVEKIT_CONFIGS = {
    "local": lambda: yaml.safe_load(LOCAL_CONFIG.read_text()),
    "prod": lambda: yaml.safe_load(PROD_CONFIG.read_text()),
    "helm": helm_livekit_section,
}


def test_local_config_ice() -> None:
    cfg = yaml.safe_load(LOCAL_CONFIG.read_text())
    rtc = cfg["rtc"]
    assert rtc["use_external_ip"] is False
    assert rtc["enable_loopback_candidate"] is True
    assert rtc["node_ip"] == "127.0.0.1"
    assert rtc["stun_servers"] == []
    assert "keys" not in cfg and "key_file" not in cfg


@pytest.mark.parametrize("guard", [True, False])
def test_rendered_local_config_has_the_floor_guard_webhook(guard: bool, tmp_path: Path,
                                                           stun_server: str) -> None:
    """``broadcaster up``'s livekit.yaml: the configured ports, and (floor guard on) the
    web app's webhook signed with the API key; never the secret. livekit-server takes it."""
    from broadcaster.livekit_server import render_config

    settings = Settings.load(env={}, state_dir=str(tmp_path), web_host="0.0.0.0",
                             web_port=8123, livekit_port=7999, floor_guard=guard)
    text = render_config(settings, tmp_path / "livekit.yaml").read_text()
    cfg = yaml.safe_load(text)
    assert cfg["port"] == 7999 and settings.livekit_api_secret not in text
    if guard:
        assert cfg["webhook"] == {"api_key": settings.livekit_api_key,
                                  "urls": ["http://127.0.0.1:8123/api/livekit/webhook"]}
    else:
        assert "webhook" not in cfg
    _ports_output(cfg, stun_server)


@pytest.mark.parametrize("name", ["prod", "helm"])
def test_production_config_ice_turn_redis(name: str) -> None:
    cfg = LIVEKIT_CONFIGS[name]()
    rtc, turn, room = cfg["rtc"], cfg["turn"], cfg["room"]
    assert rtc["use_external_ip"] is True
    assert not rtc.get("enable_loopback_candidate", False)
    assert "node_ip" not in rtc, "use_external_ip discovers the node IP"
    assert rtc["tcp_port"] == 7881 and str(rtc["udp_port"]).startswith("7882")
    assert turn["enabled"] is True
    assert turn["domain"] and turn["tls_port"] == 5349 and turn["udp_port"] == 3478
    assert cfg["redis"]["address"], "Redis makes LiveKit multi-node"
    assert room["max_participants"] >= 1000 and room["empty_timeout"] > 0
    assert not cfg.get("keys"), "keys come from LIVEKIT_KEYS / a Secret, never the file"
    if name == "prod":
        assert turn["external_tls"] is True, "Caddy terminates TURN/TLS"
        assert cfg["port"] == 7880 and cfg["bind_addresses"] == ["127.0.0.1"]
    else:
        assert not turn.get("external_tls"), "in k8s LiveKit terminates TURN/TLS itself"


def livekit_binary() -> str:
    for path in (PROJECT_ROOT / ".tools" / "bin" / "livekit-server",
                 Path(shutil.which("livekit-server") or "/nonexistent")):
        if path.is_file() and os.access(path, os.X_OK):
            return str(path)
    pytest.skip("livekit-server is not installed (run deploy/install.sh)")


def _stun_reply(request: bytes, addr: tuple[str, int], ip: str) -> bytes | None:
    """A STUN Binding success response with XOR-MAPPED-ADDRESS = ip:port (RFC 5389)."""
    magic = 0x2112A442
    if len(request) < 20:
        return None
    kind, _length, cookie = struct.unpack("!HHI", request[:8])
    if kind != 0x0001 or cookie != magic:
        return None
    xport = addr[1] ^ (magic >> 16)
    xaddr = struct.unpack("!I", socket.inet_aton(ip))[0] ^ magic
    attr = struct.pack("!HHBBHI", 0x0020, 8, 0, 0x01, xport, xaddr)
    return struct.pack("!HHI", 0x0101, len(attr), magic) + request[8:20] + attr


@pytest.fixture(scope="module")
def stun_server() -> Iterator[str]:
    """A STUN responder on loopback, so use_external_ip works without the internet."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                data, addr = sock.recvfrom(2048)
            except TimeoutError:
                continue
            except OSError:
                return
            reply = _stun_reply(data, addr, "127.0.0.1")
            if reply:
                sock.sendto(reply, addr)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"127.0.0.1:{sock.getsockname()[1]}"
    stop.set()
    thread.join(timeout=5)
    sock.close()


def _clean_env() -> dict[str, str]:
    """This environment without anything livekit-server would read as config."""
    drop = ("LIVEKIT_", "REDIS_", "NODE_IP", "UDP_PORT")
    return {k: v for k, v in os.environ.items() if not k.startswith(drop)}


def _ports_output(config: dict[str, Any], stun: str) -> str:
    config = json.loads(json.dumps(config))
    if config.get("rtc", {}).get("use_external_ip"):
        config["rtc"]["stun_servers"] = [stun]
    proc = subprocess.run(
        [livekit_binary(), "--config-body", yaml.safe_dump(config), "ports"],
        capture_output=True, text=True, timeout=60, env=_clean_env(),
    )
    # livekit-server prints config errors on stdout and still exits 0
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0 and "TCP Ports" in out and "could not" not in out, out
    return out


@pytest.mark.parametrize("name", sorted(LIVEKIT_CONFIGS))
def test_livekit_server_accepts_config(name: str, stun_server: str) -> None:
    """Strict parse + RTC validation by livekit-server itself; the ports it reports."""
    cfg = LIVEKIT_CONFIGS[name]()
    out = _ports_output(cfg, stun_server)
    reported = {(int(re.search(r"\d+", line).group()), line.split(" - ", 1)[1].strip())
                for line in out.splitlines() if " - " in line}
    rtc = cfg["rtc"]
    expected = {(cfg.get("port", 7880), "HTTP service"), (rtc["tcp_port"], "ICE/TCP"),
                (int(str(rtc["udp_port"]).split("-")[0]), "ICE/UDP")}
    if cfg.get("turn", {}).get("enabled"):
        expected |= {(cfg["turn"]["tls_port"], "TURN/TLS"), (cfg["turn"]["udp_port"], "TURN/UDP")}
    assert reported == expected


def test_livekit_server_rejects_unknown_key(stun_server: str) -> None:
    """The check above would catch a typo: strict mode is really on."""
    cfg = yaml.safe_load(PROD_CONFIG.read_text())
    cfg["rtc"]["udp_prot"] = 7882
    with pytest.raises(AssertionError, match="udp_prot"):
        _ports_output(cfg, stun_server)


def test_production_config_starts(stun_server: str, tmp_path: Path) -> None:
    """livekit-server runs with the production config (free ports; no Redis here)."""
    cfg = yaml.safe_load(PROD_CONFIG.read_text())
    del cfg["redis"]  # no redis-server on this machine; with it LiveKit only routes via it
    cfg["port"] = free_port()
    cfg["rtc"].update(tcp_port=free_port(), udp_port=free_port(),
                      stun_servers=[stun_server], skip_external_ip_validation=True)
    cfg["turn"].update(tls_port=free_port(), udp_port=free_port())
    env = {**_clean_env(),
           "LIVEKIT_KEYS": f"deploytest: {secrets.token_urlsafe(32)}",
           # docker-compose.yml sets the TURN domain and the webhook's key this way
           "LIVEKIT_TURN_DOMAIN": "turn.deploy-test.example",
           "LIVEKIT_WEBHOOK_API_KEY": "deploytest"}
    log = tmp_path / "livekit.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([livekit_binary(), "--config-body", yaml.safe_dump(cfg)],
                                stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, f"livekit-server exited:\n{log.read_text()[-3000:]}"
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{cfg['port']}/", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, f"not ready:\n{log.read_text()[-3000:]}"
            time.sleep(0.2)
        text = log.read_text()
        assert '"turn.externalTLS":true' in text and "Starting TURN server" in text
        # livekit-server ignores a SIGTERM that lands in the first 100 ms after it
        # starts serving (Stop() finds it not yet "running"): let it settle first.
        time.sleep(0.5)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _gomodcache() -> Path | None:
    if os.environ.get("GOMODCACHE"):
        return Path(os.environ["GOMODCACHE"])
    if shutil.which("go"):
        out = subprocess.run(["go", "env", "GOMODCACHE"], capture_output=True, text=True,
                             timeout=30).stdout.strip()
        if out:
            return Path(out)
    return None


def livekit_yaml_tags() -> set[str]:
    """Every yaml tag of livekit-server's config structs, from the Go module source."""
    cache = _gomodcache()
    server = cache / "github.com/livekit" / f"livekit-server@{LIVEKIT_VERSION}" if cache else None
    if server is None or not (server / "pkg/config/config.go").is_file():
        pytest.skip(f"livekit-server {LIVEKIT_VERSION} module source is not in GOMODCACHE "
                    "(deploy/install.sh builds it with `go install`)")
    gomod = (server / "go.mod").read_text()
    files = list((server / "pkg/config").glob("*.go"))
    for module, subdirs in (("mediatransportutil", ["pkg/rtcconfig"]),
                            ("protocol", ["logger", "redis", "webhook"])):
        version = re.search(rf"github\.com/livekit/{module} (\S+)", gomod)
        assert version, f"{module} not in livekit-server's go.mod"
        root = cache / "github.com/livekit" / f"{module}@{version.group(1)}"
        if not root.is_dir():
            pytest.skip(f"{root} is not in GOMODCACHE")
        for sub in subdirs:
            files += (root / sub).glob("*.go")
    tags: set[str] = set()
    for f in files:
        if not f.name.endswith("_test.go"):
            tags |= set(re.findall(r'yaml:"([A-Za-z0-9_]+)', f.read_text()))
    return tags


def _keys(node: Any, path: str = "") -> Iterator[tuple[str, str]]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield f"{path}.{key}".lstrip("."), str(key)
            yield from _keys(value, f"{path}.{key}")
    elif isinstance(node, list):
        for item in node:
            yield from _keys(item, f"{path}[]")


@pytest.mark.parametrize("name", sorted(LIVEKIT_CONFIGS))
def test_config_keys_are_livekit_yaml_tags(name: str) -> None:
    tags = livekit_yaml_tags()
    unknown = [path for path, key in _keys(LIVEKIT_CONFIGS[name]()) if key not in tags]
    assert not unknown, f"not livekit-server {LIVEKIT_VERSION} config keys: {unknown}"
