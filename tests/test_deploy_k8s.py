"""The Kubernetes manifests and the Helm values, cross-checked (no cluster here).

apiVersion/kind/metadata.name, selectors vs template labels, Services/Ingresses vs
ports and names, ConfigMap/Secret/PVC references, settings and commands; the Helm
values against the keys of LiveKit's chart (livekit/livekit-helm,
livekit-server/values.yaml) and our manifests.
"""

from __future__ import annotations

import collections
import re
from typing import Any

import pytest
import yaml

from broadcaster.cli import build_parser
from broadcaster.config import ConfigError, Settings
from tests.helpers.deploy import (
    BROADCASTER_PARTS,
    HELM_CHART_KEYS,
    HELM_VALUES,
    K8S,
    LIVEKIT_VERSION,
    NON_SETTING_VARS,
    SETTING_VARS,
    filled_in,
    load_docs,
)

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
    env = {k: str(v) for k, v in env.items()}
    if any("change-me" in v for v in env.values()):  # the example as it is: refused
        with pytest.raises(ConfigError, match="placeholder"):
            Settings.load(env=env, generate_secrets=False)
    settings = Settings.load(env=filled_in(env), generate_secrets=False)
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


def test_helm_values_make_a_multi_node_cluster_the_shards_spread_over(
        manifests: list[dict[str, Any]]) -> None:
    """Several LiveKit pods, one per Kubernetes node, one Redis, a selector that spreads
    new rooms; the web app's shards match the pods (docs/scaling.md, issue 14)."""
    values = yaml.safe_load(HELM_VALUES.read_text())
    lk = values["livekit"]
    assert values["replicaCount"] >= 2 and not values["autoscaling"]["enabled"]
    anti = values["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert anti[0]["topologyKey"] == "kubernetes.io/hostname", "one SFU per node (host ports)"
    assert lk["node_selector"] == {"kind": "any", "sort_by": "rooms", "algorithm": "lowest"}
    (redis_dep,) = [d for n, d in by_kind(manifests, "Deployment").items() if n == "redis"]
    assert redis_dep["spec"]["replicas"] == 1, "one Redis is LiveKit's one room registry"
    config = by_kind(manifests, "ConfigMap")["broadcaster-config"]["data"]
    shards = int(config["BROADCASTER_AUDIENCE_SHARDS"])
    assert shards >= values["replicaCount"], "at least one audience shard per LiveKit pod"
    capacity = int(config["BROADCASTER_SHARD_CAPACITY"])
    assert 0 < capacity <= lk["room"]["max_participants"]
