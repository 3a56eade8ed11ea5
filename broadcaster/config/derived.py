"""What the settings imply: the URLs each part uses, the avatar to ask for, parsed proxies.

:class:`Settings` inherits these; the fields they read are declared here for the type
checker only (this class is not a dataclass, so they are not fields twice).
"""

from __future__ import annotations

import ipaddress
from pathlib import Path

from broadcaster.config.paths import (
    HEYGEN_API_URL,
    HEYGEN_SANDBOX_AVATAR_ID,
    LOCAL_AVATAR_ID,
    WEBHOOK_PATH,
    IPNetwork,
    http_url,
)


class DerivedSettings:
    """Properties computed from :class:`Settings`' fields."""

    livekit_url: str
    livekit_port: int
    livekit_public_url: str
    public_url: str
    web_host: str
    web_port: int
    heygen_api_key: str
    liveavatar_api_url: str
    avatar_host: str
    avatar_port: int
    avatar_id: str
    avatar_api_key: str
    trusted_proxies: str
    state_dir: str

    @property
    def managed_livekit(self) -> bool:
        """True when broadcaster runs livekit-server itself (no LIVEKIT_URL given)."""
        return not self.livekit_url

    @property
    def effective_livekit_url(self) -> str:
        """The LiveKit URL broadcaster's own processes connect to."""
        return self.livekit_url or f"ws://127.0.0.1:{self.livekit_port}"

    @property
    def browser_livekit_url(self) -> str:
        """What pages and the avatar service (direct mode) are told to connect to."""
        return self.livekit_public_url or self.effective_livekit_url

    @property
    def livekit_http_url(self) -> str:
        """The same server over HTTP(S), for the RoomService API."""
        return http_url(self.effective_livekit_url)

    @property
    def effective_public_url(self) -> str:
        """The base URL of shared links."""
        return (self.public_url or f"http://{self.web_host}:{self.web_port}").rstrip("/")

    @property
    def webhook_url(self) -> str:
        """Where livekit-server posts its events: the web app, as livekit-server reaches it."""
        host = "127.0.0.1" if self.web_host in ("0.0.0.0", "::", "") else self.web_host
        return f"http://{host}:{self.web_port}{WEBHOOK_PATH}"

    @property
    def use_heygen(self) -> bool:
        """Real HeyGen when its key is set and the API URL is not overridden."""
        return bool(self.heygen_api_key) and (
            not self.liveavatar_api_url or self.liveavatar_api_url == HEYGEN_API_URL
        )

    @property
    def effective_liveavatar_api_url(self) -> str:
        """The LiveAvatar API the bot talks to: configured, HeyGen's, or the local service."""
        if self.liveavatar_api_url:
            return self.liveavatar_api_url.rstrip("/")
        if self.use_heygen:
            return HEYGEN_API_URL
        return f"http://{self.avatar_host}:{self.avatar_port}/v1"

    @property
    def effective_avatar_id(self) -> str:
        """The avatar the bot asks for."""
        if self.avatar_id:
            return self.avatar_id
        return HEYGEN_SANDBOX_AVATAR_ID if self.use_heygen else LOCAL_AVATAR_ID

    @property
    def liveavatar_key(self) -> str:
        """The X-API-KEY the bot sends: HeyGen's key, or the local service's."""
        return self.heygen_api_key if self.use_heygen else self.avatar_api_key

    @property
    def trusted_proxy_networks(self) -> tuple[IPNetwork, ...]:
        """``trusted_proxies`` parsed (ValueError names a bad entry)."""
        nets = []
        for item in self.trusted_proxies.split(","):
            if item.strip():
                try:
                    nets.append(ipaddress.ip_network(item.strip(), strict=False))
                except ValueError:
                    raise ValueError(f"{item.strip()!r} is not an address or network") from None
        return tuple(nets)

    @property
    def db_path(self) -> Path:
        """The web app's SQLite database."""
        return Path(self.state_dir) / "broadcaster.db"
