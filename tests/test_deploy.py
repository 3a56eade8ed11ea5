"""The deployment files under deploy/: loaded, cross-checked and validated, never deployed.

No docker engine or Kubernetes cluster exists here, so nothing is started
except livekit-server itself. What is checked, and how:

- every YAML file under deploy/ parses;
- livekit-server v1.13.5 (the project-local build) parses the local config, the
  production config and the ``livekit:`` section of the Helm values in STRICT mode
  (unknown keys are errors) through its ``ports`` command, which loads and
  validates a config without serving; ``use_external_ip`` is satisfied by a
  STUN responder on loopback. The production config is also started for real on
  free loopback ports (without Redis, which is not installed here);
- independently of the binary, every key of those configs is a ``yaml:"..."``
  tag of livekit-server's Go config structs (module source from GOMODCACHE);
- docker-compose.yml is interpolated with deploy/.env.example the way compose
  does and validated against the Compose Specification JSON schema vendored from
  compose-go (deploy/schema/), then cross-checked: references, bind mounts, build
  files, commands (parsed by our own CLI), settings (loaded by our Settings);
- Kubernetes manifests: apiVersion/kind/metadata.name, selectors vs template
  labels, Services/Ingresses vs ports and names, ConfigMap/Secret/PVC references,
  settings and commands as above; the Helm values against the keys of LiveKit's
  chart (livekit/livekit-helm, livekit-server/values.yaml) and our manifests;
- no real-looking secret anywhere under deploy/ (the scanner is tested too).
"""

from __future__ import annotations

import collections
import dataclasses
import itertools
import json
import math
import os
import re
import secrets
import shutil
import socket
import string
import struct
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from broadcaster.cli import build_parser
from broadcaster.config import DATA_DIR, PROJECT_ROOT, ConfigError, Settings, env_name

DEPLOY = PROJECT_ROOT / "deploy"
K8S = DEPLOY / "k8s"
LIVEKIT_VERSION = "v1.13.5"
LOCAL_CONFIG = DATA_DIR / "livekit.local.yaml"
PROD_CONFIG = DEPLOY / "livekit.prod.yaml"
HELM_VALUES = K8S / "livekit-values.yaml"
COMPOSE = DEPLOY / "docker-compose.yml"
ENV_EXAMPLE = DEPLOY / ".env.example"

#: Settings fields as environment variables (BROADCASTER_<FIELD>, LIVEKIT_URL, ...)
SETTING_VARS = {env_name(f) for f in dataclasses.fields(Settings)}
#: BROADCASTER_* variables the deployment files use that are not Settings fields
NON_SETTING_VARS = {"BROADCASTER_STAGE_ROOM", "BROADCASTER_IMAGE"}
BROADCASTER_PARTS = ("web", "avatar", "bot")

#: Top-level keys of LiveKit's chart (livekit/livekit-helm, livekit-server/values.yaml).
HELM_CHART_KEYS = {
    "replicaCount", "image", "imagePullSecrets", "terminationGracePeriodSeconds", "livekit",
    "storeKeysInSecret", "nameOverride", "fullnameOverride", "ingress", "loadBalancer",
    "turnLoadbalancer", "autoscaling", "nodeSelector", "resources", "serviceAccount",
    "podHostNetwork", "podAnnotations", "podSecurityContext", "securityContext",
    "tolerations", "affinity", "deploymentStrategy", "deploymentAnnotations", "gcp",
    "serviceMonitor",
}
#: Keys under livekit.turn that the chart's templates read but livekit-server does not
#: (the chart runs livekit-server with --disable-strict-config for them).
HELM_ONLY_TURN_KEYS = {"secretName", "loadBalancerAnnotations", "serviceType"}


def yaml_files() -> list[Path]:
    return sorted(p for p in DEPLOY.rglob("*") if p.suffix in (".yaml", ".yml"))


def load_docs(path: Path) -> list[Any]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


def parse_env_file(path: Path) -> dict[str, str]:
    """KEY=value lines, as compose reads an env file (comments on their own lines)."""
    env: dict[str, str] = {}
    for n, line in enumerate(path.read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        assert sep and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key), f"{path.name}:{n}: {line!r}"
        assert " #" not in value, f"{path.name}:{n}: put comments on their own line"
        env[key] = value
    return env


# --------------------------------------------------------------------------------------
# every YAML file parses


@pytest.mark.parametrize("path", yaml_files(), ids=lambda p: str(p.relative_to(DEPLOY)))
def test_yaml_loads(path: Path) -> None:
    docs = load_docs(path)
    assert docs, f"{path} is empty"
    assert all(isinstance(d, dict) for d in docs), f"{path}: every document is a mapping"


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


def _free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_production_config_starts(stun_server: str, tmp_path: Path) -> None:
    """livekit-server runs with the production config (free ports; no Redis here)."""
    cfg = yaml.safe_load(PROD_CONFIG.read_text())
    del cfg["redis"]  # no redis-server on this machine; with it LiveKit only routes via it
    cfg["port"] = _free_port()
    cfg["rtc"].update(tcp_port=_free_port(), udp_port=_free_port(socket.SOCK_DGRAM),
                      stun_servers=[stun_server], skip_external_ip_validation=True)
    cfg["turn"].update(tls_port=_free_port(), udp_port=_free_port(socket.SOCK_DGRAM))
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


# --------------------------------------------------------------------------------------
# docker compose

_VAR = re.compile(
    r"\$(?:(?P<escaped>\$)"
    r"|\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}"
    r"|(?P<named>[A-Za-z_][A-Za-z0-9_]*))"
)


def interpolate(value: str, env: dict[str, str], used: set[str]) -> str:
    """Compose's variable substitution (${X}, ${X:-d}, ${X-d}, ${X:?e}, ${X:+a}, $$)."""

    def sub(m: re.Match[str]) -> str:
        if m["escaped"]:
            return "$"
        name = m["braced"] or m["named"]
        used.add(name)
        op, arg, val = m["op"], m["arg"], env.get(name)
        if op is None:
            assert val is not None, f"${{{name}}} is not set in .env.example and has no default"
            return val
        if op in (":?", "?"):
            assert val is not None and (op == "?" or val), f"{name} is required: {arg}"
            return val
        if op == ":-":
            return val or arg
        if op == "-":
            return arg if val is None else val
        if op == ":+":
            return arg if val else ""
        return "" if val is None else arg  # "+"

    return _VAR.sub(sub, value)


def _interpolate_tree(node: Any, env: dict[str, str], used: set[str]) -> Any:
    if isinstance(node, dict):
        return {k: _interpolate_tree(v, env, used) for k, v in node.items()}
    if isinstance(node, list):
        return [_interpolate_tree(v, env, used) for v in node]
    if isinstance(node, str):
        return interpolate(node, env, used)
    return node


@pytest.fixture(scope="module")
def env_example() -> dict[str, str]:
    return parse_env_file(ENV_EXAMPLE)


@pytest.fixture(scope="module")
def compose(env_example: dict[str, str]) -> dict[str, Any]:
    """docker-compose.yml as compose sees it: merge keys resolved, variables substituted."""
    used: set[str] = set()
    data = _interpolate_tree(yaml.safe_load(COMPOSE.read_text()), env_example, used)
    data["x-used-variables"] = sorted(used)
    return data


def test_compose_validates_against_compose_spec_schema(compose: dict[str, Any]) -> None:
    schema = json.loads((DEPLOY / "schema" / "compose-spec.json").read_text())
    checker = jsonschema.FormatChecker()

    @checker.checks("duration")
    def _duration(value: object) -> bool:  # compose-go registers Go's time.ParseDuration
        return isinstance(value, str) and bool(
            re.fullmatch(r"([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+", value))

    validator = jsonschema.Draft202012Validator(schema, format_checker=checker)
    errors = [f"{'.'.join(map(str, e.absolute_path))}: {e.message}"
              for e in validator.iter_errors(compose)]
    assert not errors, "\n".join(errors)


def test_compose_variables_are_in_env_example(compose: dict[str, Any],
                                              env_example: dict[str, str]) -> None:
    # (interpolation already failed on a variable without a value or default)
    assert set(compose["x-used-variables"]) - {"BROADCASTER_IMAGE"} <= set(env_example)


def test_compose_services(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) == {"caddy", "livekit", "redis", *BROADCASTER_PARTS}
    assert services["livekit"]["image"] == f"livekit/livekit-server:{LIVEKIT_VERSION}"
    for name, svc in services.items():
        assert svc.get("image") or svc.get("build"), name
        assert svc.get("restart") in ("unless-stopped", "always"), f"{name}: restart policy"
        health = svc.get("healthcheck", {})
        if name == "bot":
            assert health.get("disable") is True  # no port to probe; restart policy instead
        else:
            assert health.get("test"), f"{name}: healthcheck"
        if "build" in svc:
            context = (DEPLOY / svc["build"]["context"]).resolve()
            assert (context / svc["build"].get("dockerfile", "Dockerfile")).is_file(), name
        for dep in svc.get("depends_on", {}):
            assert dep in services, f"{name} depends on unknown {dep}"
        for net in svc.get("networks", []):
            assert net in compose.get("networks", {}), f"{name}: network {net} not declared"
        if svc.get("network_mode") == "host":
            assert "ports" not in svc and "networks" not in svc, name
        for port in svc.get("ports", []):
            # only the host-network services (caddy, livekit) face the internet
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} publicly"
        for volume in svc.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith((".", "/")):
                assert (DEPLOY / source).exists(), f"{name}: bind source {source} missing"
            else:
                assert source in compose.get("volumes", {}), f"{name}: volume {source}"
        for env_file in svc.get("env_file", []):
            assert env_file == ".env" and ENV_EXAMPLE.is_file()
    # the host-network services are the public edge
    assert services["caddy"]["network_mode"] == services["livekit"]["network_mode"] == "host"


def _container_env(svc: dict[str, Any], env_file: dict[str, str]) -> dict[str, str]:
    env = dict(env_file) if svc.get("env_file") else {}
    env.update({k: str(v) for k, v in (svc.get("environment") or {}).items()})
    return env


@pytest.mark.parametrize("part", BROADCASTER_PARTS)
def test_compose_broadcaster_service(part: str, compose: dict[str, Any],
                                     env_example: dict[str, str]) -> None:
    """Its command parses with our CLI, and its environment loads into our Settings."""
    svc = compose["services"][part]
    args = build_parser().parse_args(svc["command"])
    assert (args.command, args.part) == ("serve", part)
    if part == "bot":
        assert args.room
    env = _container_env(svc, env_example)
    unknown = {k for k in env if k.startswith("BROADCASTER_")} - SETTING_VARS - NON_SETTING_VARS
    assert not unknown, f"not settings (typo?): {sorted(unknown)}"
    settings = Settings.load(env=env, generate_secrets=False)
    assert settings.livekit_url.startswith("wss://") and settings.livekit_api_secret
    assert settings.public_url.startswith("https://")
    avatar = compose["services"]["avatar"]
    avatar_port = avatar["environment"]["BROADCASTER_AVATAR_PORT"]
    assert str(avatar_port) in avatar["expose"]
    if part == "avatar":
        assert settings.avatar_host == "0.0.0.0" and settings.avatar_port == int(avatar_port)
    else:
        # web and bot reach the avatar service by its compose service name
        assert settings.effective_liveavatar_api_url == f"http://avatar:{avatar_port}/v1"
        assert not settings.use_heygen
    if part == "web":
        published = svc["ports"][0].split(":")
        assert published[-1] == str(settings.web_port) and settings.web_host == "0.0.0.0"
        probe = " ".join(svc["healthcheck"]["test"])
        assert f":{settings.web_port}/healthz" in probe


def test_compose_livekit_keys(compose: dict[str, Any], env_example: dict[str, str]) -> None:
    env = compose["services"]["livekit"]["environment"]
    keys = yaml.safe_load(env["LIVEKIT_KEYS"])
    assert keys == {env_example["LIVEKIT_API_KEY"]: env_example["LIVEKIT_API_SECRET"]}
    assert len(env_example["LIVEKIT_API_SECRET"]) >= 32  # livekit-server refuses shorter
    mounts = compose["services"]["livekit"]["volumes"]
    assert "./livekit.prod.yaml:/etc/livekit.yaml:ro" in mounts
    assert compose["services"]["livekit"]["command"] == ["--config", "/etc/livekit.yaml"]


def test_caddyfile_matches_compose_and_livekit(compose: dict[str, Any]) -> None:
    caddyfile = (DEPLOY / "Caddyfile").read_text()
    caddy = compose["services"]["caddy"]
    assert "./Caddyfile:/etc/caddy/Caddyfile:ro" in caddy["volumes"]
    assert caddy["build"]["dockerfile"] == "Dockerfile.caddy"
    assert "caddy-l4" in (DEPLOY / "Dockerfile.caddy").read_text()
    # every {$VAR} the Caddyfile reads is in caddy's environment
    assert set(re.findall(r"\{\$([A-Z_]+)\}", caddyfile)) <= set(caddy["environment"])
    prod = yaml.safe_load(PROD_CONFIG.read_text())
    web_port = compose["services"]["web"]["environment"]["BROADCASTER_WEB_PORT"]
    proxies = re.findall(r"reverse_proxy\s+(\S+)", caddyfile)
    assert proxies == [f"127.0.0.1:{web_port}", f"127.0.0.1:{prod['port']}"]
    assert prod["bind_addresses"] == ["127.0.0.1"]
    # TURN/TLS: SNI of the TURN domain -> TLS ended in Caddy -> plain TCP to LiveKit
    turn_route = re.search(r"@turn tls sni \{\$TURN_DOMAIN\}\s*route @turn \{(.*?)\}",
                           caddyfile, re.S)
    assert turn_route, "layer4 route for the TURN domain"
    assert re.search(r"^\s*tls\s*$", turn_route.group(1), re.M)
    assert f"proxy tcp/127.0.0.1:{prod['turn']['tls_port']}" in turn_route.group(1)
    assert prod["turn"]["external_tls"] is True
    assert "{$TURN_DOMAIN} {" in caddyfile, "a site block makes Caddy manage the TURN cert"


def test_dockerfile() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    args = dict(re.findall(r"^ARG (\w+)=(\S+)", text, re.M))
    bases = [re.sub(r"\$\{(\w+)\}", lambda m: args[m[1]], b)
             for b in re.findall(r"^FROM (\S+)", text, re.M)]
    assert bases[-1] == "python:3.11-slim"
    users = re.findall(r"^USER (\S+)", text, re.M)
    assert users and users[-1].split(":")[0] not in ("root", "0")
    entrypoint = json.loads(re.findall(r"^ENTRYPOINT (.+)$", text, re.M)[-1])
    cmd = json.loads(re.findall(r"^CMD (.+)$", text, re.M)[-1])
    argv = entrypoint + cmd
    assert argv[argv.index("broadcaster") + 1:] == ["serve", "web"]
    build_parser().parse_args(cmd)
    installs = re.findall(r"^RUN pip install (.+)$", text, re.M)
    assert any("/src" in i for i in installs), "installs the package"
    assert not any("-e " in i for i in installs), "a plain install: the package has its data"
    assert any("--require-hashes -r /src/requirements/run.txt" in i for i in installs), \
        "dependencies come from the lock file"
    for sources in re.findall(r"^COPY (?!--from)(.+) \S+$", text, re.M):
        for source in sources.split():
            assert (PROJECT_ROOT / source).exists(), f"COPY {source}: not in the build context"
    ignored = (DEPLOY / "Dockerfile.dockerignore").read_text().split()
    assert {".venv", ".tools", ".state", ".git"} <= set(ignored)


# --------------------------------------------------------------------------------------
# Kubernetes


@pytest.fixture(scope="module")
def kustomization() -> dict[str, Any]:
    return yaml.safe_load((K8S / "kustomization.yaml").read_text())


@pytest.fixture(scope="module")
def manifests(kustomization: dict[str, Any]) -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for name in kustomization["resources"]:
        docs += load_docs(K8S / name)
    return docs


@pytest.fixture(scope="module")
def secret_templates() -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in load_docs(K8S / "secret.example.yaml")}


def by_kind(docs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def test_kustomization_lists_every_manifest(kustomization: dict[str, Any]) -> None:
    on_disk = {p.name for p in K8S.glob("*.yaml")}
    not_manifests = {"kustomization.yaml", "livekit-values.yaml", "secret.example.yaml"}
    assert set(kustomization["resources"]) == on_disk - not_manifests
    assert kustomization["namespace"] == "broadcaster"


def test_k8s_objects_are_well_formed(manifests: list[dict[str, Any]],
                                     secret_templates: dict[str, Any]) -> None:
    dns1123 = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
    for doc in [*manifests, *secret_templates.values()]:
        assert doc.get("apiVersion") and doc.get("kind"), doc
        name = doc.get("metadata", {}).get("name", "")
        assert dns1123.fullmatch(name) and len(name) <= 63, f"{doc['kind']} name {name!r}"
    kinds = collections.Counter(d["kind"] for d in manifests)
    assert kinds["Deployment"] == 4 and kinds["Ingress"] == 2 and kinds["ConfigMap"] == 1


def _pod_ports(deployment: dict[str, Any]) -> dict[str, int]:
    return {p["name"]: p["containerPort"]
            for c in deployment["spec"]["template"]["spec"]["containers"]
            for p in c.get("ports", []) if "name" in p}


def test_k8s_deployments(manifests: list[dict[str, Any]]) -> None:
    for name, dep in by_kind(manifests, "Deployment").items():
        selector = dep["spec"]["selector"]["matchLabels"]
        labels = dep["spec"]["template"]["metadata"]["labels"]
        assert selector and selector.items() <= labels.items(), f"{name}: selector vs labels"
        pod = dep["spec"]["template"]["spec"]
        ports = _pod_ports(dep)
        for container in pod["containers"]:
            assert container["name"] and container["image"], name
            for probe in ("readinessProbe", "livenessProbe"):
                port = container.get(probe, {}).get("httpGet", {}).get("port")
                assert port is None or port in ports or port in ports.values(), name
        if name != "redis":
            assert pod["securityContext"]["runAsNonRoot"] is True, name
            assert pod["securityContext"]["runAsUser"] == 10001, name


def test_k8s_services_and_ingresses(manifests: list[dict[str, Any]]) -> None:
    deployments = by_kind(manifests, "Deployment")
    services = by_kind(manifests, "Service")
    values = yaml.safe_load(HELM_VALUES.read_text())
    for name, svc in services.items():
        selector = svc["spec"]["selector"]
        pods = [d for d in deployments.values()
                if selector.items() <= d["spec"]["template"]["metadata"]["labels"].items()]
        assert len(pods) == 1, f"Service {name} selects {len(pods)} Deployments"
        for port in svc["spec"]["ports"]:
            target = port.get("targetPort", port["port"])
            assert target in _pod_ports(pods[0]) or target in _pod_ports(pods[0]).values()
    for name, ing in by_kind(manifests, "Ingress").items():
        hosts = {h for t in ing["spec"]["tls"] for h in t["hosts"]}
        for rule in ing["spec"]["rules"]:
            assert rule["host"] in hosts, f"Ingress {name}: no TLS for {rule['host']}"
            for path in rule["http"]["paths"]:
                backend = path["backend"]["service"]
                if backend["name"] in services:
                    names = {p["name"] for p in services[backend["name"]]["spec"]["ports"]}
                    assert backend["port"].get("name") in names, name
                else:  # the Service LiveKit's chart creates
                    assert backend["name"] == values["fullnameOverride"], name
                    assert backend["port"]["number"] == values["loadBalancer"]["servicePort"]


def test_k8s_references(manifests: list[dict[str, Any]],
                        secret_templates: dict[str, Any]) -> None:
    configmaps = by_kind(manifests, "ConfigMap")
    claims = by_kind(manifests, "PersistentVolumeClaim")
    for name, dep in by_kind(manifests, "Deployment").items():
        pod = dep["spec"]["template"]["spec"]
        for container in pod["containers"]:
            for source in container.get("envFrom", []):
                if "configMapRef" in source:
                    assert source["configMapRef"]["name"] in configmaps, name
                if "secretRef" in source:
                    assert source["secretRef"]["name"] in secret_templates, name
            mounts = {m["name"] for m in container.get("volumeMounts", [])}
            assert mounts <= {v["name"] for v in pod.get("volumes", [])}, name
        for volume in pod.get("volumes", []):
            if "persistentVolumeClaim" in volume:
                assert volume["persistentVolumeClaim"]["claimName"] in claims, name


@pytest.mark.parametrize("part", BROADCASTER_PARTS)
def test_k8s_broadcaster_deployment(part: str, manifests: list[dict[str, Any]],
                                    secret_templates: dict[str, Any]) -> None:
    """Args parse with our CLI; ConfigMap + Secret + env load into our Settings."""
    dep = by_kind(manifests, "Deployment")[f"broadcaster-{part}"]
    (container,) = dep["spec"]["template"]["spec"]["containers"]
    env: dict[str, str] = {}
    for source in container["envFrom"]:
        if "configMapRef" in source:
            env.update(by_kind(manifests, "ConfigMap")[source["configMapRef"]["name"]]["data"])
        else:
            env.update(secret_templates[source["secretRef"]["name"]]["stringData"])
    env.update({e["name"]: e["value"] for e in container.get("env", [])})
    unknown = {k for k in env if k.startswith("BROADCASTER_")} - SETTING_VARS - NON_SETTING_VARS
    assert not unknown, f"not settings (typo?): {sorted(unknown)}"
    args = [re.sub(r"\$\((\w+)\)", lambda m: env[m[1]], a) for a in container["args"]]
    parsed = build_parser().parse_args(args)
    assert (parsed.command, parsed.part) == ("serve", part)
    settings = Settings.load(env={k: str(v) for k, v in env.items()}, generate_secrets=False)
    assert settings.livekit_url.startswith("wss://") and settings.livekit_api_secret
    avatar_svc = by_kind(manifests, "Service")["broadcaster-avatar"]
    avatar_port = avatar_svc["spec"]["ports"][0]["port"]
    if part == "avatar":
        assert settings.avatar_host == "0.0.0.0" and settings.avatar_port == avatar_port
    else:
        assert settings.effective_liveavatar_api_url == (
            f"http://broadcaster-avatar:{avatar_port}/v1")
    if part == "web":
        assert _pod_ports(dep)["http"] == settings.web_port and settings.web_host == "0.0.0.0"


def test_helm_values(manifests: list[dict[str, Any]],
                     secret_templates: dict[str, Any]) -> None:
    values = yaml.safe_load(HELM_VALUES.read_text())
    assert set(values) <= HELM_CHART_KEYS, f"not keys of the chart: {set(values) - HELM_CHART_KEYS}"
    assert values["image"]["tag"] == LIVEKIT_VERSION
    assert values["podHostNetwork"] is True, "WebRTC media straight to the node"
    assert values["loadBalancer"]["type"] == "disable"  # our Ingress does signalling
    lk = values["livekit"]
    # keys: in a Secret mounted as key_file, whose data key must equal key_file
    assert not lk.get("keys") and not values["storeKeysInSecret"].get("keys")
    assert values["storeKeysInSecret"]["enabled"] is True
    keys_secret = secret_templates[values["storeKeysInSecret"]["existingSecret"]]
    assert list(keys_secret["stringData"]) == [lk["key_file"]] and "/" not in lk["key_file"]
    pairs = yaml.safe_load(keys_secret["stringData"][lk["key_file"]])
    app = secret_templates["broadcaster-secrets"]["stringData"]
    assert pairs == {app["LIVEKIT_API_KEY"]: app["LIVEKIT_API_SECRET"]}
    assert len(app["LIVEKIT_API_SECRET"]) >= 32
    # the chart's deployment template turns these into host ports
    assert isinstance(lk["rtc"]["udp_port"], int) and isinstance(lk["rtc"]["tcp_port"], int)
    # TURN certificate: cert-manager writes the Secret the chart mounts
    (cert,) = by_kind(manifests, "Certificate").values()
    assert cert["spec"]["secretName"] == lk["turn"]["secretName"]
    assert cert["spec"]["dnsNames"] == [lk["turn"]["domain"]]
    # Redis: the Service in redis.yaml, by its cluster DNS name
    host, port = lk["redis"]["address"].rsplit(":", 1)
    service, namespace = host.split(".")[:2]
    redis = by_kind(manifests, "Service")[service]
    assert namespace == "broadcaster" and int(port) == redis["spec"]["ports"][0]["port"]
    # wss:// signalling: the URL the broadcaster pods use is the LiveKit Ingress host
    config = by_kind(manifests, "ConfigMap")["broadcaster-config"]["data"]
    ingress_hosts = {r["host"] for r in by_kind(manifests, "Ingress")["livekit"]["spec"]["rules"]}
    assert config["LIVEKIT_URL"].removeprefix("wss://") in ingress_hosts


# --------------------------------------------------------------------------------------
# no real secrets in deploy/

SECRET_PATTERNS = {
    "private key": re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
    "AWS access key": re.compile(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b"),
    "OpenAI-style key": re.compile(r"\bsk-[A-Za-z0-9_-]{20,}"),
    "GitHub token": re.compile(r"\bgh[pousr]_[A-Za-z0-9]{30,}"),
    "Slack token": re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}"),
    "JWT": re.compile(r"\beyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\."),
    "LiveKit API key": re.compile(r"\bAPI[A-Za-z0-9]{12}\b"),
}
_TOKEN = re.compile(r"[A-Za-z0-9+/_-]{20,}={0,2}")
_HEX = re.compile(r"\b[0-9a-fA-F]{32,}\b")


def _entropy(text: str) -> float:
    counts = collections.Counter(text)
    return -sum(n / len(text) * math.log2(n / len(text)) for n in counts.values())


def _random_looking(token: str) -> bool:
    """Mixed case with digits and high entropy, or, without digits (a random token lacks
    them 1 time in ~1400), mixed case that switches as often as chance: words, paths
    and camelCase names switch rarely."""
    lower, upper = any(c.islower() for c in token), any(c.isupper() for c in token)
    if not (lower and upper) or _entropy(token) < 3.8:
        return False
    if any(c.isdigit() for c in token):
        return True
    switches = sum(a.isupper() != b.isupper() for a, b in itertools.pairwise(token)
                   if a.isalpha() and b.isalpha())
    return switches >= 0.3 * len(token)


def find_secrets(text: str) -> list[str]:
    """Things that look like real credentials (placeholders read like 'change-me-...')."""
    found = [f"{kind}: {m.group()}" for kind, rx in SECRET_PATTERNS.items()
             for m in rx.finditer(text)]
    for line in text.splitlines():
        for token in _TOKEN.findall(line):
            if _random_looking(token):
                found.append(f"high-entropy string: {token}")
        if "sha256" not in line.lower():  # digests are not secrets
            found += [f"hex secret: {h}" for h in _HEX.findall(line)
                      if any(c.isdigit() for c in h) and any(c.isalpha() for c in h)]
    return found


def test_secret_scanner_catches_real_looking_secrets() -> None:
    alnum = string.ascii_letters + string.digits
    samples = [
        f"LIVEKIT_API_SECRET={secrets.token_urlsafe(32)}",
        f"BROADCASTER_HOST_KEY={secrets.token_hex(24)}",
        f"LIVEKIT_API_KEY=API{''.join(secrets.choice(alnum) for _ in range(12))}",
        "key: |\n  -----BEGIN RSA PRIVATE KEY-----",
        f"token: {secrets.token_urlsafe(32)}",  # 43 chars: entropy ~5 bits, never near 3.8
        # a random token may lack digits (1 in ~1400 for 43 characters): still a secret
        "token: xQbTmRkZpWvLnHgYcFdJsAeUoIrEtBwNyMqKzVl-CxGh",
    ]
    for sample in samples:
        assert find_secrets(sample), sample
    assert not find_secrets("LIVEKIT_API_SECRET=change-me-to-a-random-secret-of-at-least-32")


def test_no_real_secrets_in_deploy_files() -> None:
    leaks = {}
    for path in sorted(p for p in DEPLOY.rglob("*") if p.is_file()):
        try:
            text = path.read_text()
        except UnicodeDecodeError:
            continue
        found = find_secrets(text)
        if found:
            leaks[str(path.relative_to(DEPLOY))] = found
    assert not leaks, leaks


def test_secret_values_are_placeholders(env_example: dict[str, str],
                                        secret_templates: dict[str, Any]) -> None:
    secretish = re.compile(r"SECRET|KEY|PASSWORD|TOKEN")
    values = [(k, v) for k, v in env_example.items() if secretish.search(k)]
    for secret in secret_templates.values():
        values += list(secret["stringData"].items())
    assert values
    for key, value in values:
        assert value == "" or "change-me" in value, f"{key} must be a placeholder"
    assert not (DEPLOY / ".env").exists() or ".env" not in subprocess.run(
        ["git", "ls-files", "deploy/.env"], cwd=PROJECT_ROOT, capture_output=True, text=True,
    ).stdout, "deploy/.env holds real secrets: never commit it"


def test_settings_reject_missing_secret_in_production() -> None:
    """Why .env.example has a LIVEKIT_API_SECRET line: with LIVEKIT_URL it is required."""
    with pytest.raises(ConfigError, match="LIVEKIT_API_SECRET"):
        Settings.load(env={"LIVEKIT_URL": "wss://livekit.example.com"}, generate_secrets=False)
