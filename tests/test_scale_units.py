"""The scale benches' own arithmetic, on made-up inputs: the frame recorder's window,
the load tool's source addresses, CPU readings, the cluster's config and node IDs."""

from __future__ import annotations

import pytest

from bench import procstat
from bench.frame_recorder import summarize
from bench.loadtool import source_addrs
from broadcaster import livekit_cluster, livekit_server


def test_frame_recorder_counts_distinct_frames_in_the_window() -> None:
    # 10 s at 25 fps: 720p for 4 s, then 180p; every frame delivered twice (repeats)
    frames = [(100.0 + i / 25, i, 1280, 720) if i < 100 else (100.0 + i / 25, i, 320, 180)
              for i in range(250) for _ in range(2)]
    rec = {"join_s": 99.5, "end_s": 110.0, "frames": frames}
    out = summarize(rec, settle=5.0)
    assert out["fps"] == pytest.approx(25.0, abs=0.3)  # repeats are not counted twice
    assert out["size"] == "320x180" and out["height"] == 180
    assert "1280x720" not in out["sizes"]  # the window starts after the settle time
    assert [c["height"] for c in out["size_changes"]] == [720, 180]
    assert out["first_frame_ms"] == pytest.approx(500.0)
    assert summarize({"join_s": 0, "end_s": 5, "frames": []}, 1)["fps"] == 0.0


def test_source_addresses_cover_the_count_over_several_subnets() -> None:
    assert source_addrs(3) == "127.0.1.1-127.0.1.3"
    assert source_addrs(300) == "127.0.1.1-127.0.1.254,127.0.2.1-127.0.2.46"


def test_cores_from_two_readings() -> None:
    a = procstat.Reading(10.0, {"sfu": 5.0, "gone": 1.0})
    b = procstat.Reading(12.0, {"sfu": 6.0, "gone": None})
    assert procstat.cores(a, b) == {"sfu": 0.5, "gone": None}


def test_classify_names_the_stack_processes() -> None:
    argv = {1: ["/x/.tools/bin/livekit-server", "--config", "c.yaml"],
            2: ["/v/python", "-m", "broadcaster.bot", "--room", "demo"],
            3: ["/v/python", "-m", "broadcaster", "serve", "avatar"],
            4: ["/usr/bin/redis-server", "*:6379"]}
    orig = procstat.argv
    procstat.argv = lambda pid: argv.get(pid, [])  # type: ignore[assignment]
    try:
        assert procstat.classify([1, 2, 3, 4, 5]) == {"sfu": 1, "bot": 2, "avatar": 3,
                                                      "redis": 4}
    finally:
        procstat.argv = orig  # type: ignore[assignment]


def test_cluster_node_config_adds_redis_and_loopback_candidates() -> None:
    extra = livekit_cluster.node_extra("127.0.0.1:6390", {"rtc": {"tcp_port": 0}})
    assert extra["redis"] == {"address": "127.0.0.1:6390"}
    assert extra["rtc"] == {"node_ip": "127.0.0.1", "use_external_ip": False,
                            "enable_loopback_candidate": True, "tcp_port": 0}
    merged = livekit_server.merge({"rtc": {"udp_port": 1, "node_ip": "x"}, "port": 2}, extra)
    assert merged["rtc"]["udp_port"] == 1 and merged["rtc"]["node_ip"] == "127.0.0.1"
    assert merged["port"] == 2 and merged["redis"]["address"] == "127.0.0.1:6390"


def test_node_id_is_read_from_livekit_startup_lines() -> None:
    console = ('2026-11-30T02:40:25Z\tINFO\tlivekit\tservice/server.go:292\tstarting LiveKit '
               'server\t{"portHttp": 7880, "nodeID": "ND_it5WVvh9a7yN", "nodeIP": "127.0.0.1"}')
    m = livekit_cluster.NODE_ID_RE.search(console)
    assert m is not None and m.group(1) == "ND_it5WVvh9a7yN"


async def test_a_lost_rooms_handlers_move_to_the_new_room() -> None:
    """StageKeeper moves pipecat's (and the bot's) room handlers to the stage room it
    joins again: the lost room's late events reach nobody, the new room's reach them all."""
    from livekit import rtc

    from broadcaster.sdk_internals import give_room_handlers, take_room_handlers

    heard: list[str] = []
    old, new = rtc.Room(), rtc.Room()
    old.on("room_metadata_changed", lambda _o, n: heard.append(f"meta {n}"))
    old.on("disconnected", lambda *_: heard.append("disconnected"))
    handlers = take_room_handlers(old)
    old.emit("disconnected", "late")
    assert heard == []
    give_room_handlers(new, handlers)
    give_room_handlers(new, handlers)  # twice: still one call each (a set of callbacks)
    new.emit("room_metadata_changed", "", "x")
    new.emit("disconnected", "now")
    assert heard == ["meta x", "disconnected"]
    assert take_room_handlers(new) and take_room_handlers(new) == {}
