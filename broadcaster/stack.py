"""`broadcaster up`: the whole local stack under one supervisor.

Order: livekit-server (unless LIVEKIT_URL points at one) → local avatar
service (unless HeyGen is configured) → web app. The web app then runs one
bot per live webinar; `up` creates the demo webinar and starts its bot, so a
newcomer sees the avatar without any set-up.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import aiohttp
from loguru import logger

from broadcaster import livekit_server
from broadcaster.config import Settings
from broadcaster.livekit_drain import DrainWatch
from broadcaster.logs import configure_logging
from broadcaster.supervisor import ChildSpec, StartupError, Supervisor


def stack_specs(settings: Settings) -> list[ChildSpec]:
    """Return the children `up` runs, in start order."""
    specs: list[ChildSpec] = []
    env = settings.child_env()
    if settings.managed_livekit:
        # an outside SIGTERM only drains it: its log shows that, and we end the drain
        watch = DrainWatch.for_template(settings.livekit_config_template)
        config = livekit_server.render_config(settings, Path(settings.state_dir) / "livekit.yaml",
                                              extra=watch.config())
        argv, lk_env = livekit_server.command(settings, config)
        specs.append(ChildSpec(
            name="livekit", argv=argv, env=lk_env, ready_url=settings.livekit_http_url,
            ready_timeout=30, ports=livekit_server.ports(settings),
            # by then the bots are gone: viewers still connected need not hold the stop
            repeat_stop_after=1.0,
            show_line=watch.show, draining_line=watch.is_drain,
        ))
    if not settings.use_heygen:
        specs.append(ChildSpec(
            name="avatar", argv=[sys.executable, "-m", "broadcaster", "serve", "avatar"],
            env=env, ready_url=f"http://{settings.avatar_host}:{settings.avatar_port}/healthz",
            ports=[("avatar service", settings.avatar_port, "tcp")],
        ))
    specs.append(ChildSpec(
        name="web", argv=[sys.executable, "-m", "broadcaster", "serve", "web"], env=env,
        ready_url=f"http://{settings.web_host}:{settings.web_port}/healthz",
        ports=[("web app", settings.web_port, "tcp")],
        # it stops its bots first (each within BotLauncher's 10 s): let it finish that
        stop_timeout=25.0,
    ))
    return specs


async def open_demo(settings: Settings, start_bot: bool) -> None:
    """Create (or find) the demo webinar, start its bot, and print the links."""
    base = f"http://{settings.web_host}:{settings.web_port}"
    headers = {"Authorization": f"Bearer {settings.host_key}"}
    room = settings.demo_room
    async with aiohttp.ClientSession(base, headers=headers) as http:
        body = {"room": room, "title": "Demo webinar"}
        async with http.post("/api/host/webinars", json=body) as r:
            if r.status not in (200, 201, 409):
                raise StartupError(f"could not create the demo webinar: HTTP {r.status}")
        async with http.get(f"/api/host/webinars/{room}") as r:
            webinar = await r.json()
        if start_bot:
            async with http.post(f"/api/host/webinars/{room}/bot/start") as r:
                if r.status >= 300:
                    logger.warning(f"could not start the demo bot: HTTP {r.status}")
    public = settings.effective_public_url
    # The presenter link carries the invite code: shown on a terminal, once, outside the
    # log; when the output goes to a file or a log collector, the host console has it.
    presenter = webinar.get("presenter_url") if sys.stdout.isatty() else None
    lines = [
        "",
        "broadcaster is up. Open:",
        f"  viewer page     {webinar.get('viewer_url', f'{public}/w/{room}')}",
        f"  presenter page  {presenter or '(in the host console: Presenter invite)'}",
        f"  host console    {public}/host#key=<host key>",
        f"  host key        {_host_key_source(settings)}",
        "Ctrl-C stops everything.",
        "",
    ]
    print("\n".join(lines), flush=True)


def _host_key_source(settings: Settings) -> str:
    """Where the host finds the key, without printing it (a log line must not hold it)."""
    stored = Path(settings.state_dir) / "secrets" / "host_key"
    if stored.exists() and stored.read_text().strip() == settings.host_key:
        return f"in {stored}"
    return "as configured (BROADCASTER_HOST_KEY or the config file's host_key)"


def run_up(settings: Settings, *, start_bot: bool = True) -> int:
    """Run ``broadcaster up`` until Ctrl-C; return the exit code."""
    configure_logging(settings)
    try:
        specs = stack_specs(settings)
    except livekit_server.MissingBinary as exc:
        print(f"broadcaster: {exc}", file=sys.stderr)
        return 1
    if not settings.managed_livekit:
        logger.info(f"using the LiveKit server at {settings.livekit_url}")
    if settings.use_heygen:
        logger.info("avatar: HeyGen LiveAvatar (HEYGEN_LIVE_AVATAR_API_KEY is set)")
    supervisor = Supervisor(specs, secrets=settings.secret_values(),
                            log_format=settings.log_format)
    try:
        return asyncio.run(supervisor.run(on_ready=lambda: open_demo(settings, start_bot)))
    except StartupError as exc:
        print(f"broadcaster: {exc}", file=sys.stderr)
        return 1
