"""Deployment files read once per test session (shared by the deploy test modules)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.helpers.deploy import ENV_EXAMPLE, K8S, load_docs, parse_env_file


@pytest.fixture(scope="session")
def env_example() -> dict[str, str]:
    return parse_env_file(ENV_EXAMPLE)


@pytest.fixture(scope="session")
def secret_templates() -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in load_docs(K8S / "secret.example.yaml")}
