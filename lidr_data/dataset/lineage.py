"""Lineage: the version a new version comes from (its parent) and the model that generated it, passed explicitly.

The parent is never guessed from what a store happens to hold: a build names it (`lidr build --parent REF`, the
recipe's `parent:`), and it is resolved and verified at the start of the build, before any generation. The
records written here go into manifests, which are published: every local path in them is portable (relative to
the work folder, or just a name), never an absolute path of this machine.
"""

from __future__ import annotations

import json
from pathlib import Path

from lidr_data.dataset.hub import published_content_id
from lidr_data.dataset.layout import MANIFEST, content_id, read_manifest, verify
from lidr_data.dataset.store import parse_reference, resolve_version
from lidr_data.errors import LidrError
from lidr_data.files import portable, sha256_file

TRAIN_MANIFEST = "train_manifest.json"  # written by `lidr train` (train/output.py) into every model it makes


def portable_version(folder: Path, workdir: str | Path) -> str:
    """A local version folder as it may be published: relative to the work folder when inside it, else
    `dataset/version` (no local layout is published)."""
    folder = Path(folder).expanduser().resolve()
    text = str(portable(str(folder), Path(workdir)))
    return f"{folder.parent.name}/{folder.name}" if text == folder.name else text


def parent_record(ref: str, workdir: str | Path) -> dict:
    """Resolve and verify the version `ref` names (a version folder, `store/name@version`, `org/name@revision`)
    and return what a manifest records about it as its parent:
    {reference (portable), name, version, content_id, manifest_sha256} (+ commit for a Hub reference).

    A reference that does not resolve, or a version that fails `verify`, is a LidrError naming the reference.
    """
    try:
        reference = parse_reference(ref)
        folder = resolve_version(reference)
        expected = None
        if reference.is_hub:  # the id its publishing commit recorded (a local version: the store's index)
            expected = published_content_id(reference.repo_id, reference.revision)
        result = verify(folder, expected_content_id=expected)
        if not result.ok:
            shown = "; ".join(result.problems[:3]) + (" ..." if len(result.problems) > 3 else "")
            raise LidrError(f"the version fails verification ({shown})")
        manifest = read_manifest(folder)
    except LidrError as e:
        message = str(e)
        message = message[len(ref) + 2:] if message.startswith(f"{ref}: ") else message  # the reference once
        raise LidrError(f"parent {ref}: {message}") from None
    if reference.is_hub:
        text = reference.text
    else:
        text = portable_version(folder, workdir)
    record = {"reference": text, "name": manifest["name"], "version": manifest["version"],
              "content_id": content_id(manifest), "manifest_sha256": sha256_file(folder / MANIFEST)}
    if reference.is_hub:  # a Hub snapshot lies in .../snapshots/<commit>/
        record["commit"] = folder.name
    return record


def model_record(model: str, revision: str | None, workdir: str | Path, folder: str | Path | None = None) -> dict:
    """What a manifest records about a generator model: its path (portable) or Hub id, its revision and, when
    its folder holds a `train_manifest.json` (a model made by `lidr train`), that file's sha256 and the dataset
    version it was trained on. `folder` is where the model lies when `model` is not a path (lidr:tiny-model)."""
    record: dict = {"model": portable(model, Path(workdir)), "revision": revision}
    local = Path(folder) if folder is not None else Path(model).expanduser()
    path = local / TRAIN_MANIFEST
    if not path.is_file():
        return record
    record["train_manifest_sha256"] = sha256_file(path)
    try:
        dataset = json.loads(path.read_text(encoding="utf-8")).get("dataset")
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
        dataset = None  # the hash still pins the file; what it says cannot be read
    if isinstance(dataset, dict):
        ref = dataset.get("reference")
        record["trained_on"] = {
            "reference": portable(ref, Path(workdir)) if isinstance(ref, str) else ref,
            **{k: dataset.get(k) for k in ("name", "version", "content_id", "commit")},
        }
    else:
        record["trained_on"] = None
    return record
