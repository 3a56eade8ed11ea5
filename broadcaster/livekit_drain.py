"""Seeing livekit-server start a drain, so ``broadcaster up`` can end it.

livekit-server's first SIGTERM or SIGINT only drains: it marks the node shutting down
and waits, polling every 5 s, until no participant is left (``LivekitServer.Stop(false)``
in v1.13.5). Under a live webinar our bot never leaves, so an operator's ``kill -TERM``
sent straight to it never ends it, and no API shows the drain. Its second signal stops it
at once, closing every room (participants are told the server shut down).

The only sign of the first signal is the line ``main`` logs at info, "exit requested,
shutting down" with ``"force": false``. It comes from livekit's root logger, which has
no component, so ``logging.component_levels`` cannot enable it alone: the root goes to
info, every component livekit names stays at the level the config asked for, and the
supervisor hides the root's other info lines (:meth:`DrainWatch.show`), so the console
shows what it showed at that level. In production (deploy/, k8s) nothing reads the log
and drain-on-SIGTERM stays the rolling-upgrade behaviour: only ``up`` uses this.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

#: the components livekit-server v1.13.5 logs under (pkg/utils/logging.go, "agents",
#: pion's "pion.*"); an unlisted one only costs formatting: :meth:`DrainWatch.show` hides it
COMPONENTS = ("pub", "sub", "room", "api", "transport", "sfu", "cc", "agents", "pion")
#: zap's levels, quietest last
_RANK = {"debug": 0, "info": 1, "warn": 2, "error": 3, "dpanic": 4, "panic": 5, "fatal": 6}
#: cmd/server/main.go: ``logger.Infow("exit requested, shutting down", "signal", sig,
#: "force", force)``; console or JSON output
_DRAIN = re.compile(r"exit requested, shutting down.*\"force\":\s*false")
#: a line's level: console ``<time>\tINFO\tlivekit\t…``, JSON ``"level":"info"``
_LEVEL = re.compile(r"^\S+\s+([A-Z]+)\s|\"level\":\s*\"([a-z]+)\"")


@dataclass(frozen=True)
class DrainWatch:
    """How livekit-server must log so its drain shows, and which lines to print."""

    level: str
    """The level the livekit config asks for (``log_level`` or ``logging.level``)."""
    named: frozenset[str] = frozenset()
    """Components the config sets a level for itself: left as they are."""

    @classmethod
    def for_template(cls, template: str | Path) -> DrainWatch:
        """Read the level the livekit.yaml template ``up`` renders its config from asks for."""
        config = yaml.safe_load(Path(template).read_text()) or {}
        logging = config.get("logging") or {}
        level = str(config.get("log_level") or logging.get("level") or "info").lower()
        return cls(level=level, named=frozenset(logging.get("component_levels") or {}))

    @property
    def raised(self) -> bool:
        """Whether the asked level hides the drain line, so the root must go to info."""
        return _RANK.get(self.level, 1) > _RANK["info"]

    def config(self) -> dict[str, Any]:
        """Keys to merge over the rendered livekit.yaml (none when info shows the line)."""
        if not self.raised:
            return {}
        components = {c: self.level for c in COMPONENTS if c not in self.named}
        return {"log_level": "info",
                "logging": {"level": "info", "component_levels": components}}

    def is_drain(self, line: str) -> bool:
        """Whether ``line`` says livekit-server began draining (its first signal)."""
        return _DRAIN.search(line) is not None

    def show(self, line: str) -> bool:
        """Whether to print ``line``: not the root's info lines the config did not ask for."""
        if not self.raised or self.is_drain(line):
            return True
        if (m := _LEVEL.search(line)) is None:
            return True  # a continuation line, a panic's stack: always shown
        level = (m.group(1) or m.group(2)).lower()
        return _RANK.get(level, _RANK["fatal"]) >= _RANK.get(self.level, _RANK["info"])
