"""The one atomic write: the old file or the new one, never half; no temporary left over."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from broadcaster.atomic_file import write_atomic


@settings(max_examples=40, deadline=None)
@given(first=st.binary(max_size=4096), second=st.binary(max_size=4096))
def test_the_file_holds_the_last_write_and_nothing_else_is_left(
    tmp_path_factory: pytest.TempPathFactory, first: bytes, second: bytes
) -> None:
    folder = tmp_path_factory.mktemp("atomic")
    path = folder / "state.json"
    write_atomic(path, first)
    write_atomic(path, second, durable=True)
    assert path.read_bytes() == second
    assert [p.name for p in folder.iterdir()] == ["state.json"]
    assert (path.stat().st_mode & 0o777) == 0o600


def test_a_failed_write_keeps_the_old_contents(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A write that fails at the rename (disk full, a crash) leaves the old file whole."""
    path = tmp_path / "cache.bin"
    write_atomic(path, b"old")

    def refuse(src: object, dst: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(OSError):
        write_atomic(path, b"new" * 1000)
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["cache.bin"]
