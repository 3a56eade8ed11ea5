"""Running a local livekit-server: find the binary, render its config, start it."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import yaml

from broadcaster.config import PROJECT_ROOT, Settings
from broadcaster.netutil import wait_http_ok


class MissingBinary(RuntimeError):
    """livekit-server is not installed; the message says how to get it."""


def find_binary(settings: Settings) -> str:
    """Return the livekit-server to run: configured, the project's build, or on PATH."""
    candidates = [settings.livekit_server_bin] if settings.livekit_server_bin else [
        str(PROJECT_ROOT / ".tools" / "bin" / "livekit-server"),
        shutil.which("livekit-server") or "",
    ]
    for path in candidates:
        if path and os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    raise MissingBinary(
        f"livekit-server not found (looked at {', '.join(c for c in candidates if c)}); "
        "run deploy/install.sh, or set LIVEKIT_URL to use a running server"
    )


def merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    """Lay ``extra`` over ``base``, nested mappings merged key by key."""
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), dict):
            merge(base[key], value)
        else:
            base[key] = value
    return base


def render_config(settings: Settings, path: Path, *, log_level: str | None = None,
                  extra: Mapping[str, Any] | None = None) -> Path:
    """Write the local livekit.yaml with the configured ports and the web app's webhook.

    The webhook is the floor guard's; secrets stay out of the file (the webhook names the
    API key only). ``extra`` (e.g. ``redis``, ``rtc.node_ip``) is merged over the result.
    """
    config = yaml.safe_load(Path(settings.livekit_config_template).read_text())
    if log_level:
        config["log_level"] = log_level
    config["port"] = settings.livekit_port
    rtc = config.setdefault("rtc", {})
    rtc["tcp_port"] = settings.livekit_rtc_tcp_port
    rtc["udp_port"] = settings.livekit_rtc_udp_port
    if settings.floor_guard:  # signed with this key (its secret comes from LIVEKIT_KEYS)
        config["webhook"] = {"api_key": settings.livekit_api_key,
                             "urls": [settings.webhook_url]}
    if extra:
        merge(config, extra)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def command(settings: Settings, config_path: Path) -> tuple[list[str], dict[str, str]]:
    """Argv and extra environment to run livekit-server for ``settings``."""
    argv = [find_binary(settings), "--config", str(config_path)]
    env = {"LIVEKIT_KEYS": f"{settings.livekit_api_key}: {settings.livekit_api_secret}"}
    return argv, env


def ports(settings: Settings) -> list[tuple[str, int, str]]:
    """(name, port, 'tcp'|'udp') that livekit-server will bind."""
    return [
        ("livekit http/ws", settings.livekit_port, "tcp"),
        ("livekit rtc tcp", settings.livekit_rtc_tcp_port, "tcp"),
        ("livekit rtc udp", settings.livekit_rtc_udp_port, "udp"),
    ]


@contextlib.asynccontextmanager
async def running(settings: Settings, log_path: Path, *, log_level: str | None = None,
                  extra: Mapping[str, Any] | None = None) -> AsyncIterator[Settings]:
    """Run livekit-server for ``settings`` until the block ends.

    Its output goes to ``log_path``, its config beside it (tests and benchmarks; ``up``
    runs it under its supervisor). ``extra``: config keys merged over the rendered ones.
    """
    config = render_config(settings, log_path.with_suffix(".yaml"), log_level=log_level,
                           extra=extra)
    argv, extra_env = command(settings, config)
    proc = await asyncio.to_thread(_spawn, argv, {**os.environ, **extra_env}, log_path)
    try:
        await wait_http_ok(settings.livekit_http_url, timeout=30,
                           proc_alive=lambda: proc.poll() is None)
        yield settings
    finally:
        proc.terminate()
        try:
            await asyncio.to_thread(proc.wait, 10)
        except subprocess.TimeoutExpired:
            proc.kill()
            await asyncio.to_thread(proc.wait)


def _spawn(argv: list[str], env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    with open(log_path, "wb") as log:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(argv, env=env, stdout=log, stderr=log)
