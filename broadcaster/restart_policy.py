"""When to restart a part that exited: at once after a healthy run, later in a crash loop.

A part that ran fine for a while and then died (a SIGKILL, an OOM, a peer's crash
taking it down) is one crash: waiting before its restart only lengthens what viewers
see. A part that dies again and again right after starting (a bad config, a port taken)
is a crash loop: restarting it at once would burn the CPU the rest of the stack needs,
so the delay doubles with each crash, and after too many the part is given up on.
The supervisor (its children) and the web app's bot launcher (its bots) share this.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class RestartPolicy:
    """The numbers of the policy; the defaults are the supervisor's."""

    #: a run at least this long was healthy: its crash restarts at once and the
    #: crash-loop count starts over
    healthy_after: float = 30.0
    #: delay after the first crash of a short run; doubles with each further one
    first_delay: float = 1.0
    max_delay: float = 10.0
    #: more short-run crashes than this within ``window`` seconds: give up
    max_crashes: int = 5
    window: float = 60.0


@dataclass
class RestartTracker:
    """The crash history of one part under a :class:`RestartPolicy`."""

    policy: RestartPolicy = field(default_factory=RestartPolicy)
    #: monotonic times of the crashes that ended a short run, within the window
    crashes: list[float] = field(default_factory=list)

    def on_exit(self, started_at: float, now: float) -> float | None:
        """Seconds to wait before a restart, or None to give up on the part.

        ``started_at`` and ``now`` (monotonic): when the part started, when it exited.
        """
        p = self.policy
        if now - started_at >= p.healthy_after:
            self.crashes.clear()
            return 0.0
        self.crashes = [t for t in self.crashes if now - t < p.window] + [now]
        if len(self.crashes) > p.max_crashes:
            return None
        return min(p.first_delay * 2 ** (len(self.crashes) - 1), p.max_delay)
