"""The deployment files under deploy/ and how the deploy tests read them (no tests here)."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

import yaml

from broadcaster.config import DATA_DIR, PROJECT_ROOT, Settings, env_name

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
    """Every YAML file of the deployment: deploy/ and the package's livekit.yaml template."""
    return sorted(p for d in (DEPLOY, DATA_DIR) for p in d.rglob("*")
                  if p.suffix in (".yaml", ".yml"))


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


def filled_in(env: dict[str, str]) -> dict[str, str]:
    """``env`` as an operator fills it in: every ``change-me`` placeholder a random value.

    Settings refuse the placeholders themselves (a public secret is no secret).
    """
    import secrets

    return {k: secrets.token_hex(24) if "change-me" in v else v for k, v in env.items()}
