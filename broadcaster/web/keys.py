"""Typed application keys (aiohttp ``web.AppKey``): everything a handler may reach."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from aiohttp import web

from broadcaster.config import Settings
from broadcaster.web.rate_limit import LogThrottle, RecentIds, TokenBuckets

if TYPE_CHECKING:
    from broadcaster.web.audience import Audience
    from broadcaster.web.bot_control import BotLauncher
    from broadcaster.web.floor import FloorGuard
    from broadcaster.web.livekit_admin import LiveKitAdmin
    from broadcaster.web.store import Store
    from broadcaster.web.webinars import Webinars

SETTINGS = web.AppKey("settings", Settings)
STORE: web.AppKey[Store] = web.AppKey("store")
LIVEKIT: web.AppKey[LiveKitAdmin] = web.AppKey("livekit")
WEBINARS: web.AppKey[Webinars] = web.AppKey("webinars")
#: raised hands and the moderated Q&A (web/audience.py)
AUDIENCE: web.AppKey[Audience] = web.AppKey("audience")
BOTS: web.AppKey[BotLauncher] = web.AppKey("bots")
#: rehearsal processes (broadcaster/bot/rehearsal.py), one per webinar at most
REHEARSALS: web.AppKey[BotLauncher] = web.AppKey("rehearsals")
FLOOR: web.AppKey[FloorGuard] = web.AppKey("floor")
#: webhook event ids already acted on (a replay is answered, not acted on)
WEBHOOK_IDS = web.AppKey("webhook_ids", RecentIds)
#: wrong host keys per source address (auth.host_guard), and its throttled log line
HOST_KEY_FAILURES = web.AppKey("host_key_failures", TokenBuckets)
HOST_KEY_LOG = web.AppKey("host_key_log", LogThrottle)
#: the livekit-client ES module served to the pages (no CDN)
VENDOR_JS = web.AppKey("vendor_js", Path)
