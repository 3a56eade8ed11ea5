"""Operations: ``/readyz`` (k8s readiness) and the JSON log format.

Real livekit-server (the session's) and a real web app; LiveKit "down" is a web app
pointed at a port where nothing listens, the store "down" is its database closed.
"""

from __future__ import annotations

import json

import pytest
from loguru import logger

from broadcaster.config import Settings
from broadcaster.config.checks import validate
from broadcaster.config.sources import ConfigError
from broadcaster.logs import child_line, configure_logging
from broadcaster.netutil import free_port
from tests.fixtures_web import serving


async def test_readyz_says_ready_when_livekit_and_the_store_answer(livekit: Settings):
    async with serving(livekit.replace(web_port=free_port())) as c:
        r = await c.call("GET", "/readyz")
        assert r.status == 200
        assert r.data == {"ready": True, "checks": {"livekit": "ok", "store": "ok"},
                          "failed": []}


async def test_readyz_names_the_store_when_it_fails(livekit: Settings):
    async with serving(livekit.replace(web_port=free_port())) as c:
        c.store().close()
        r = await c.call("GET", "/readyz")
        assert r.status == 503 and r.data["failed"] == ["store"]
        assert r.data["checks"]["livekit"] == "ok"
        assert (await c.call("GET", "/healthz")).status == 200  # alive, just not ready


async def test_readyz_names_livekit_when_it_is_gone(livekit: Settings):
    dead = livekit.replace(web_port=free_port(), livekit_url=f"ws://127.0.0.1:{free_port()}")
    async with serving(dead) as c:
        r = await c.call("GET", "/readyz")
        assert r.status == 503 and r.data["failed"] == ["livekit"]
        assert r.data["checks"]["store"] == "ok"
        assert dead.livekit_api_secret not in r.text and "127.0.0.1" not in r.text


def test_json_log_lines_are_json_and_scrubbed(livekit: Settings, capsys):
    s = livekit.replace(log_format="json")
    configure_logging(s)
    try:
        logger.info(f"joining with secret {s.livekit_api_secret} and ?token=abc.def.ghi")
        try:
            raise ValueError(f"boom {s.livekit_api_secret}")
        except ValueError:
            logger.exception("it failed")
    finally:
        logger.remove()
        logger.add(lambda m: None)  # pytest's own capture takes over again
    lines = [json.loads(x) for x in capsys.readouterr().err.splitlines()]
    assert [x["level"] for x in lines] == ["INFO", "ERROR"]
    assert {"time", "level", "name", "message"} <= lines[0].keys()
    assert s.livekit_api_secret not in json.dumps(lines)
    assert "abc.def.ghi" not in lines[0]["message"]
    assert "ValueError" in lines[1]["exception"]
    # a child's JSON line keeps its fields and says which process; a text line is wrapped
    child = json.loads(child_line("bot", json.dumps({"level": "INFO", "message": "hi"}), "json"))
    assert child == {"process": "bot", "level": "INFO", "message": "hi"}
    assert json.loads(child_line("livekit", "plain {text", "json")) == {
        "process": "livekit", "message": "plain {text"}
    assert child_line("web", "hello", "text") == "web | hello\n"


@pytest.mark.parametrize("bad", ["JSON", "yaml", "", "text "])
def test_a_bad_log_format_is_refused_by_name(livekit: Settings, bad: str):
    with pytest.raises(ConfigError, match="log_format"):
        validate(livekit.replace(log_format=bad))
