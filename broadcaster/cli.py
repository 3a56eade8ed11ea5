"""`broadcaster` command line: up | serve | token | doctor | ask.

`up` is the main job: it runs every part under one supervisor. `serve` runs
one part in the foreground (what `up` and the deployment files start).
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from loguru import logger

from broadcaster.config import ConfigError, Settings
from broadcaster.logs import configure_logging
from broadcaster.roles import InvalidInput, Role, mint_token

PARTS = ("web", "avatar", "bot", "rehearsal")


def _add_setting_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="TOML settings file (also $BROADCASTER_CONFIG)")
    parser.add_argument("--web-port", type=int, help="web app port (default 8080)")
    parser.add_argument("--livekit-port", type=int, help="local livekit-server port (7880)")
    parser.add_argument("--avatar-port", type=int, help="local avatar service port (8090)")
    parser.add_argument("--state-dir", help="where the database, secrets and logs live")


def _settings(args: argparse.Namespace) -> Settings:
    return Settings.load(
        args.config,
        web_port=getattr(args, "web_port", None),
        livekit_port=getattr(args, "livekit_port", None),
        avatar_port=getattr(args, "avatar_port", None),
        state_dir=getattr(args, "state_dir", None),
    )


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser of the ``broadcaster`` command."""
    parser = argparse.ArgumentParser(
        prog="broadcaster", description="An AI avatar webinar on a self-hosted LiveKit server."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    up = sub.add_parser("up", help="run the whole local stack (LiveKit, avatar, web, bot)")
    _add_setting_flags(up)
    up.add_argument("--no-bot", action="store_true", help="do not start the demo room's bot")

    serve = sub.add_parser("serve", help="run one part in the foreground")
    serve.add_argument("part", choices=PARTS)
    serve.add_argument("--room", help="(bot, rehearsal) the webinar's stage room")
    _add_setting_flags(serve)

    token = sub.add_parser("token", help="print a LiveKit access token for a role")
    token.add_argument("--role", required=True, help="viewer | presenter | host | bot")
    token.add_argument("--room", required=True)
    token.add_argument("--identity", required=True)
    token.add_argument("--name", help="display name (default: the identity)")
    token.add_argument("--ttl", type=int, help="lifetime in seconds (default from settings)")
    token.add_argument("--config", help="TOML settings file")

    doctor = sub.add_parser("doctor", help="check this machine and say what is missing")
    _add_setting_flags(doctor)

    ask = sub.add_parser(
        "ask", help="what the avatar answers: one JSON line per question (stdin if none)",
        description="Answer each QUESTION (or each line of standard input) exactly as the "
        "bot would, with the same settings, and print one JSON object per line: "
        '{"question", "answer", "source"}, where source is the notes\' heading, '
        '"fallback", "conversation" or "llm".')
    ask.add_argument("--notes", help="the notes file (default: the faq_path setting)")
    ask.add_argument("--config", help="TOML settings file (also $BROADCASTER_CONFIG)")
    ask.add_argument("--explain", action="store_true",
                     help='also print "confidence" (0-1, the fallback below the threshold) '
                     'and the three closest topics ("candidates"): where a phrasing falls short')
    ask.add_argument("question", nargs="*", help="questions (default: one per stdin line)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the ``broadcaster`` command; return its exit code."""
    args = build_parser().parse_args(argv)
    try:
        if args.command == "token":
            return _cmd_token(args)
        if args.command == "ask":
            from broadcaster.answers.ask import run_ask

            return run_ask(args.question, notes=args.notes, config=args.config,
                           explain=args.explain)
        if args.command == "doctor":
            from broadcaster.doctor import run_doctor

            return run_doctor(_settings(args))
        if args.command == "serve":
            return _cmd_serve(args)
        if args.command == "up":
            from broadcaster.stack import run_up

            return run_up(_settings(args), start_bot=not args.no_bot)
    except (ConfigError, InvalidInput) as exc:
        print(f"broadcaster: {exc}", file=sys.stderr)
        return 2
    return 2  # argparse guarantees a command; unreachable


def _cmd_token(args: argparse.Namespace) -> int:
    settings = Settings.load(args.config)
    try:
        role = Role(args.role)
    except ValueError:
        raise InvalidInput(
            f"--role {args.role!r} is not one of: {', '.join(r.value for r in Role)}"
        ) from None
    print(mint_token(settings, role, args.room, args.identity, name=args.name,
                     ttl_seconds=args.ttl))
    return 0


def _cmd_serve(args: argparse.Namespace) -> int:
    settings = _settings(args)
    configure_logging(settings)
    serve: Callable[[], Awaitable[Any]]
    if args.part == "web":
        from broadcaster.web.app import serve as serve_web

        serve = lambda: serve_web(settings)  # noqa: E731
    elif args.part == "avatar":
        from broadcaster.avatar.app import serve as serve_avatar

        serve = lambda: serve_avatar(settings)  # noqa: E731
    elif args.part == "rehearsal":
        if not args.room:
            raise InvalidInput("serve rehearsal needs --room ROOM")
        from broadcaster.bot.rehearsal import serve as serve_rehearsal

        serve = lambda: serve_rehearsal(settings, args.room)  # noqa: E731
    else:
        if not args.room:
            raise InvalidInput("serve bot needs --room ROOM")
        from broadcaster.bot.main import RESTART_EXIT_CODE, RestartRequested
        from broadcaster.bot.main import serve as serve_bot

        serve = lambda: serve_bot(settings, args.room)  # noqa: E731
        try:
            return run_until_signal(serve)
        except RestartRequested as exc:
            logger.warning(f"bot restarting: {exc}")
            return RESTART_EXIT_CODE
    return run_until_signal(serve)


def run_until_signal(factory: Callable[[], Awaitable[Any]]) -> int:
    """Run a coroutine; SIGINT/SIGTERM cancel it so it can clean up."""

    async def runner() -> int:
        task = asyncio.ensure_future(factory())
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, task.cancel)
        try:
            await task
        except asyncio.CancelledError:
            logger.info("stopped")
        return 0

    return asyncio.run(runner())


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
