"""``free_port`` must not hand out ports the kernel also uses for outgoing connections.

A clean-clone CI run failed when livekit-server, started on a port ``free_port`` had
picked, found it taken ("bind: address already in use"): a port from the ephemeral
range, which every outgoing connection (hundreds of WebRTC and HTTP clients in the suite)
also draws from between the pick and the server's bind.
"""

from __future__ import annotations

import socket
from typing import Any

import pytest

from broadcaster.netutil import ephemeral_range, free_port


def test_ports_come_from_outside_the_ephemeral_range() -> None:
    low, high = ephemeral_range()
    ports = [free_port() for _ in range(200)] + [free_port() for _ in range(50)]
    assert not [p for p in ports if low <= p <= high]
    assert all(1024 < p < 65536 for p in ports)


def test_no_port_is_handed_out_twice_in_one_process() -> None:
    ports = [free_port() for _ in range(300)]
    assert len(set(ports)) == len(ports)


def test_a_port_held_by_a_listener_is_never_handed_out() -> None:
    low, _ = ephemeral_range()
    held: list[socket.socket] = []
    try:
        # occupy every port of a small slice of the pick range, then pick many times
        for port in range(low - 400, low):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                sock.bind(("0.0.0.0", port))
                sock.listen()
                held.append(sock)
            except OSError:
                sock.close()
        taken = {s.getsockname()[1] for s in held}
        picked = {free_port() for _ in range(400)}
        assert not picked & taken
    finally:
        for sock in held:
            sock.close()


def test_a_picked_port_binds_on_every_interface_for_tcp_and_udp() -> None:
    for _ in range(40):
        port = free_port()
        for k in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
            with socket.socket(socket.AF_INET, k) as sock:
                sock.bind(("0.0.0.0", port))


async def test_a_stack_whose_port_is_taken_at_start_starts_over_on_fresh_ports(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The test stack (bench/servers.py ``up_stack``) survives a port taken meanwhile."""
    from bench import servers

    real = servers.fresh_settings
    held: list[socket.socket] = []

    def first_port_taken(**overrides: Any) -> Any:
        s = real(**overrides)
        if not held:  # someone else grabs livekit's RTC port before it binds
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("0.0.0.0", s.livekit_rtc_tcp_port))
            sock.listen()
            held.append(sock)
        return s

    monkeypatch.setattr(servers, "fresh_settings", first_port_taken)
    try:
        async with servers.up_stack(start_bot=False) as stack:
            assert stack.settings.livekit_rtc_tcp_port != held[0].getsockname()[1]
            assert stack.proc.returncode is None
            assert "already in use" not in "\n".join(stack.grep("."))
    finally:
        for sock in held:
            sock.close()
