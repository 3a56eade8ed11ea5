"""One continuous fragmented MP4 per webinar, appended to by every bot run.

FFmpeg writes fragmented MP4 (``frag_keyframe+empty_moov+default_base_moof``): an
``ftyp`` and a ``moov`` with no samples, then one ``moof`` + ``mdat`` pair per keyframe
interval, each self-contained (data offsets relative to its own ``moof``). So a file
stays playable up to its last complete fragment whatever happens to the process, and a
later run can go on in the same file: :class:`FragmentAppender` is the file object
FFmpeg writes to. It keeps the first run's ``ftyp``/``moov``, drops later runs' (same
tracks, same codec settings: checked before a run continues a file) and the
``mfra`` index FFmpeg adds at close, and shifts every fragment's decode time
(``tfdt``) so that time 0 of the file is the time in its name: a restart leaves a
gap in the timeline as long as the bot was away, and the captions' WebVTT lines up
with the whole file. A crash leaves at most a half-written fragment at the end;
the next run cuts it off before appending (:func:`scan`).
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

Buffer = bytes | bytearray | memoryview

_CONTAINERS = {b"moov", b"trak", b"mdia", b"minf", b"stbl", b"moof", b"traf", b"mvex"}


def boxes(data: Buffer, start: int = 0, end: int | None = None,
          ) -> Iterator[tuple[bytes, int, int, int]]:
    """Yield ``(type, offset, size, header)`` of each complete box in ``data[start:end]``."""
    end = len(data) if end is None else end
    pos = start
    while pos + 8 <= end:
        size, kind = struct.unpack_from(">I4s", data, pos)
        header = 8
        if size == 1:
            if pos + 16 > end:
                return
            (size,) = struct.unpack_from(">Q", data, pos + 8)
            header = 16
        elif size == 0:
            size = end - pos
        if size < header or pos + size > end:
            return
        yield kind, pos, size, header
        pos += size


def find(data: Buffer, path: list[bytes], start: int = 0,
         end: int | None = None) -> Iterator[tuple[int, int, int]]:
    """Yield ``(offset, size, header)`` of every box at ``path`` (e.g. moov/trak/tkhd)."""
    for kind, pos, size, header in boxes(data, start, end):
        if kind != path[0]:
            continue
        if len(path) == 1:
            yield pos, size, header
        elif kind in _CONTAINERS:
            yield from find(data, path[1:], pos + header, pos + size)


def track_info(moov: bytes) -> dict[int, tuple[int, bytes]]:
    """Track id -> (timescale, sample description bytes) of a ``moov``."""
    out: dict[int, tuple[int, bytes]] = {}
    for pos, size, header in find(moov, [b"moov", b"trak"]):
        body = pos + header
        tid, scale, stsd = 0, 0, b""
        for p, _, h in find(moov, [b"tkhd"], body, pos + size):
            version = moov[p + h]
            tid = struct.unpack_from(">I", moov, p + h + (20 if version == 1 else 12))[0]
        for p, _, h in find(moov, [b"mdia", b"mdhd"], body, pos + size):
            version = moov[p + h]
            scale = struct.unpack_from(">I", moov, p + h + (20 if version == 1 else 12))[0]
        for p, s, _ in find(moov, [b"mdia", b"minf", b"stbl", b"stsd"], body, pos + size):
            stsd = bytes(moov[p : p + s])
        out[tid] = (scale, stsd)
    return out


def scan(f: BinaryIO) -> tuple[int, bytes | None, int]:
    """(bytes up to the last complete fragment, the ``ftyp``+``moov``, fragments seen).

    Reads box headers only (and the small ``moov``), seeking over the media: cheap on
    an hour-long file.
    """
    f.seek(0, os.SEEK_END)
    end = f.tell()
    pos, good, fragments = 0, 0, 0
    init: bytes | None = None
    pending_moof = False
    while pos + 8 <= end:
        f.seek(pos)
        head = f.read(16)
        size, kind = struct.unpack_from(">I4s", head)
        if size == 1 and len(head) == 16:
            (size,) = struct.unpack_from(">Q", head, 8)
        elif size == 0:
            size = end - pos
        if size < 8 or pos + size > end:
            break
        if kind == b"moov":
            f.seek(0)
            init = f.read(pos + size)
            good = pos + size
        elif kind == b"moof":
            pending_moof = True
        elif kind == b"mdat" and pending_moof:
            pending_moof = False
            good = pos + size
            fragments += 1
        pos += size
    return (good if init is not None else 0), init, fragments


def video_size(init: bytes) -> tuple[int, int] | None:
    """Return the picture size in a ``moov``'s video track header (None: no video)."""
    for pos, size, _ in find(init, [b"moov", b"trak", b"tkhd"]):
        width, height = struct.unpack_from(">II", init, pos + size - 8)
        if width and height:
            return width >> 16, height >> 16
    return None


def continuable(path: Path, size: tuple[int, int]) -> bool:
    """Whether a run of this picture ``size`` can go on in ``path`` (fragmented, same size)."""
    try:
        with path.open("rb") as f:
            _, init, _ = scan(f)
    except OSError:
        return False
    if init is None or not any(True for _ in find(init, [b"moov", b"mvex"])):
        return False
    return video_size(init) == size


class IncompatibleRecording(RuntimeError):
    """The new run's tracks differ from the file's (another size or codec)."""


class FragmentAppender:
    """A write-only file object for FFmpeg that appends a run to a continuous file.

    Args:
        path: the webinar's file (created 0600 if missing; cut after its last complete
            fragment if a crash left half of one).
        offset_s: seconds from the file's time 0 to this run's time 0.
    """

    def __init__(self, path: Path, offset_s: float) -> None:
        self.path = path
        self.offset_s = max(0.0, offset_s)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        if os.fstat(fd).st_mode & 0o777 != 0o600:
            os.fchmod(fd, 0o600)
        self._file = os.fdopen(fd, "r+b")
        good, init, fragments = scan(self._file)
        self._existing = track_info(init) if init is not None else None
        self._file.truncate(good)
        self._file.seek(good)
        self._seq = fragments + 1
        self._tracks: dict[int, tuple[int, bytes]] = self._existing or {}
        self._buf = bytearray()
        self.fragments_written = 0

    @property
    def appending(self) -> bool:
        """Whether this run goes on in a file that already had a run."""
        return self._existing is not None

    def write(self, data: bytes) -> int:
        """Take FFmpeg's bytes; whole boxes go to the file as they complete."""
        self._buf += data
        used = 0
        for kind, pos, size, header in boxes(self._buf):
            self._box(kind, memoryview(self._buf)[pos : pos + size], header)
            used = pos + size
        if used:
            del self._buf[:used]
        return len(data)

    def _box(self, kind: bytes, box: memoryview, header: int) -> None:
        if kind in (b"ftyp", b"free", b"skip"):
            if not self.appending:
                self._file.write(box)
        elif kind == b"moov":
            tracks = track_info(bytes(box))
            if self.appending:
                if tracks != self._existing:
                    raise IncompatibleRecording("this run's tracks differ from the file's")
            else:
                self._tracks = tracks
                self._file.write(box)
        elif kind == b"moof":
            moof = bytearray(box)
            self._shift(moof)
            self._file.write(moof)
        elif kind == b"mdat":
            self._file.write(box)
            self._file.flush()
            self.fragments_written += 1
        # mfra (the index FFmpeg writes at close) and anything else: dropped

    def _shift(self, moof: bytearray) -> None:
        """Renumber the fragment after the file's; move its decode times by the offset."""
        for pos, _, header in find(moof, [b"moof", b"mfhd"]):
            struct.pack_into(">I", moof, pos + header + 4, self._seq)
        self._seq += 1
        for pos, size, header in find(moof, [b"moof", b"traf"]):
            tid = 0
            for p, _, h in find(moof, [b"tfhd"], pos + header, pos + size):
                tid = struct.unpack_from(">I", moof, p + h + 4)[0]
            scale = self._tracks.get(tid, (0, b""))[0]
            shift = round(self.offset_s * scale)
            for p, _, h in find(moof, [b"tfdt"], pos + header, pos + size):
                if moof[p + h] == 1:
                    (t,) = struct.unpack_from(">Q", moof, p + h + 4)
                    struct.pack_into(">Q", moof, p + h + 4, t + shift)
                else:
                    (t,) = struct.unpack_from(">I", moof, p + h + 4)
                    struct.pack_into(">I", moof, p + h + 4, min(t + shift, 2**32 - 1))

    def close(self) -> None:
        """Flush to disk (a half box FFmpeg never finished is left out)."""
        if self._file.closed:
            return
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
