"""The multi-node cluster files under deploy/, checked statically (no docker engine here).

docker-compose.cluster.yml (the first host's overlay: Redis with a password on the
private address) and docker-compose.node.yml (one more livekit-server node) are
interpolated with deploy/cluster.env.example as compose does, validated against the
Compose Specification schema, and cross-checked against docker-compose.yml,
livekit.prod.yaml and livekit-server's own flags (issue 14, deploy/).
"""

from __future__ import annotations

import json
import re
import subprocess
from typing import Any

import jsonschema
import pytest
import yaml

from tests.helpers.deploy import COMPOSE, DEPLOY, ENV_EXAMPLE, PROD_CONFIG, parse_env_file
from tests.test_deploy_compose import _interpolate_tree
from tests.test_deploy_livekit import livekit_binary

CLUSTER = DEPLOY / "docker-compose.cluster.yml"
NODE = DEPLOY / "docker-compose.node.yml"
CLUSTER_ENV = DEPLOY / "cluster.env.example"


def _load(path: Any, env: dict[str, str]) -> tuple[dict[str, Any], set[str]]:
    used: set[str] = set()
    return _interpolate_tree(yaml.safe_load(path.read_text()), env, used), used


def _schema_errors(doc: dict[str, Any]) -> list[str]:
    schema = json.loads((DEPLOY / "schema" / "compose-spec.json").read_text())
    checker = jsonschema.FormatChecker()

    @checker.checks("duration")
    def _duration(value: object) -> bool:
        return isinstance(value, str) and bool(
            re.fullmatch(r"([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+", value))

    v = jsonschema.Draft202012Validator(schema, format_checker=checker)
    return [f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in v.iter_errors(doc)]


@pytest.fixture(scope="module")
def cluster_env() -> dict[str, str]:
    return parse_env_file(CLUSTER_ENV)


@pytest.mark.parametrize("path", [CLUSTER, NODE], ids=lambda p: p.name)
def test_cluster_compose_files_are_valid_and_use_only_cluster_env(path: Any,
                                                                  cluster_env: dict) -> None:
    doc, used = _load(path, cluster_env)
    assert not _schema_errors(doc), _schema_errors(doc)
    assert used <= set(cluster_env), used - set(cluster_env)


def test_cluster_env_matches_the_first_host(cluster_env: dict[str, str]) -> None:
    main_env = parse_env_file(ENV_EXAMPLE)
    for key in ("LIVEKIT_API_KEY", "LIVEKIT_API_SECRET", "TURN_DOMAIN"):
        assert cluster_env[key] == main_env[key], key  # the same placeholders, same meaning
    assert cluster_env["REDIS_HOST"] == f"{cluster_env['REDIS_PRIVATE_IP']}:6379"
    assert cluster_env["REDIS_PASSWORD"].startswith("change-me")  # a placeholder only
    assert "REDIS_PASSWORD" not in main_env, "the broadcaster containers read .env whole"


def test_first_host_overlay_guards_redis(cluster_env: dict[str, str]) -> None:
    overlay, _ = _load(CLUSTER, cluster_env)
    main = yaml.safe_load(COMPOSE.read_text())
    assert set(overlay["services"]) <= set(main["services"]), "an overlay adds no service"
    redis = overlay["services"]["redis"]
    cmd = redis["command"]
    assert cmd[cmd.index("--requirepass") + 1] == cluster_env["REDIS_PASSWORD"]
    assert redis["environment"]["REDISCLI_AUTH"] == cluster_env["REDIS_PASSWORD"]
    published = [p.split(":")[0] for p in redis["ports"]]
    assert published == [cluster_env["REDIS_PRIVATE_IP"]], "only on the private address"
    assert not any(p.startswith(("0.0.0.0", ":")) for p in redis["ports"])
    lk = overlay["services"]["livekit"]["environment"]
    assert lk["REDIS_PASSWORD"] == cluster_env["REDIS_PASSWORD"]


def test_extra_node_is_the_same_livekit_on_the_shared_redis(cluster_env: dict[str, str]
                                                           ) -> None:
    node, _ = _load(NODE, cluster_env)
    main = yaml.safe_load(COMPOSE.read_text())["services"]["livekit"]
    assert set(node["services"]) == {"livekit"}
    lk = node["services"]["livekit"]
    assert lk["image"] == main["image"] and lk["command"] == main["command"]
    assert lk["volumes"] == main["volumes"] == ["./livekit.prod.yaml:/etc/livekit.yaml:ro"]
    assert lk["network_mode"] == "host"
    env = lk["environment"]
    assert env["LIVEKIT_KEYS"] == (f"{cluster_env['LIVEKIT_API_KEY']}: "
                                   f"{cluster_env['LIVEKIT_API_SECRET']}")
    assert env["REDIS_HOST"] == cluster_env["REDIS_HOST"]
    assert env["REDIS_PASSWORD"] == cluster_env["REDIS_PASSWORD"]
    prod = yaml.safe_load(PROD_CONFIG.read_text())
    assert prod["node_selector"] == {"kind": "any", "sort_by": "rooms", "algorithm": "lowest"}


def test_livekit_server_reads_the_redis_variables_the_files_set() -> None:
    """REDIS_HOST / REDIS_PASSWORD are livekit-server's own flags by environment (v1.13.5)."""
    out = subprocess.run([livekit_binary(), "--help"], capture_output=True, text=True,
                         timeout=30).stdout
    for var in ("REDIS_HOST", "REDIS_PASSWORD", "LIVEKIT_KEYS"):
        assert f"[${var}]" in out, var
