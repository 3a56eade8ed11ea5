"""A multi-node LiveKit cluster on one machine: one Redis and N livekit-server nodes.

This is LiveKit's own distributed mode, nothing home-made: every node shares one Redis
(``redis.address``), which maps each room to the node that hosts it; any node accepts
API calls and signalling for any room and relays them through Redis. Here every node
binds loopback with its own HTTP, RTC TCP and RTC UDP ports, ``node_ip`` 127.0.0.1 and
the loopback candidate (see DESIGN.md), so tests and benches can run a real cluster.

``running(settings, nodes=3, workdir)`` starts Redis (Debian's ``redis-server``, no
persistence) and the nodes, waits until each answers and has said its node ID, and
stops everything when the block ends. ``Node.kill()`` SIGKILLs one node; LiveKit
notices by itself (a node whose stats in Redis are older than 5 s is unavailable, and
its rooms go to another node on the next join).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from livekit import api

from broadcaster import livekit_server
from broadcaster.config import Settings
from broadcaster.netutil import free_port, wait_http_ok

#: livekit-server logs "starting LiveKit server ... nodeID ND_xxx" at info level
NODE_ID_RE = re.compile(r'"?nodeID"?\s*[:=]\s*"?(ND_[A-Za-z0-9]+)')


class MissingRedis(RuntimeError):
    """redis-server is not installed; the message says how to get it."""


@dataclass
class Node:
    """One livekit-server of the cluster."""

    index: int
    settings: Settings
    log_path: Path
    proc: subprocess.Popen[bytes]
    node_id: str = ""

    @property
    def url(self) -> str:
        """The node's signalling URL (ws://127.0.0.1:port)."""
        return self.settings.effective_livekit_url

    @property
    def http_url(self) -> str:
        """The node's HTTP (API and health) URL."""
        return self.settings.livekit_http_url

    @property
    def alive(self) -> bool:
        """Whether the process still runs."""
        return self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL, as a crash: no goodbye to Redis or to its participants."""
        with contextlib.suppress(ProcessLookupError):
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()


@dataclass
class Cluster:
    """Redis and the nodes sharing it."""

    redis_port: int
    redis: subprocess.Popen[bytes]
    nodes: list[Node] = field(default_factory=list)
    workdir: Path = Path(".")

    @property
    def redis_address(self) -> str:
        """host:port for livekit.yaml's ``redis.address``."""
        return f"127.0.0.1:{self.redis_port}"

    async def redis_cmd(self, *args: str) -> str:
        """One command through ``redis-cli`` (installed with redis-server)."""
        proc = await asyncio.create_subprocess_exec(
            _redis_cli(), "-h", "127.0.0.1", "-p", str(self.redis_port), "--raw", *args,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await proc.communicate()
        if proc.returncode != 0:
            raise RuntimeError(f"redis-cli {' '.join(args)}: {err.decode().strip()}")
        return out.decode().strip()

    async def room_node(self, room: str) -> Node | None:
        """Return the node Redis says hosts ``room`` (None: no node assigned yet)."""
        node_id = await self.redis_cmd("HGET", "room_node_map", room)
        return next((n for n in self.nodes if n.node_id == node_id), None)

    async def place(self, room: str, node: Node, empty_timeout: int = 300) -> None:
        """Create ``room`` on ``node`` through node 1's API (LiveKit routes it by node ID).

        Tests and benches choose this way which node's loss a room suffers.
        """
        s = self.nodes[0].settings
        async with api.LiveKitAPI(self.nodes[0].http_url, s.livekit_api_key,
                                  s.livekit_api_secret) as lk:
            await lk.room.create_room(api.CreateRoomRequest(
                name=room, node_id=node.node_id, empty_timeout=empty_timeout))

    def kill_redis(self) -> None:
        """SIGKILL Redis, as a crash; the nodes run on."""
        with contextlib.suppress(ProcessLookupError):
            self.redis.send_signal(signal.SIGKILL)
        self.redis.wait()

    async def restart_redis(self) -> None:
        """Start Redis again on its port.

        Empty, as the cluster runs it without persistence: the nodes fill it again.
        """
        if self.redis.poll() is None:
            await _stop(self.redis)
        _, self.redis = await _start_redis(self.workdir, self.redis_port)

    def node_by_id(self, node_id: str) -> Node | None:
        """Return the node with this LiveKit node ID, if it is one of ours."""
        return next((n for n in self.nodes if n.node_id == node_id), None)

    async def restart(self, node: Node) -> None:
        """Start a stopped or killed node again, same ports and config (new node ID)."""
        if node.alive:
            await _stop(node.proc)
        node.node_id = ""
        offset = await asyncio.to_thread(_size, node.log_path)
        node.proc = _spawn(node.settings, node.log_path.with_suffix(".yaml"), node.log_path)
        await wait_http_ok(node.http_url, timeout=30, proc_alive=lambda: node.alive)
        node.node_id = await _wait_node_id(node, offset=offset)


def _size(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0


def _redis_cli() -> str:
    return shutil.which("redis-cli") or "redis-cli"


def find_redis() -> str:
    """Return the redis-server binary, or raise MissingRedis saying how to install it."""
    path = shutil.which("redis-server") or (
        "/usr/bin/redis-server" if os.access("/usr/bin/redis-server", os.X_OK) else None)
    if path is None:
        raise MissingRedis("redis-server not found; run deploy/install.sh --test "
                           "(apt-get install redis-server)")
    return path


def node_settings(base: Settings, state: Path) -> Settings:
    """Copy ``base`` onto fresh free ports (one HTTP, one RTC TCP, one RTC UDP port)."""
    return dataclasses.replace(
        base, state_dir=str(state), livekit_url="",
        livekit_port=free_port(), livekit_rtc_tcp_port=free_port(),
        livekit_rtc_udp_port=free_port())


def node_extra(redis_address: str, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Config keys a cluster node adds to the local livekit.yaml."""
    out: dict[str, Any] = {"redis": {"address": redis_address},
                           # a new room goes to the node with the fewest rooms (LiveKit's
                           # own selector), so audience shards spread over the nodes
                           "node_selector": {"kind": "any", "sort_by": "rooms",
                                             "algorithm": "lowest"},
                           "rtc": {"node_ip": "127.0.0.1", "use_external_ip": False,
                                   "enable_loopback_candidate": True}}
    if extra:
        livekit_server.merge(out, extra)
    return out


async def _start_redis(workdir: Path, port: int = 0) -> tuple[int, subprocess.Popen[bytes]]:
    port = port or free_port()
    proc = await asyncio.to_thread(_spawn_redis, port, workdir)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"redis-server exited; see {workdir / 'redis.log'}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5) as s:
            s.sendall(b"PING\r\n")
            if s.recv(16).startswith(b"+PONG"):
                return port, proc
        await asyncio.sleep(0.05)
    proc.kill()
    raise TimeoutError("redis-server did not answer PING in 15 s")


#: Redis keeps LiveKit's room-to-node map across its own restart: restarted empty, the
#: nodes forget which node hosts each room and a newcomer's join opens a second, empty
#: room of the same name on another node, away from the bot (tests/test_redis_loss.py).
#: The map changes only when a room opens or moves, so an append-only file synced every
#: second costs nothing; deploy/'s Redis runs with the same two settings.
REDIS_PERSISTENCE = ("--appendonly", "yes", "--appendfsync", "everysec")


def _spawn_redis(port: int, workdir: Path) -> subprocess.Popen[bytes]:
    with open(workdir / "redis.log", "ab") as log:  # the child keeps its own copy
        return subprocess.Popen(
            [find_redis(), "--port", str(port), "--bind", "127.0.0.1", "--save", "",
             *REDIS_PERSISTENCE, "--dir", str(workdir), "--protected-mode", "yes"],
            stdout=log, stderr=log)


def _read_from(path: Path, offset: int) -> str:
    with open(path, "rb") as fh:
        fh.seek(offset)
        return fh.read().decode(errors="replace")


async def _wait_node_id(node: Node, within: float = 15, offset: int = 0) -> str:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            text = await asyncio.to_thread(_read_from, node.log_path, offset)
            m = NODE_ID_RE.search(text)
            if m:
                return m.group(1)
        await asyncio.sleep(0.05)
    raise TimeoutError(f"node {node.index} never logged its node ID ({node.log_path})")


def _spawn(s: Settings, config: Path, log_path: Path) -> subprocess.Popen[bytes]:
    argv, env = livekit_server.command(s, config)
    with open(log_path, "ab") as log:
        return subprocess.Popen(argv, env={**os.environ, **env}, stdout=log, stderr=log)


async def _ready(node: Node) -> None:
    await wait_http_ok(node.http_url, timeout=30, proc_alive=lambda: node.alive)
    node.node_id = await _wait_node_id(node)


async def _stop(proc: subprocess.Popen[bytes], grace: float = 10) -> None:
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        await asyncio.to_thread(proc.wait, grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        await asyncio.to_thread(proc.wait)


@contextlib.asynccontextmanager
async def running(settings: Settings, workdir: Path, nodes: int = 3, *,
                  extra: Mapping[str, Any] | None = None) -> AsyncIterator[Cluster]:
    """Redis and ``nodes`` livekit-server nodes sharing it, until the block ends.

    Each node gets its own ports (``settings`` gives the keys and the config template);
    logs and configs go to ``workdir``. Nodes log at info level (their node ID is only
    said there).
    """
    await asyncio.to_thread(workdir.mkdir, parents=True, exist_ok=True)
    port, redis = await _start_redis(workdir)
    cluster = Cluster(port, redis, workdir=workdir)
    try:
        for i in range(nodes):
            s = node_settings(settings, workdir)
            log_path = workdir / f"livekit-node{i + 1}.log"
            config = livekit_server.render_config(
                s, log_path.with_suffix(".yaml"), log_level="info",
                extra=node_extra(cluster.redis_address, extra))
            cluster.nodes.append(Node(i + 1, s, log_path, _spawn(s, config, log_path)))
        for node in cluster.nodes:
            await _ready(node)
        yield cluster
    finally:
        await asyncio.gather(*(_stop(n.proc) for n in cluster.nodes))
        await _stop(redis)
