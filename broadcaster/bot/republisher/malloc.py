"""glibc malloc tuning, so video-frame-sized buffers stop page-faulting.

A 720p I420 frame is 1.38 MB, RGB24 2.76 MB: above glibc's default mmap threshold,
so each allocation is a fresh mapping whose pages fault in on first touch (~10x the
cost of the copy itself; see bench/republish_hop.py).
"""

from __future__ import annotations

import ctypes
import ctypes.util

from loguru import logger

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD_BYTES = 16 * 1024 * 1024
TRIM_THRESHOLD_BYTES = 64 * 1024 * 1024
_malloc_tuned: bool | None = None


def tune_malloc() -> bool:
    """Stop glibc from mmap()ing and unmapping every video-frame-sized buffer.

    Raising the mmap threshold to 16 MiB and the trim threshold to 64 MiB keeps those
    buffers in the heap and reuses them. ``mallopt`` works at run time, so no
    re-exec or ``MALLOC_*_`` environment is needed (both have the same effect).
    Process-wide and idempotent; returns False where glibc is not available.
    """
    global _malloc_tuned
    if _malloc_tuned is not None:
        return _malloc_tuned
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        ok = bool(libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)) and bool(
            libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES)
        )
    except (OSError, AttributeError):
        ok = False
    _malloc_tuned = ok
    if not ok:
        logger.debug("mallopt not available; video buffers may page-fault (not glibc?)")
    return ok
