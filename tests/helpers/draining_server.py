"""Stands in for livekit-server's signal handling (cmd/server/main.go, v1.13.5) in the
supervisor's unit test: the first SIGTERM/SIGINT logs the drain line and keeps running
(a participant never leaves), the second exits 0. The real binary is in
tests/test_livekit_drain.py's last test and tests/test_recovery_stack.py."""

import signal
import sys
import time

seen = 0


def on_signal(sig: int, _frame: object) -> None:
    global seen
    force = "true" if seen else "false"
    print(f'2026-12-01T00:00:00.000Z\tINFO\tlivekit\tserver/main.go:315\texit requested, '
          f'shutting down\t{{"signal": "{signal.Signals(sig).name}", "force": {force}}}',
          flush=True)
    seen += 1
    if seen == 2:
        sys.exit(0)


signal.signal(signal.SIGTERM, on_signal)
signal.signal(signal.SIGINT, on_signal)
print("2026-12-01T00:00:00.000Z\tINFO\tlivekit\tservice/server.go:292\tstarting LiveKit server",
      flush=True)
print("2026-12-01T00:00:00.000Z\tWARN\tlivekit\tservice/server.go:1\ta warning", flush=True)
while True:
    time.sleep(0.05)
