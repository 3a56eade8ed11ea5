"""Where settings come from: a TOML file, the environment, overrides, the state directory.

Each value is coerced to its field's type with an error that names the source
(``$BROADCASTER_WEB_PORT='x' is not a valid int``); secrets that nobody configured
are generated once and kept, mode 0600, in ``<state_dir>/secrets/``.
"""

from __future__ import annotations

import dataclasses
import os
import secrets
import tomllib
import types
import typing
from collections.abc import Iterable
from pathlib import Path
from typing import Any


class ConfigError(ValueError):
    """A configuration value is missing or malformed; the message names it."""


def read_values(fields: Iterable[dataclasses.Field[Any]], path: str | os.PathLike[str] | None,
                env: typing.Mapping[str, str], overrides: dict[str, Any]) -> dict[str, Any]:
    """Field values from the TOML file at ``path``, then ``env``, then ``overrides``."""
    known = {f.name: f for f in fields}
    values: dict[str, Any] = {}
    if path:
        try:
            data = tomllib.loads(Path(path).read_text())
        except FileNotFoundError as exc:
            raise ConfigError(f"config file {path!s} does not exist") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {path!s} is not valid TOML: {exc}") from exc
        for key, raw in data.items():
            if key not in known:
                raise ConfigError(f"unknown setting {key!r} in {path!s}")
            values[key] = coerce(known[key], raw, source=f"{path!s}")
    for name, f in known.items():
        var = env_name(f)
        if var in env and env[var] != "":
            values[name] = coerce(f, env[var], source=f"${var}")
    for key, raw in overrides.items():
        if key not in known:
            raise ConfigError(f"unknown setting {key!r}")
        if raw is not None:
            values[key] = coerce(known[key], raw, source=f"--{key.replace('_', '-')}")
    return values


def env_name(f: dataclasses.Field[Any]) -> str:
    """Return the environment variable of a setting."""
    return f.metadata.get("env") or f"BROADCASTER_{f.name.upper()}"


def coerce(f: dataclasses.Field[Any], raw: Any, *, source: str) -> Any:
    """Convert ``raw`` to the field's type; the error names ``source``."""
    kind = f.type if isinstance(f.type, type) else _resolve(f.type)
    try:
        if kind is bool:
            if isinstance(raw, bool):
                return raw
            text = str(raw).strip().lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off"):
                return False
            raise ValueError("expected true/false")
        if kind is int:
            if isinstance(raw, bool):
                raise ValueError("expected an integer")
            return int(str(raw).replace("_", ""))
        if kind is float:
            return float(raw)
        return str(raw)
    except ValueError as exc:
        raise ConfigError(f"{source}={raw!r} is not a valid {kind.__name__}: {exc}") from exc


def _resolve(annotation: Any) -> type:
    names = {"str": str, "int": int, "bool": bool, "float": float}
    if isinstance(annotation, str):
        return names.get(annotation, str)
    if isinstance(annotation, types.UnionType):
        return str
    return annotation


def stored_secret(state_dir: Path, name: str, nbytes: int) -> str:
    """Return the secret kept in ``state_dir``, generating it (mode 0600) the first time."""
    path = state_dir / "secrets" / name
    try:
        value = path.read_text().strip()
        if value:
            return value
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    value = secrets.token_urlsafe(nbytes)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process created it first: use theirs
        return path.read_text().strip()
    with os.fdopen(fd, "w") as fh:
        fh.write(value)
    return value
