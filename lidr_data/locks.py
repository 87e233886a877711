"""Advisory locks between lidr processes: one build per run folder, one writer at a time per store dataset.

A lock is `flock` on a `.lock` file holding the owner's pid (for the message). The kernel releases it when the
owner exits, killed or not, so a stale lock cannot outlive its process. Locks are re-entrant within a process
(`lidr build` holds its run folder across build and materialize, both of which take it).
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from lidr_data.errors import LidrError

LOCK_FILE = ".lock"
_held: dict[str, int] = {}  # lock file -> how many times this process holds it


def _owner(fd: int) -> str:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        text = ""
    return text if text.isdigit() else "?"


@contextmanager
def hold(folder: str | Path, what: str, wait_s: float = 0.0, optional: bool = False) -> Iterator[Path | None]:
    """Hold the lock of `folder` (created if missing). If another process holds it, wait up to `wait_s` seconds,
    then fail with "another WHAT (pid N) holds FOLDER". `optional`: a folder where no lock file can be made
    (read-only: nobody can be writing there either) is used without one."""
    folder = Path(folder)
    path = folder / LOCK_FILE
    key = os.path.realpath(path)
    if key in _held:
        _held[key] += 1
        try:
            yield path
        finally:
            _held[key] -= 1
        return
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except PermissionError:
        if not optional:
            raise LidrError(f"{folder}: cannot create the lock file {path} (no write permission)") from None
        yield None
        return
    try:
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise LidrError(f"another {what} (pid {_owner(fd)}) holds {folder}: wait for it to finish "
                                    f"(the lock, {path}, goes when that process ends)") from None
                time.sleep(0.05)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        _held[key] = 1
        try:
            yield path
        finally:
            del _held[key]
    finally:
        os.close(fd)  # releases the flock
