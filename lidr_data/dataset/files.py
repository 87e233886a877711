"""File-system helpers of the dataset package: hashing, flushing, read-only bits and temporary folders.

A version is assembled in a hidden `.tmp-<pid>-<random>-<version>` folder beside its destination, flushed, made
read-only and renamed into place (see `store.move_into_place`); a killed writer leaves only its temporary folder,
which the next writer removes once that pid is gone.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import uuid
from pathlib import Path

_WRITE_BITS = stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def fsync_tree(folder: Path) -> None:
    """Flush file contents before the rename publishes them (a crash must not leave a version of empty files)."""
    for path in folder.rglob("*"):
        if path.is_file():
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)


def make_read_only(folder: Path) -> None:
    """Drop every write bit under `folder` (files and folders, `folder` included): a version is immutable."""
    for path in [*sorted(folder.rglob("*"), reverse=True), folder]:
        if not path.is_symlink():
            path.chmod(path.stat().st_mode & ~_WRITE_BITS)


def make_writable(folder: Path) -> None:
    """Give the owner write permission again under `folder` (before deleting or replacing a version)."""
    if not folder.exists():
        return
    folder.chmod(folder.stat().st_mode | stat.S_IWUSR | stat.S_IXUSR)
    for path in folder.rglob("*"):
        if not path.is_symlink():
            path.chmod(path.stat().st_mode | stat.S_IWUSR | (stat.S_IXUSR if path.is_dir() else 0))


def remove_tree(folder: Path) -> None:
    """Delete a folder that may be a read-only version (or a half-written one)."""
    if folder.is_symlink() or not folder.exists():
        return
    make_writable(folder)
    shutil.rmtree(folder, ignore_errors=True)


def temp_dir_name(version: str) -> str:
    """`.tmp-<pid>-<random>-<version>`: the pid tells a later run whether the writer is still alive."""
    return f".tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}-{version}"


def cleanup_stale_temps(dataset_dir: Path) -> None:
    """Remove `.tmp-*` folders whose writer process is gone (a killed materialize or publish)."""
    if not dataset_dir.is_dir():
        return
    for child in dataset_dir.iterdir():
        if not (child.is_dir() and child.name.startswith(".tmp-")):
            continue
        pid = child.name.split("-")[1]
        if pid.isdigit() and int(pid) != os.getpid() and _alive(int(pid)):
            continue
        if pid.isdigit() and int(pid) == os.getpid():
            continue
        remove_tree(child)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
