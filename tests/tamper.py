"""Altering a version on purpose (to test `verify` and error messages): versions are read-only on disk, so a test
first gives itself write permission on the file and its folder, as a user would have to."""

from __future__ import annotations

import stat
from pathlib import Path


def writable(path: Path) -> Path:
    """Make `path` (if it exists) and its folder writable by their owner; return `path`."""
    for p in (path.parent, path):
        if p.exists():
            p.chmod(p.stat().st_mode | stat.S_IWUSR)
    return path


def overwrite(path: Path, data: bytes | str) -> None:
    writable(path)
    if isinstance(data, str):
        path.write_text(data, encoding="utf-8")
    else:
        path.write_bytes(data)


def flip_byte(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    overwrite(path, bytes(data))
