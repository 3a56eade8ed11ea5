"""What the avatar says: the host's notes, conversational turns, a grounded LLM.

No pipecat here (``broadcaster ask`` loads it in well under a second); the bot's
pipeline adapter is broadcaster/bot/responder.py.

- :mod:`.notes`      the notes' markdown → topics, fallback, conversation phrases
- :mod:`.text`       normalizing transcripts, stemming, everyday synonyms
- :mod:`.acts`       conversational acts (greeting, thanks, hold on, go on, ...)
- :mod:`.qtypes`     the kind of answer a question wants (a time, a price, a person)
- :mod:`.encoder`    sentence embeddings (bge-small and MiniLM, int8 ONNX; optional)
- :mod:`.lexical`    word-level signals (stems, synonyms, BM25, WordLlama near words)
- :mod:`.retrieval`  scoring the topics for a question
- :mod:`.answerer`   the decisions: a turn in, a :class:`Reply` out
- :mod:`.llm`        an OpenAI-compatible LLM grounded in the best topics
"""

from broadcaster.answers.answerer import Answerer, Dialogue, Reply, build_answerer
from broadcaster.answers.llm import GroundedLLM, build_llm
from broadcaster.answers.notes import Notes, NotesError, load_notes, parse_notes

__all__ = ["Answerer", "Dialogue", "GroundedLLM", "Notes", "NotesError", "Reply",
           "build_answerer", "build_llm", "load_notes", "parse_notes"]
