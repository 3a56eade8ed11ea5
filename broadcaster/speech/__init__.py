"""Speech for the bot: VAD, STT and TTS that run with no key, and cloud replacements.

See docs/speech.md. ``make_stt`` / ``make_tts`` / ``make_vad`` read Settings.
"""

from broadcaster.speech.factory import make_stt, make_tts
from broadcaster.speech.vad import SpeakerVADProcessor, make_vad

__all__ = ["SpeakerVADProcessor", "make_stt", "make_tts", "make_vad"]
