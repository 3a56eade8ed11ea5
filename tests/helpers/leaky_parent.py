"""A stand-in child that starts a process of its own in a new session (as the web app
starts bots) and leaves it behind when it dies; the grandchild ignores SIGTERM."""

import subprocess
import sys
import time

GRANDCHILD = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)"

if __name__ == "__main__":
    kid = subprocess.Popen([sys.executable, "-c", GRANDCHILD], start_new_session=True)
    with open(sys.argv[1], "w") as fh:
        fh.write(str(kid.pid))
    time.sleep(600)
