"""The phrase cache on disk, so a restarted bot speaks its notes without re-synthesizing them.

Synthesizing every answer of the notes ahead costs a restarted bot ~10 s of CPU on 2
cores, right when it is opening its avatar session. The sentences are saved once,
in one file whose name is a digest of what the audio depends on: the answers' text
(the notes), the voice, and the versions of Piper and broadcaster. Notes, voice or
version change: a new name, the old file is never read again (and is removed).

Writes are safe: a temporary file in the same 0700 directory, fsync, rename over,
0600 like recordings. A file that does not parse is ignored (and removed).
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path

from loguru import logger

import broadcaster
from broadcaster.atomic_file import write_atomic

MAGIC = b"BCPHRASE1\n"
SUFFIX = ".phrases"


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "?"


def store_key(texts: Iterable[str], voice: str) -> str:
    """Digest of what the cached audio depends on: texts, voice, Piper and our version."""
    h = hashlib.sha256()
    for part in (voice, _version("piper-tts"), broadcaster.__version__, *sorted(set(texts))):
        h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()[:32]


class PhraseStore:
    """One directory of phrase files; ``load`` and ``save`` the sentences of one key."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)

    def path(self, key: str) -> Path:
        """Return the file of ``key``."""
        return self.directory / f"{key}{SUFFIX}"

    def load(self, key: str) -> dict[str, tuple[bytes, ...]]:
        """Return the saved sentences of ``key`` ({} when none or unreadable)."""
        path = self.path(key)
        try:
            data = path.read_bytes()
        except OSError:
            return {}
        try:
            return decode(data)
        except ValueError as exc:
            logger.warning(f"phrase cache {path.name} unreadable ({exc}); removed")
            path.unlink(missing_ok=True)
            return {}

    def save(self, key: str, phrases: dict[str, tuple[bytes, ...]]) -> None:
        """Write ``phrases`` as ``key``'s file atomically; remove other keys' files."""
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.directory, 0o700)
        path = self.path(key)
        write_atomic(path, encode(phrases), durable=True)
        for other in self.directory.glob(f"*{SUFFIX}"):
            if other != path:
                other.unlink(missing_ok=True)


def encode(phrases: dict[str, tuple[bytes, ...]]) -> bytes:
    """Serialize: magic, a JSON index (sentence -> chunk sizes), then the chunks."""
    index = [[text, [len(c) for c in chunks]] for text, chunks in phrases.items()]
    head = json.dumps(index).encode()
    body = b"".join(c for chunks in phrases.values() for c in chunks)
    return MAGIC + struct.pack("<Q", len(head)) + head + body


def decode(data: bytes) -> dict[str, tuple[bytes, ...]]:
    """Parse :func:`encode`'s output; ValueError when it is not one."""
    try:
        return _decode(data)
    except (struct.error, TypeError) as exc:
        raise ValueError(str(exc)) from exc


def _decode(data: bytes) -> dict[str, tuple[bytes, ...]]:
    if not data.startswith(MAGIC):
        raise ValueError("not a phrase file")
    (size,) = struct.unpack_from("<Q", data, len(MAGIC))
    start = len(MAGIC) + 8
    index = json.loads(data[start:start + size])
    pos, out = start + size, {}
    if not isinstance(index, list):
        raise ValueError("bad index")
    for entry in index:
        text, sizes = entry
        if not isinstance(text, str) or not all(isinstance(n, int) and n >= 0 for n in sizes):
            raise ValueError("bad entry")
        chunks = []
        for n in sizes:
            if pos + n > len(data):
                raise ValueError("truncated")
            chunks.append(data[pos:pos + n])
            pos += n
        out[text] = tuple(chunks)
    if pos != len(data):
        raise ValueError("trailing bytes")
    return out
