"""File and SQL-text helpers shared by every layer (it imports nothing of the package, so anything may use it).

Versions: a version is assembled in a hidden `.tmp-<pid>-<random>-<version>` folder beside its destination,
flushed (`fsync_tree`), made read-only and renamed into place (`dataset.store.move_into_place`); a killed writer
leaves only its temporary folder, which the next writer removes once that pid is gone (`cleanup_stale_temps`).

Atomic writes: a file is written under a temporary name beside its target (`.NAME.tmp-<pid>`, so a reader
never sees a half-written file and a killed writer's leftovers are recognisable) and renamed into place;
`remove_stale_temps` clears what a killed process left. SQL quoting: one function per kind of quoted text.

A full disk (`disk_full`: ENOSPC or EDQUOT, however a library words it) while writing is one line,
`no_space_error`, naming the path: the atomic writers here leave nothing half-written behind, so a rerun after
freeing space continues.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import shutil
import stat
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from lidr_data.errors import LidrError  # errors.py imports nothing: no cycle

# `.NAME.tmp-<pid>` (temp_path); `.NAME.part-<pid>` is what earlier versions wrote: still recognised as stale.
_TEMP_NAME = re.compile(r"^\..+\.(?:tmp|part)-(\d+)$")


def temp_path(path: str | Path) -> Path:
    """The temporary name beside `path` that this process writes before renaming."""
    path = Path(path)
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


_FULL_ERRNOS = {errno.ENOSPC, errno.EDQUOT}
# How libraries that do not raise OSError say it: SQLite (SQLITE_FULL), safetensors and Rust I/O ("os error 28"),
# Arrow ("[errno 28]"), DuckDB.
_FULL_WORDS = ("no space left on device", "disk quota exceeded", "database or disk is full", "os error 28",
               "errno 28", "os error 122", "errno 122")


def disk_full(exc: BaseException | None) -> bool:
    """Whether `exc`, or an exception it was raised from, says the device or the quota is full."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in _FULL_ERRNOS:
            return True
        if any(words in str(exc).lower() for words in _FULL_WORDS):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def _free_bytes(path: Path) -> int | None:
    for folder in (path, *path.parents):
        try:
            return shutil.disk_usage(folder).free
        except OSError:
            continue
    return None


def no_space_error(path: str | Path | None, what: str | None = None, detail: str | None = None) -> LidrError:
    """The one-line error for a full device while writing `path` (`what`: how to name it, default the path;
    `detail`: what the library said, when the path is unknown)."""
    if path is None:
        said = f" ({detail})" if detail else ""
        return LidrError(f"no space left on the device being written to{said}: free some space and run the same "
                         "command again (finished steps are kept)")
    path = Path(path)
    free = _free_bytes(path)
    left = f", {free // 1024} KiB free" if free is not None else ""
    return LidrError(f"no space left on the device holding {what or path}{left}: nothing half-written was kept; "
                     "free some space and run the same command again")


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
    except Exception as e:
        if not isinstance(e, LidrError) and disk_full(e):
            raise no_space_error(targets[0] if len(targets) == 1 else targets[0].parent) from e
        raise
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


def json_text(obj: object, where: str | Path, **options: object) -> str:
    """`obj` as JSON text, refusing NaN and infinities (`json.dumps` would write bare `NaN`, which no JSON reader
    accepts): a ValueError naming `where` (a caller's bug, not a user's: inputs are checked when read)."""
    try:
        return json.dumps(obj, ensure_ascii=False, allow_nan=False, **options)
    except ValueError as e:
        raise ValueError(f"{where}: {e} (NaN or infinity); nothing written") from None


def write_json_atomic(path: str | Path, obj: object, fsync: bool = False) -> Path:
    return write_text_atomic(path, json_text(obj, path, indent=2) + "\n", fsync=fsync)


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


_AT_FDCWD, _RENAME_EXCHANGE = -100, 2
_renameat2 = None  # libc's renameat2, looked up once; False where there is none


def exchange_paths(a: Path, b: Path) -> bool:
    """Swap two existing paths in one step with Linux's `renameat2(RENAME_EXCHANGE)` (kernel 3.15+, glibc 2.28+,
    ext4/xfs/btrfs/tmpfs and most local file systems). False where that is unavailable (another OS, an old libc,
    a file system that refuses the flag): the caller falls back to two renames."""
    global _renameat2
    if _renameat2 is None:
        _renameat2 = False
        if sys.platform.startswith("linux"):
            try:
                import ctypes

                fn = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None)
            except OSError:
                fn = None
            if fn is not None:
                fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
                fn.restype = ctypes.c_int
                _renameat2 = fn
    if _renameat2 is False:
        return False
    import ctypes

    if _renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):  # the file system or kernel cannot exchange
        return False
    raise OSError(err, os.strerror(err), str(a), None, str(b))


def swap_into_place(tmp: Path, final: Path) -> bool:
    """Rename a complete folder `tmp` to `final`; returns whether something was replaced. Callers hold the
    folder's lock.

    An existing `final` is exchanged with `tmp` in one step (`exchange_paths`) and then deleted: a reader of
    `final` sees the old folder or the new one, never a missing or half one. Where the exchange is unavailable
    (not Linux, or a file system without RENAME_EXCHANGE) the old folder is renamed aside and the new one renamed
    in: `final` is never half old, half new, but for the moment between the two renames it is missing."""
    replaced = final.exists() or final.is_symlink()
    if not replaced:
        tmp.rename(final)
        return False
    if exchange_paths(tmp, final):
        remove_tree(tmp)  # it holds the old folder now
        return True
    old = final.parent / temp_dir_name(f"old-{final.name}")
    final.rename(old)
    tmp.rename(final)
    remove_tree(old)
    return True


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


def sql_literal(value: str | Path) -> str:
    """A DuckDB string literal: 'it''s' (paths, texts, regular expressions)."""
    return "'" + str(value).replace("'", "''") + "'"


def sql_literal_list(values) -> str:
    """A DuckDB list of string literals: ['a', 'b'] (e.g. the files of `read_parquet`)."""
    return "[" + ", ".join(sql_literal(v) for v in values) + "]"


def sql_ident(name: str) -> str:
    """A DuckDB quoted identifier (view, table and column names), inner double quotes doubled."""
    return '"' + str(name).replace('"', '""') + '"'


def portable(value: object, workdir: Path) -> object:
    """A local path as it may be published: relative to the work folder when inside it, else its last part.
    Hub ids (`org/name`), packaged paths (`lidr:...`), relative paths and non-strings pass unchanged."""
    if not isinstance(value, str) or not value.startswith(("/", "~")):
        return value
    path = Path(value).expanduser()
    try:
        return path.resolve().relative_to(workdir.resolve()).as_posix() or "."
    except ValueError:
        return path.name or value
