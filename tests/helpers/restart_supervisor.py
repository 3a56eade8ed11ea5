"""Run a Supervisor with a tight restart policy over two children that keep exiting.

argv: log dir. ``steady`` runs 1.2 s (past the policy's healthy_after of 1 s) then exits;
``flaky`` exits 0.1 s after its start. Each writes ``start <t>`` / ``exit <t>`` lines.
"""

import asyncio
import sys

from broadcaster.restart_policy import RestartPolicy
from broadcaster.supervisor import ChildSpec, Supervisor

CHILD = ("import sys, time\nlog, run = sys.argv[1], float(sys.argv[2])\n"
         "open(log, 'a').write(f'start {time.time()}\\n')\ntime.sleep(run)\n"
         "open(log, 'a').write(f'exit {time.time()}\\n')\nsys.exit(1)")


def main() -> int:
    log = sys.argv[1]
    specs = [ChildSpec(name=name, argv=[sys.executable, "-c", CHILD, f"{log}/{name}.log", run])
             for name, run in (("steady", "1.2"), ("flaky", "0.1"))]
    policy = RestartPolicy(healthy_after=1.0, first_delay=0.5, max_delay=2.0,
                           max_crashes=50, window=60.0)

    async def ready() -> None:
        print("ALL READY", flush=True)

    return asyncio.run(Supervisor(specs, policy=policy).run(on_ready=ready))


if __name__ == "__main__":
    sys.exit(main())
