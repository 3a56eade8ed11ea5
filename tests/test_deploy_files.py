"""Every deployment file: its YAML parses, and nothing under deploy/ is a real-looking secret.

The YAML files are deploy/'s and the package's livekit.yaml template. The secret
scanner is tested too, on secrets made the way broadcaster makes them.
"""

from __future__ import annotations

import collections
import itertools
import math
import re
import secrets
import string
import subprocess
from pathlib import Path
from typing import Any

import pytest

from broadcaster.config import PROJECT_ROOT, ConfigError, Settings
from tests.helpers.deploy import (
    DEPLOY,
    load_docs,
    yaml_files,
)

# --------------------------------------------------------------------------------------
# every YAML file parses


@pytest.mark.parametrize("path", yaml_files(), ids=lambda p: str(p.relative_to(PROJECT_ROOT)))
def test_yaml_loads(path: Path) -> None:
    docs = load_docs(path)
    assert docs, f"{path} is empty"
    assert all(isinstance(d, dict) for d in docs), f"{path}: every document is a mapping"




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
