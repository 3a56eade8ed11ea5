"""HeyGen's session limits, emulated by the local avatar service (off by default).

Real LiveAvatar sessions end: sandbox sessions after about a minute, idle sessions
after 5 minutes without a keep-alive, every session at its ``max_session_duration``
(the last one the service always enforces). With ``avatar_emulate_limits`` the local
service ends sessions the same way, so the bot's recovery is tested against what
HeyGen does to a broadcast that runs for hours.
"""

from __future__ import annotations

from broadcaster.avatar.session import Session
from broadcaster.config import Settings


def emulated_limit(session: Session, now: float, settings: Settings) -> str | None:
    """Return why HeyGen would end this started session now (None: it would not)."""
    if not settings.avatar_emulate_limits:
        return None
    if (session.request.is_sandbox
            and now - session.started_at >= settings.avatar_sandbox_session_seconds):
        return "sandbox session limit reached"
    active = max(session.active_at, session.started_at)
    if now - active >= settings.avatar_idle_timeout_seconds:
        return "idle timeout (no keep-alive)"
    return None
