"""Settings: precedence, clear errors naming the bad value, secrets kept out of sight."""

import stat
from pathlib import Path

import pytest

from broadcaster.config import ConfigError, Settings


def test_defaults_work_locally(tmp_path):
    s = Settings.load(env={}, state_dir=str(tmp_path))
    assert s.managed_livekit and s.effective_livekit_url == "ws://127.0.0.1:7880"
    assert s.effective_liveavatar_api_url == "http://127.0.0.1:8090/v1"
    assert len(s.livekit_api_secret) >= 32  # livekit-server refuses shorter secrets


def test_generated_secrets_persist_with_private_mode(tmp_path):
    a = Settings.load(env={}, state_dir=str(tmp_path))
    b = Settings.load(env={}, state_dir=str(tmp_path))
    assert a.livekit_api_secret == b.livekit_api_secret and a.host_key == b.host_key
    mode = (tmp_path / "secrets" / "host_key").stat().st_mode
    assert stat.S_IMODE(mode) == 0o600


def test_precedence_file_then_env_then_override(tmp_path):
    cfg = tmp_path / "b.toml"
    cfg.write_text('web_port = 9001\ntoken_ttl_seconds = 600\nviewers_hidden = false\n')
    s = Settings.load(cfg, env={"BROADCASTER_WEB_PORT": "9002"}, state_dir=str(tmp_path))
    assert (s.web_port, s.token_ttl_seconds, s.viewers_hidden) == (9002, 600, False)
    s = Settings.load(cfg, env={"BROADCASTER_WEB_PORT": "9002"}, state_dir=str(tmp_path),
                      web_port=9003)
    assert s.web_port == 9003


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({"BROADCASTER_WEB_PORT": "eighty"}, "BROADCASTER_WEB_PORT='eighty'"),
        ({"BROADCASTER_WEB_PORT": "70000"}, "web_port=70000"),
        ({"LIVEKIT_URL": "http://x"}, "LIVEKIT_URL='http://x'"),
        ({"LIVEKIT_URL": "wss://lk.example.com"}, "LIVEKIT_API_SECRET"),
        ({"BROADCASTER_VIEWERS_HIDDEN": "maybe"}, "BROADCASTER_VIEWERS_HIDDEN='maybe'"),
        ({"BROADCASTER_VIDEO_CODEC": "AV2"}, "video_codec='AV2'"),
        ({"BROADCASTER_VIDEO_SVC": "L9T9"}, "video_svc='L9T9'"),
        ({"BROADCASTER_AUDIENCE_SHARDS": "65"}, "audience_shards=65"),
        ({"BROADCASTER_AUDIENCE_SHARDS": "-1"}, "audience_shards=-1"),
        ({"BROADCASTER_SHARD_CAPACITY": "0"}, "shard_capacity=0"),
        ({"BROADCASTER_AUDIENCE_SHARDS": "2", "BROADCASTER_AVATAR_MODE": "direct"},
         "audience_shards needs avatar_mode=relay"),
        ({"BROADCASTER_VIDEO_SVC": "L3T1", "BROADCASTER_VIDEO_SIMULCAST": "true"},
         "video_svc and video_simulcast"),
        ({"BROADCASTER_TOKEN_TTL_SECONDS": "5"}, "token_ttl_seconds=5"),
        ({"BROADCASTER_AVATAR_MODE": "p2p"}, "avatar_mode='p2p'"),
        ({"BROADCASTER_AVATAR_MODE": "direct", "BROADCASTER_RECORD": "true"},
         "needs avatar_mode=relay"),
        ({"BROADCASTER_LIVEKIT_PUBLIC_URL": "https://lk.example.com"}, "livekit_public_url"),
        ({"BROADCASTER_STT_BEAM_SIZE": "0"}, "stt_beam_size=0"),
        ({"BROADCASTER_QUESTIONS_PER_MINUTE": "0"}, "questions_per_minute=0"),
        ({"BROADCASTER_TRUSTED_PROXIES": "10.0.0.0/8, proxy.lan"}, "'proxy.lan'"),
        ({"BROADCASTER_JOIN_BURST": "0"}, "join_burst=0"),
        ({"BROADCASTER_QUESTION_RATE_PER_MINUTE": "-1"}, "question_rate_per_minute=-1"),
        ({"BROADCASTER_IDENTITY_CLAIM_SECONDS": "60"}, "identity_claim_seconds=60"),
        ({"BROADCASTER_FLOOR_RECONCILE_SECONDS": "-2"}, "floor_reconcile_seconds=-2"),
        ({"BROADCASTER_HTTP_IDLE_TIMEOUT_SECONDS": "0"}, "http_idle_timeout_seconds=0"),
        ({"BROADCASTER_AVATAR_MAX_PENDING_SESSIONS": "0"}, "avatar_max_pending_sessions=0"),
    ],
)
def test_bad_values_name_themselves(tmp_path, env, needle):
    with pytest.raises(ConfigError, match=None) as err:
        Settings.load(env=env, state_dir=str(tmp_path))
    assert needle in str(err.value)


def test_bad_file_is_named(tmp_path):
    cfg = tmp_path / "bad.toml"
    cfg.write_text("nonsense_setting = 1\n")
    with pytest.raises(ConfigError, match="nonsense_setting"):
        Settings.load(cfg, env={}, state_dir=str(tmp_path))
    with pytest.raises(ConfigError, match="does not exist"):
        Settings.load(tmp_path / "nope.toml", env={}, state_dir=str(tmp_path))


def test_repr_and_env_handoff(tmp_path):
    s = Settings.load(env={"HEYGEN_LIVE_AVATAR_API_KEY": "hg-key-123456"}, state_dir=str(tmp_path))
    assert "hg-key-123456" not in repr(s) and s.livekit_api_secret not in repr(s)
    assert s.use_heygen and s.effective_liveavatar_api_url.startswith("https://api.liveavatar")
    again = Settings.load(env=s.child_env())
    assert again == s


def test_heygen_key_with_local_url_keeps_local_service(tmp_path):
    s = Settings.load(env={"HEYGEN_LIVE_AVATAR_API_KEY": "k" * 10,
                           "BROADCASTER_LIVEAVATAR_API_URL": "http://127.0.0.1:9/v1"},
                      state_dir=str(tmp_path))
    assert not s.use_heygen and s.liveavatar_key == s.avatar_api_key


def test_trusted_proxies_parse_addresses_and_networks(tmp_path: Path) -> None:
    s = Settings.load(env={"BROADCASTER_TRUSTED_PROXIES": " 127.0.0.1, ::1 ,10.1.2.0/24,"},
                      state_dir=str(tmp_path))
    assert [str(n) for n in s.trusted_proxy_networks] == ["127.0.0.1/32", "::1/128",
                                                         "10.1.2.0/24"]
    assert Settings.load(env={}, state_dir=str(tmp_path)).trusted_proxy_networks == ()


@pytest.mark.parametrize("env, needle", [
    ({"LIVEKIT_URL": "wss://lk.example.com", "LIVEKIT_API_SECRET":
      "change-me-to-a-random-secret-of-at-least-32-characters"}, "LIVEKIT_API_SECRET"),
    ({"BROADCASTER_HOST_KEY": "change-me-host-key"}, "BROADCASTER_HOST_KEY"),
    ({"BROADCASTER_AVATAR_API_KEY": "Change-Me-avatar-key"}, "BROADCASTER_AVATAR_API_KEY"),
    ({"BROADCASTER_HOST_KEY": "hunter2"}, "BROADCASTER_HOST_KEY has 7 characters"),
])
def test_example_placeholders_and_guessable_host_keys_are_refused(tmp_path, env, needle):
    """The deploy examples are public: a secret kept from them is anyone's (issue: red team)."""
    with pytest.raises(ConfigError) as err:
        Settings.load(env=env, state_dir=str(tmp_path))
    assert needle in str(err.value)
    assert not any(v in str(err.value) for v in env.values() if "example.com" not in v)
    ok = Settings.load(env={"BROADCASTER_HOST_KEY": "x" * 16}, state_dir=str(tmp_path))
    assert ok.host_key == "x" * 16
