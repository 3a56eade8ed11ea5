"""Write a file so a crash at any moment leaves the old contents or the new, never half.

Used by the caches and state files that a restarted process reads back (the phrase
cache, the embeddings cache, the web app's list of rooms with a bot): one way of doing
it instead of a copy in each.
"""

from __future__ import annotations

import os
from pathlib import Path


def write_atomic(path: Path, data: bytes, *, mode: int = 0o600, durable: bool = False) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and a rename.

    The temporary name carries the pid, so two processes writing the same cache never
    share one. ``durable`` also fsyncs before the rename (a power cut keeps the new data,
    not only a consistent file). Raises ``OSError``; the temporary file never outlives it.
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            if durable:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
