"""The host's notes: a markdown file parsed into topics, a fallback and conversation phrases.

The file format is documented in docs/notes.md. In short: every heading with text
under it is a topic (the heading is what people ask about, the text is what the
avatar says); a heading "Fallback" holds what the avatar says when nothing
matches; a heading "Conversation" holds subsections named after conversation
acts ("### greeting", "### thanks", ...) whose text replaces the built-in replies.
HTML comments are notes to the host, never said; one that starts with "asked:" lists
other ways people ask a topic (``<!-- asked: what does it cost? | is there a free tier -->``),
matched like its heading.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from broadcaster.config import ConfigError

DEFAULT_FALLBACK = (
    "That's a good question, and it isn't covered in today's notes. "
    "The host will pick it up during the open questions."
)

MAX_NOTES_BYTES = 1_000_000
"""Far more than a webinar's notes; a bigger file is a mistake (a log, a binary)."""

_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_ASKED = re.compile(r"<!--\s*asked\s*:(.*?)-->", re.S | re.I)
_ASKED_LINE = "\x00asked\x00"
"""Marks a line that holds a topic's phrasings while the rest of the comments are dropped."""
MAX_PHRASINGS = 20
"""Per topic: more is a list of keywords, which would make the topic match everything."""


def _phrasings(comment: str) -> str:
    """One marked line with the comment's phrasings ("|" or a new line between them)."""
    items = [re.sub(r"\s+", " ", p).strip() for p in re.split(r"[|\n]", comment)]
    return "\n" + _ASKED_LINE + "|".join(p for p in items if p) + "\n"


class NotesError(ConfigError):
    """The notes file is missing, unreadable or has nothing to answer from."""


@dataclass(frozen=True)
class Topic:
    """One topic of the notes: a heading and what to say about it."""

    title: str
    answer: str
    level: int
    asked: tuple[str, ...] = ()
    """Other ways people ask it, from the host's ``<!-- asked: ... -->``: matched like the
    heading, never said."""


@dataclass(frozen=True)
class Notes:
    """Everything the keyless responder says, as the host wrote it."""

    topics: tuple[Topic, ...]
    fallback: str = DEFAULT_FALLBACK
    conversation: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """Conversation act → the host's replies (in turn), from the "Conversation" section."""
    source: str = ""
    """Where they were read from (for messages)."""

    @property
    def markdown_free_text(self) -> str:
        """The topics as plain text, for an LLM's grounding."""
        return "\n\n".join(f"{t.title}\n{t.answer}" for t in self.topics)


def speakable(markdown: str) -> str:
    """Markdown body → plain sentences for TTS (list items become sentences)."""
    sentences: list[str] = []
    for raw in markdown.splitlines():
        item = re.match(r"^\s*(?:[-*+]|\d+[.)])\s+", raw)
        line = raw[item.end():] if item else raw
        line = line.strip().lstrip(">").strip()
        if not line or line.startswith(("```", "|")):
            continue
        line = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", line)  # links, images → their text
        line = re.sub(r"[*_`]+", "", line)
        if item and line[-1] not in ".!?:;":
            line += "."
        sentences.append(line)
    return re.sub(r"\s+", " ", " ".join(sentences)).strip()


def _items(markdown: str) -> tuple[str, ...]:
    """Split a conversation reply: one per list item, else the whole text as one."""
    lines = [ln for ln in markdown.splitlines() if ln.strip()]
    if lines and all(re.match(r"^\s*(?:[-*+]|\d+[.)])\s+", ln) for ln in lines):
        return tuple(s for s in (speakable(ln) for ln in lines) if s)
    text = speakable(markdown)
    return (text,) if text else ()


def _key(title: str) -> str:
    return re.sub(r"[^a-z_ ]+", "", title.lower()).strip().replace(" ", "_")


def parse_notes(markdown: str, source: str = "") -> Notes:
    """Parse the notes' markdown (see the module docstring)."""
    markdown = _ASKED.sub(lambda m: _phrasings(m.group(1)), markdown)
    markdown = re.sub(r"<!--.*?-->", "", markdown, flags=re.S)
    topics: list[Topic] = []
    fallback = DEFAULT_FALLBACK
    conversation: dict[str, tuple[str, ...]] = {}
    section = ""  # the level-2 (or higher) section a heading is in: "fallback", "conversation"
    title, level = "", 0
    body: list[str] = []
    asked: list[str] = []

    def close() -> None:
        nonlocal fallback
        text = "\n".join(body)
        name = _key(title)
        if level and name == "fallback":
            fallback = speakable(text) or fallback
        elif section == "conversation" and name != "conversation":
            replies = _items(text)
            if replies:
                conversation[name] = replies
        elif title and name != "conversation":
            answer = speakable(text)
            if answer:
                phrasings = tuple(dict.fromkeys(asked))[:MAX_PHRASINGS]
                topics.append(Topic(title=title, answer=answer, level=level, asked=phrasings))

    section_level = 0
    for line in markdown.splitlines():
        heading = _HEADING.match(line)
        if heading:
            close()
            level, title, body, asked = len(heading.group(1)), heading.group(2), [], []
            if section_level and level <= section_level:
                section, section_level = "", 0
            if _key(title) in ("conversation", "fallback") and not section_level:
                section, section_level = _key(title), level
        elif line.startswith(_ASKED_LINE):
            asked.extend(p for p in line[len(_ASKED_LINE):].split("|") if p)
        else:
            body.append(line)
    close()
    return Notes(topics=tuple(topics), fallback=fallback, conversation=conversation,
                 source=source)


def load_notes(path: str | Path) -> Notes:
    """Read and parse the notes file; a clear :class:`NotesError` naming it if unusable."""
    p = Path(path)
    try:
        size = p.stat().st_size
        if size > MAX_NOTES_BYTES and p.is_file():
            raise NotesError(f"notes file {str(p)!r} is {size} bytes; notes are at most "
                             f"{MAX_NOTES_BYTES // 1000} kB (what an avatar can say in a session)")
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise NotesError(f"notes file {str(p)!r} does not exist") from None
    except IsADirectoryError:
        raise NotesError(f"notes file {str(p)!r} is a directory, not a file") from None
    except UnicodeDecodeError:
        raise NotesError(f"notes file {str(p)!r} is not UTF-8 text") from None
    except OSError as exc:
        raise NotesError(f"notes file {str(p)!r} cannot be read: {exc.strerror}") from None
    notes = parse_notes(text, source=str(p))
    if not notes.topics:
        raise NotesError(f"notes file {str(p)!r} has no topics: it needs headings with "
                         "text under them (docs/notes.md)")
    return notes
