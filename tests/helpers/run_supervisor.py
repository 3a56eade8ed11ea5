"""Run a Supervisor over tiny_service children (argv: log dir, ports...)."""

import asyncio
import sys

from broadcaster.supervisor import ChildSpec, Supervisor

HERE = __file__.rsplit("/", 1)[0]


def main() -> int:
    log, *ports = sys.argv[1:]
    specs = []
    for i, port in enumerate(ports):
        extra = ["--crash-once", f"{log}/crash-{i}"] if i == 1 else []
        specs.append(ChildSpec(
            name=f"svc{i}",
            argv=[sys.executable, f"{HERE}/tiny_service.py", port, "--log", f"{log}/svc{i}.log",
                  *extra],
            ready_url=f"http://127.0.0.1:{port}/healthz",
            ports=[(f"svc{i}", int(port), "tcp")],
        ))

    async def ready() -> None:
        print("ALL READY", flush=True)

    return asyncio.run(Supervisor(specs, secrets=["secret-value-123456"]).run(on_ready=ready))


if __name__ == "__main__":
    sys.exit(main())
