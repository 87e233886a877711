"""Stores and references.

A *reference* is what users type to name a dataset version; the same string works for `lidr versions`,
`lidr verify`, `lidr sql`, `lidr inspect` and the trainer:

- a local version folder (`store/quickstart/iter-1`), or a dataset folder plus a version (`store/quickstart@iter-1`);
- a local dataset folder or store folder alone (`store/quickstart`, `store`): the versions it holds (for `versions`),
  or its newest version (for commands that read one version);
- a folder of Parquet files without a manifest (a run folder, eval results): read as tables, no version;
- a Hub dataset `org/name@revision` (revision = a version tag, branch or commit; `main` when omitted).

The local store is a plain folder: `<store>/<dataset name>/<version>/{data/, README.md, manifest.json}`, and per
dataset an append-only `index.jsonl` (one line per version made: name, content id, time), written beside the
versions so that editing a manifest cannot change the id recorded for it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from lidr_data.errors import LidrError

MANIFEST = "manifest.json"
CARD = "README.md"
INDEX = "index.jsonl"
DEFAULT_STORE = "store"

# One path component: no slashes, no "..", no leading dot or dash (hidden files, option look-alikes).
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")
_HUB_ID = re.compile(r"^(?P<repo>[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*)(?:@(?P<rev>[^\s]+))?$")


def check_name(name: str, what: str = "name") -> str:
    """A dataset or version name used as one folder name (and a Hub tag): reject `..`, slashes and oddities."""
    if not isinstance(name, str) or not _NAME.match(name) or ".." in name:
        raise LidrError(
            f"invalid {what} {name!r}: use letters, digits, '.', '_' and '-' (no slashes, no '..', "
            "not starting with '.' or '-')"
        )
    return name


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


def is_version_dir(path: Path) -> bool:
    return (path / MANIFEST).is_file()


def read_manifest(version_dir: Path) -> dict:
    """The manifest of a version folder, with a clear error when it is missing or malformed."""
    path = Path(version_dir) / MANIFEST
    if not path.is_file():
        raise LidrError(f"{version_dir}: no {MANIFEST} (not a dataset version)")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise LidrError(f"{path}: malformed manifest ({e})") from None
    required = {"schema_version": int, "name": str, "version": str, "files": dict, "counts": dict, "configs": dict}
    if not isinstance(manifest, dict):
        raise LidrError(f"{path}: malformed manifest (expected a JSON object)")
    for key, typ in required.items():
        if not isinstance(manifest.get(key), typ):
            raise LidrError(f"{path}: malformed manifest (field {key!r} missing or not a {typ.__name__})")
    for rel, entry in manifest["files"].items():
        if not isinstance(entry, dict) or not isinstance(entry.get("sha256"), str) or not safe_relpath(rel):
            raise LidrError(f"{path}: malformed manifest (bad entry for file {rel!r})")
    return manifest


def content_id(manifest: dict) -> str:
    """A version's content id: the sha256 of its canonical manifest (sorted keys, no whitespace, UTF-8).

    The manifest lists every file's sha256, so the id pins the data, the card and every recorded setting. It is
    kept where the manifest cannot change it silently (the store's index, the Hub tag message, a training run's
    `train_manifest.json`) and keys every cache of a loaded version.
    """
    canonical = json.dumps(manifest, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def record_version(dataset_dir: Path, version: str, cid: str, replaced: bool = False) -> None:
    """Append a version's content id to the dataset's index (callers hold the dataset's lock)."""
    line = {"version": version, "content_id": cid, "recorded_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    if replaced:
        line["replaced"] = True
    with open(Path(dataset_dir) / INDEX, "a", encoding="utf-8") as f:
        f.write(json.dumps(line) + "\n")
        f.flush()
        os.fsync(f.fileno())


def recorded_content_id(version_dir: Path) -> str | None:
    """The content id the dataset's index recorded for this version (the latest line), or None if none."""
    index = Path(version_dir).parent / INDEX
    if not index.is_file():
        return None
    found = None
    for line in index.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(entry, dict) and entry.get("version") == Path(version_dir).name:
            found = entry.get("content_id") if isinstance(entry.get("content_id"), str) else None
    return found


def safe_relpath(rel: str) -> bool:
    """A path inside a version folder: relative, forward slashes, no `..` or empty parts."""
    parts = rel.split("/")
    return bool(rel) and not rel.startswith("/") and "\\" not in rel and all(p not in ("", ".", "..") for p in parts)


def list_versions(dataset_dir: Path) -> list[Path]:
    """Version folders directly inside a dataset folder, oldest first (by manifest creation time, then name)."""
    found = []
    for child in sorted(Path(dataset_dir).iterdir()):
        if child.is_dir() and not child.name.startswith(".") and is_version_dir(child):
            try:
                created = read_manifest(child).get("created_at", "")
            except LidrError:
                created = ""
            found.append((created, child.name, child))
    return [p for _, _, p in sorted(found)]


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
        from lidr_data.dataset.hub import download

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
