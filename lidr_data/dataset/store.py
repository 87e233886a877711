"""Stores and references.

A *reference* is what users type to name a dataset version; the same string works for `lidr versions`,
`lidr verify`, `lidr sql`, `lidr inspect` and the trainer:

- a local version folder (`store/quickstart/iter-1`), or a dataset folder plus a version (`store/quickstart@iter-1`);
- a local dataset folder or store folder alone (`store/quickstart`, `store`): the versions it holds (for `versions`),
  or its newest version (for commands that read one version);
- a folder of Parquet files without a manifest (a run folder, eval results): read as tables, no version;
- a Hub dataset `org/name@revision` (revision = a version tag, branch or commit; `main` when omitted).

The local store is a plain folder: `<store>/<dataset name>/<version>/{data/, README.md, manifest.json}` plus each
dataset's `index.jsonl` (see `layout.py`). `move_into_place` is the one way a complete version enters a store.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from lidr_data import locks
from lidr_data.dataset.hub import download
from lidr_data.dataset.layout import (
    INDEX,
    MANIFEST,
    check_name,
    content_id,
    is_version_dir,
    list_versions,
    read_manifest,
    record_version,
)
from lidr_data.errors import LidrError
from lidr_data.files import disk_full, make_read_only, make_writable, no_space_error, swap_into_place

DEFAULT_STORE = "store"
STORE_LOCK_WAIT_S = 60.0  # the dataset lock is held only for the final check and rename: a wait is short

_HUB_ID = re.compile(r"^(?P<repo>[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*)(?:@(?P<rev>[^\s]+))?$")


def check_revision(rev: str) -> str:
    """A Hub revision (tag, branch or commit): branch names may hold single slashes, never `..` or empty parts."""
    parts = rev.split("/")
    if ".." in rev or any(not p for p in parts) or any(not re.match(r"^[A-Za-z0-9._-]+$", p) for p in parts):
        raise LidrError(f"invalid revision {rev!r} (no '..', no empty or odd path parts)")
    return rev


def default_store(workdir: str | Path | None = None) -> Path:
    """`WORKDIR/store/` (WORKDIR defaults to the current folder, or $LIDR_WORKDIR)."""
    workdir = Path(workdir if workdir is not None else os.environ.get("LIDR_WORKDIR", "."))
    return workdir / DEFAULT_STORE


@dataclass(frozen=True)
class Reference:
    """A parsed reference: a local path (`path`, optionally `version`) or a Hub repo (`repo_id`, `revision`)."""

    text: str
    path: Path | None = None
    version: str | None = None
    repo_id: str | None = None
    revision: str | None = None

    @property
    def is_hub(self) -> bool:
        return self.repo_id is not None

    def __str__(self) -> str:
        return self.text


def parse_reference(text: str) -> Reference:
    """Local path first (it exists), then `PATH@VERSION`, then a Hub id `org/name[@revision]`."""
    if not text or not text.strip():
        raise LidrError("empty dataset reference")
    path = Path(text).expanduser()
    if path.exists():
        return Reference(text, path=path)
    base, at, version = text.rpartition("@")
    if at and base and Path(base).expanduser().is_dir():
        return Reference(text, path=Path(base).expanduser(), version=check_name(version, "version"))
    m = _HUB_ID.match(text)
    looks_local = text.startswith((".", "/", "~")) or text.split("@")[0].count("/") != 1
    if m and not looks_local:
        org, name = m.group("repo").split("/")
        check_name(org, "Hub namespace")
        check_name(name, "dataset name")
        rev = m.group("rev")
        return Reference(text, repo_id=m.group("repo"), revision=check_revision(rev) if rev else None)
    raise LidrError(
        f"unknown reference {text!r}: no such local path, and not a Hub dataset id of the form org/name@revision"
    )


def local_version_dir(ref: Reference) -> Path | None:
    """The version folder a local reference names, or None for a plain Parquet folder (no manifest)."""
    assert ref.path is not None
    path = ref.path
    if ref.version is not None:
        candidate = path / ref.version
        if not is_version_dir(candidate):
            names = [p.name for p in list_versions(path)] if path.is_dir() else []
            raise LidrError(f"{path}: no version {ref.version!r} (versions: {', '.join(names) or 'none'})")
        return candidate
    if path.is_file():
        raise LidrError(f"{path}: a reference names a folder (a version, a dataset or a folder of Parquet files)")
    if is_version_dir(path):
        return path
    versions = list_versions(path)
    if versions:
        return versions[-1]
    return None


def resolve(ref: str | Reference) -> tuple[Reference, Path, bool]:
    """(reference, local folder, is_version). Hub references are downloaded into the Hub cache first."""
    ref = parse_reference(ref) if isinstance(ref, str) else ref
    if ref.is_hub:
        folder = download(ref.repo_id, ref.revision)
        return ref, folder, is_version_dir(folder)
    version_dir = local_version_dir(ref)
    if version_dir is not None:
        return ref, version_dir, True
    return ref, ref.path, False


def resolve_version(ref: str | Reference) -> Path:
    """The local folder of the dataset version a reference names; an error for anything else."""
    ref, folder, is_version = resolve(ref)
    if not is_version:
        raise LidrError(f"{ref}: not a dataset version (no {MANIFEST}, no versions inside)")
    return folder


def store_folder_of(path: str | Path) -> Path | None:
    """The store folder a file written at `path` would land in: a version folder (its manifest, its data), a
    dataset folder (its `index.jsonl`, its audits) or a Hub dataset in the Hub cache; None when outside all.

    Both the path as typed and the path with symlinks resolved are checked: a link into a version is caught by
    the second, a path through a Hub snapshot (whose files link to the cache's blobs) by the first."""
    typed = Path(os.path.abspath(Path(path).expanduser()))
    for candidate in dict.fromkeys((typed, typed.resolve())):
        for folder in (candidate, *candidate.parents):
            if is_version_dir(folder) or _is_dataset_dir(folder) or (
                    folder.name.startswith("datasets--") and (folder / "snapshots").is_dir()):
                return folder
    return None


def _is_dataset_dir(folder: Path) -> bool:
    """A dataset folder of a store: its index beside at least one version (an unrelated index.jsonl is not one)."""
    if not (folder / INDEX).is_file():
        return False
    try:
        return any(is_version_dir(child) for child in folder.iterdir() if child.is_dir())
    except OSError:
        return False


def move_into_place(tmp: Path, final: Path, force: bool = False, notify: Callable[[str], None] | None = None) -> str:
    """Make a complete version folder read-only and rename it to its final name; return its content id.

    Under the dataset's lock: an existing version is refused unless `force`, and then exchanged with the new one
    in one step and deleted after (`files.swap_into_place`), so readers never see a missing or half version
    (`notify` hears of it). The content id is appended to the dataset's index *before* the version becomes
    visible: a version in the store always has its id recorded, so tampering with it is detected. If the append
    fails (a full disk) or the rename does, the index is cut back to what it held and no version appears; a
    writer killed between the two leaves a line for a version that did not change (`verify` then reports the
    old version's manifest as altered: run the replacement again).
    """
    cid = content_id(read_manifest(tmp))
    make_read_only(tmp)
    try:
        with locks.hold(final.parent, "writer of this dataset", wait_s=STORE_LOCK_WAIT_S):
            replaced = final.exists() or final.is_symlink()
            if replaced:
                if not force:
                    raise LidrError(f"version {final} already exists (versions are immutable; pass --force to "
                                    "replace it)")
                if notify is not None:
                    notify(f"--force: replacing existing version {final}")
            _record_then_swap(tmp, final, cid, replaced)
    except BaseException:
        if tmp.exists():
            make_writable(tmp)  # the caller removes it
        raise
    return cid


def _record_then_swap(tmp: Path, final: Path, cid: str, replaced: bool) -> None:
    index = final.parent / INDEX
    size = index.stat().st_size if index.is_file() else None
    new_inode = tmp.stat().st_ino
    try:
        record_version(final.parent, final.name, cid, replaced=replaced)
        swap_into_place(tmp, final)
    except BaseException as e:
        try:
            visible = final.stat().st_ino == new_inode
        except OSError:
            visible = False
        if not visible:  # cut the line (or the half line a full disk left) back out: truncating needs no space
            if size is None:
                index.unlink(missing_ok=True)
            else:
                os.truncate(index, size)
        if isinstance(e, Exception) and not isinstance(e, LidrError) and disk_full(e):
            raise no_space_error(final, f"version {final}") from e
        raise
