"""An outside SIGTERM/SIGINT to livekit-server under ``up`` ends it (it only drains).

livekit-server's first signal waits for every participant to leave; the supervisor reads
the "exit requested" line (broadcaster/livekit_drain.py) and signals it again. The whole
stack under a watching viewer: tests/test_recovery_stack.py.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from bench.servers import fresh_settings
from broadcaster import livekit_server
from broadcaster.config import Settings
from broadcaster.livekit_drain import DrainWatch
from broadcaster.supervisor import Child, ChildSpec

HELPERS = Path(__file__).parent / "helpers"
#: livekit-server v1.13.5's lines, as it printed them here (console and ``logging.json``)
DRAIN = ('2026-12-01T00:39:10.679Z\tINFO\tlivekit\tserver/main.go:315\texit requested, '
         'shutting down\t{"signal": "terminated", "force": false}')
FORCED = DRAIN.replace('"force": false', '"force": true')
DRAIN_JSON = ('{"level":"info","ts":1,"logger":"livekit","caller":"server/main.go:315",'
              '"msg":"exit requested, shutting down","signal":"interrupt","force":false}')
INFO = "2026-12-01T00:39:08.750Z\tINFO\tlivekit\trouting/interfaces.go:181\tusing single-node"
WARN = "2026-12-01T00:39:08.750Z\tWARN\tlivekit.transport\trtc/transport.go:1\tice failed"
QUIET = DrainWatch(level="warn")


def test_the_drain_line_is_told_from_the_forced_stop_and_other_lines() -> None:
    assert QUIET.is_drain(DRAIN) and QUIET.is_drain(DRAIN_JSON)
    assert not QUIET.is_drain(FORCED) and not QUIET.is_drain(INFO)


def test_at_warn_only_the_drain_line_of_the_raised_info_lines_is_printed() -> None:
    assert QUIET.show(DRAIN) and QUIET.show(WARN) and QUIET.show("goroutine 1 [running]:")
    assert not QUIET.show(INFO) and not QUIET.show(FORCED)
    assert not QUIET.show('{"level":"info","msg":"participant active"}')
    loud = DrainWatch(level="debug")
    assert loud.config() == {} and loud.show(INFO)  # info shows the line by itself


def test_the_config_raises_the_root_only_and_keeps_the_templates_components(
        tmp_path: Path) -> None:
    template = tmp_path / "livekit.yaml"
    template.write_text(yaml.safe_dump({"log_level": "warn", "logging": {
        "component_levels": {"pion": "error"}}}))
    watch = DrainWatch.for_template(template)
    cfg = watch.config()
    assert watch.level == "warn" and cfg["log_level"] == "info"
    assert cfg["logging"]["level"] == "info"
    levels = cfg["logging"]["component_levels"]
    assert "pion" not in levels and levels["transport"] == "warn" and levels["room"] == "warn"


@given(st.text(max_size=300), st.sampled_from(["debug", "info", "warn", "error", "bogus"]))
def test_any_line_is_classified_without_error(line: str, level: str) -> None:
    watch = DrainWatch(level=level)
    assert isinstance(watch.show(line), bool) and isinstance(watch.is_drain(line), bool)
    if watch.is_drain(line):
        assert watch.show(line)


async def test_the_supervisor_ends_a_drain_begun_by_an_outside_signal(
        capsys: pytest.CaptureFixture[str]) -> None:
    """The stand-in drains on its first signal like livekit-server: sent from outside,
    the supervisor signals it again at once; the info line the config did not ask for is
    not printed, the warning is."""
    spec = ChildSpec(name="sfu", argv=[sys.executable, str(HELPERS / "draining_server.py")],
                     show_line=QUIET.show, draining_line=QUIET.is_drain)
    child = Child(spec, lambda s: s)
    await child.start()
    try:
        await asyncio.sleep(0.5)
        assert child.proc is not None
        t0 = time.monotonic()
        os.kill(child.proc.pid, signal.SIGTERM)
        await asyncio.wait_for(child.proc.wait(), 3)
        took = time.monotonic() - t0
    finally:
        await child.stop()
    out = capsys.readouterr().out
    assert took < 1.0, f"{took:.2f} s"
    assert child.proc.returncode == 0
    assert "exit requested" in out and "a warning" in out
    assert "starting LiveKit server" not in out


def test_the_real_livekit_server_logs_its_drain_and_nothing_else_shows(
        tmp_path: Path) -> None:
    """livekit-server itself, on the config ``up`` renders: its first SIGTERM's line is
    seen as a drain, and at warn no other line of a quiet start and stop is printed. A
    new livekit-server that moves or rewords the line fails here."""
    s: Settings = fresh_settings()
    watch = DrainWatch.for_template(s.livekit_config_template)
    assert watch.raised, "the local template logs at info: nothing to raise"
    config = livekit_server.render_config(s, tmp_path / "livekit.yaml", extra=watch.config())
    argv, env = livekit_server.command(s, config)
    proc = subprocess.Popen(argv, env={**os.environ, **env}, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        time.sleep(1.5)
        proc.send_signal(signal.SIGTERM)  # nobody in a room: the drain ends at once
        out, _ = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
    lines = out.splitlines()
    assert [line for line in lines if watch.is_drain(line)], out
    assert [line for line in lines if watch.show(line)] == \
        [line for line in lines if watch.is_drain(line)], out
