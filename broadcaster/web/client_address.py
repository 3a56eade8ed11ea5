"""Who is asking, for the limits: the source address, or the one a trusted proxy names.

``X-Forwarded-For`` is anyone's to write, so it counts only when the connection comes
from a configured proxy (``Settings.trusted_proxies``), and then only the addresses
the trusted proxies appended: read from the right, the first hop that is not a trusted
proxy is the client. IPv6 clients are keyed by their /64 (one host usually holds a
whole /64, so per-address limits would otherwise be free to dodge).
"""

from __future__ import annotations

import ipaddress

from aiohttp import web

from broadcaster.config import IPNetwork

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def parse_ip(text: str) -> IPAddress | None:
    """Parse a peer name or header hop (``[::1]``, ``fe80::1%eth0``); None if no address."""
    text = text.strip().removeprefix("[").split("]", 1)[0].split("%", 1)[0]
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def limit_key(ip: IPAddress) -> str:
    """Return the bucket an address counts against: itself (IPv4) or its /64 (IPv6)."""
    if isinstance(ip, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


def _trusted(ip: IPAddress, proxies: tuple[IPNetwork, ...]) -> bool:
    return any(ip.version == net.version and ip in net for net in proxies)


def client_ip(request: web.BaseRequest, proxies: tuple[IPNetwork, ...]) -> IPAddress | None:
    """Return the client's address as far as the trusted proxies vouch for it."""
    peer = parse_ip(request.remote or "")
    if peer is None or not proxies or not _trusted(peer, proxies):
        return peer
    hops = ",".join(request.headers.getall("X-Forwarded-For", [])).split(",")
    for hop in reversed(hops):
        ip = parse_ip(hop)
        if ip is None:
            return peer  # a proxy we trust wrote junk: count the proxy itself
        if not _trusted(ip, proxies):
            return ip
    return peer


def client_key(request: web.BaseRequest, proxies: tuple[IPNetwork, ...]) -> str:
    """Return the per-address limit key of ``request`` (``unix`` for a Unix socket peer)."""
    ip = client_ip(request, proxies)
    return limit_key(ip) if ip is not None else (request.remote or "unknown")
