"""File and SQL-text helpers shared by every layer (it imports nothing of the package, so anything may use it).

Atomic writes: a file is written under a temporary name beside its target (`.NAME.tmp-<pid>`, so a reader
never sees a half-written file and a killed writer's leftovers are recognisable) and renamed into place;
`remove_stale_temps` clears what a killed process left. SQL quoting: one function per kind of quoted text.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

# `.NAME.tmp-<pid>` (temp_path); `.NAME.part-<pid>` is what earlier versions wrote: still recognised as stale.
_TEMP_NAME = re.compile(r"^\..+\.(?:tmp|part)-(\d+)$")


def temp_path(path: str | Path) -> Path:
    """The temporary name beside `path` that this process writes before renaming."""
    path = Path(path)
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def atomic_paths(*paths: str | Path, fsync: bool = False) -> Iterator[list[Path]]:
    """Yield a temporary path per target; when the block succeeds, rename each onto its target in the order
    given (put the file that marks completion last). On error the targets are untouched and the temporaries
    removed. `fsync` flushes each file to disk before its rename (for files that must survive a crash)."""
    targets = [Path(p) for p in paths]
    tmps = [temp_path(p) for p in targets]
    for target in targets:
        target.parent.mkdir(parents=True, exist_ok=True)
    try:
        yield tmps
        for tmp, target in zip(tmps, targets):
            if fsync:
                _fsync(tmp)
            os.replace(tmp, target)
    finally:
        for tmp in tmps:
            tmp.unlink(missing_ok=True)


@contextmanager
def atomic_path(path: str | Path, fsync: bool = False) -> Iterator[Path]:
    """`atomic_paths` for one file: write to the yielded path; it replaces `path` when the block succeeds."""
    with atomic_paths(path, fsync=fsync) as (tmp,):
        yield tmp


def write_text_atomic(path: str | Path, text: str, fsync: bool = False) -> Path:
    with atomic_path(path, fsync=fsync) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_json_atomic(path: str | Path, obj: object, fsync: bool = False) -> Path:
    return write_text_atomic(path, json.dumps(obj, indent=2, ensure_ascii=False) + "\n", fsync=fsync)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def remove_stale_temps(folder: str | Path) -> list[Path]:
    """Remove the temporary files that a killed writer left in `folder` (its pid is gone); return them.

    A file of a live process (another build writing, or this one) is left alone."""
    folder = Path(folder)
    removed: list[Path] = []
    if not folder.is_dir():
        return removed
    for child in folder.iterdir():
        m = _TEMP_NAME.match(child.name)
        if m and child.is_file() and int(m.group(1)) != os.getpid() and not _alive(int(m.group(1))):
            child.unlink(missing_ok=True)
            removed.append(child)
    return removed


def sql_literal(value: str | Path) -> str:
    """A DuckDB string literal: 'it''s' (paths, texts, regular expressions)."""
    return "'" + str(value).replace("'", "''") + "'"


def sql_ident(name: str) -> str:
    """A DuckDB quoted identifier (view, table and column names), inner double quotes doubled."""
    return '"' + str(name).replace('"', '""') + '"'
