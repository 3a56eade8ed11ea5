"""The shard relay's settings, its command line and the server-sdk-go internal it uses.

No media here (tests/test_shard_weak_link.py runs the relay for real): ``shard_video``
is refused when malformed or when the stage has no layers to relay; ``auto`` picks the
relay only for a layered stage; each shard's relay joins the stage room under its own
identity (two under one would replace each other) and the shard as the stack's video
identity; and the built ``svcrelay`` still finds the SDK field it publishes through
(relay/svcrelay/sdk_internals.go).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import jwt
import pytest
from hypothesis import given
from hypothesis import strategies as st

from broadcaster.bot.shard_relay import SvcRelay, relay_binary, spatial_layers, use_relay
from broadcaster.config import ConfigError, Settings
from broadcaster.roles import RELAY_SUFFIX, stack_identities


def _load(tmp_path: Path, **kw: object) -> Settings:
    return Settings.load(env={}, state_dir=str(tmp_path), **kw)


@pytest.mark.parametrize("value", ["", "RELAY", "both", "relay "])
def test_shard_video_must_be_known(tmp_path: Path, value: str) -> None:
    with pytest.raises(ConfigError, match="shard_video"):
        _load(tmp_path, shard_video=value)


@pytest.mark.parametrize("svc", ["", "L1T3"])
def test_relay_needs_spatial_layers(tmp_path: Path, svc: str) -> None:
    with pytest.raises(ConfigError, match="spatial layers"):
        _load(tmp_path, shard_video="relay", video_svc=svc)


def test_auto_relays_only_a_layered_stage(tmp_path: Path) -> None:
    assert relay_binary(_load(tmp_path)), "svcrelay not built: bash relay/svcrelay/build.sh"
    assert not use_relay(_load(tmp_path))                       # one VP8 layer: encode once
    assert use_relay(_load(tmp_path, video_svc="L3T1"))
    assert not use_relay(_load(tmp_path, video_svc="L3T1", shard_video="encode_once"))
    # not built (or misnamed): auto falls back to encoding once
    assert not use_relay(_load(tmp_path, video_svc="L3T1", shard_relay_bin=str(tmp_path / "x")))


@given(st.sampled_from(["L1T1", "L2T1", "L3T1", "L3T3_KEY", "", "x"]))
def test_spatial_layers(mode: str) -> None:
    assert spatial_layers(mode) == (int(mode[1]) if mode.startswith("L") else 1)


def test_each_relay_joins_the_stage_as_itself(tmp_path: Path) -> None:
    s = _load(tmp_path, video_svc="L3T1")
    ids = []
    for shard in ("web--a1", "web--a2"):
        argv = SvcRelay(s, "web", shard, width=1280, height=720).argv()
        src = jwt.decode(argv[argv.index("-src-token") + 1], options={"verify_signature": False})
        dst = jwt.decode(argv[argv.index("-dst-token") + 1], options={"verify_signature": False})
        assert (src["video"]["room"], dst["video"]["room"]) == ("web", shard)
        assert dst["sub"] == s.bot_identity + RELAY_SUFFIX
        assert argv[argv.index("-from") + 1] == s.bot_identity
        assert argv[argv.index("-spatial") + 1] == "3"
        ids.append(src["sub"])
    assert len(set(ids)) == 2
    assert s.bot_identity + RELAY_SUFFIX in stack_identities(s)  # pages show its video


def test_svcrelay_finds_the_sdk_internal_it_uses(tmp_path: Path) -> None:
    binary = relay_binary(_load(tmp_path))
    assert binary, "svcrelay not built: bash relay/svcrelay/build.sh"
    out = subprocess.run([binary, "-check-sdk"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


def test_svcrelay_refuses_a_bad_command_line(tmp_path: Path) -> None:
    binary = relay_binary(_load(tmp_path))
    assert binary
    out = subprocess.run([binary, "-url", "ws://127.0.0.1:1"], capture_output=True, text=True,
                         timeout=30)
    assert out.returncode != 0 and "required" in out.stderr
    out = subprocess.run([binary, "-url", "ws://x", "-src-token", "a", "-dst-token", "b",
                          "-from", "c", "-spatial", "7"], capture_output=True, text=True,
                         timeout=30)
    assert out.returncode != 0 and "-spatial" in out.stderr
