"""Load a dataset version as a `datasets.Dataset`, keyed by its content, never by its name.

`datasets.load_dataset(<version folder>, "all")` caches under the folder's *name* and the config: two different
local versions both called `iter-1` return the first one's rows from the cache. `load_version` resolves the
reference (local folder, `store/name@version`, Hub `org/name@revision`), refuses a version that fails `verify`,
and reads exactly the Parquet files its manifest lists, with a `datasets` cache folder named after the version's
content id (the sha256 of its canonical manifest). Two versions share cached rows only when their manifests, hence
every file hash, are identical.

This module imports `datasets` at call time only, so `import lidr_data` stays light.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from lidr_data.dataset.layout import content_id, read_manifest, verify
from lidr_data.dataset.lineage import portable_version
from lidr_data.dataset.store import Reference, parse_reference, resolve_version
from lidr_data.errors import LidrError

if TYPE_CHECKING:
    import datasets

DROPPED = "dropped"
REQUIRED_COLUMNS = ("prompt", "chosen", "rejected")


@dataclass(frozen=True)
class OpenedVersion:
    """A resolved and verified version: where it lies, what it is, and how to name it in lineage records."""

    reference: Reference
    folder: Path
    manifest: dict
    content_id: str
    commit: str | None  # the Hub commit a Hub reference resolved to (None for local versions)

    @property
    def subsets(self) -> list[str]:
        return sorted(self.manifest["configs"])

    def lineage(self, workdir: str | Path | None = None) -> dict:
        """What a consumer records about the version it used (train_manifest.json, model cards), which it may
        publish: a local version is named relative to `workdir` (default: the current directory) when inside
        it, else `dataset/version`, never by an absolute path of this machine; its content id identifies it."""
        ref = self.reference
        local = None if ref.is_hub else portable_version(self.folder, Path.cwd() if workdir is None else workdir)
        typed_path = not ref.is_hub and ref.text.startswith(("/", "~"))
        return {
            "reference": local if typed_path else ref.text,
            "repo_id": ref.repo_id,
            "revision": ref.revision or ("main" if ref.is_hub else None),
            "commit": self.commit,
            "path": local,
            "name": self.manifest["name"],
            "version": self.manifest["version"],
            "content_id": self.content_id,
            "license": self.manifest.get("license"),
        }


def open_version(ref: str | Reference) -> OpenedVersion:
    """Resolve a reference to one version and verify every file hash and count; a failing version is refused."""
    reference = parse_reference(ref) if isinstance(ref, str) else ref
    folder = resolve_version(reference)
    result = verify(folder)
    if not result.ok:
        shown = "; ".join(result.problems[:3]) + (" ..." if len(result.problems) > 3 else "")
        raise LidrError(f"{reference}: the version fails verification ({shown}); refusing to load it")
    manifest = read_manifest(folder)
    # A Hub snapshot lies in .../snapshots/<commit sha>/: the folder name is the commit the revision resolved to.
    commit = folder.name if reference.is_hub else None
    return OpenedVersion(reference, folder, manifest, content_id(manifest), commit)


def subset_files(opened: OpenedVersion, subset: str) -> list[Path]:
    """The Parquet files of one config of a version, with clear errors for `dropped` and unknown subsets."""
    if subset == DROPPED:
        raise LidrError(f"{opened.reference}: the `dropped` subset holds rows removed by the pipeline, not "
                        "training pairs; choose `all` or a language")
    configs = opened.manifest["configs"]
    if subset not in configs:
        choices = ", ".join(c for c in sorted(configs) if c != DROPPED)
        raise LidrError(f"{opened.reference}: no subset {subset!r} (subsets: {choices})")
    return [opened.folder / rel for rel in configs[subset]]


def cache_root() -> Path:
    """Where `datasets` keeps prepared Arrow files (honours HF_DATASETS_CACHE / HF_HOME, read at call time)."""
    import datasets.config

    return Path(os.environ.get("HF_DATASETS_CACHE") or datasets.config.HF_DATASETS_CACHE)


def load_opened(opened: OpenedVersion, subset: str = "all", cache_dir: str | Path | None = None) -> datasets.Dataset:
    """Load one subset of an opened version; the cache folder is named after the version's content id."""
    import datasets

    files = subset_files(opened, subset)
    rows = sum(opened.manifest["files"][f.relative_to(opened.folder).as_posix()].get("rows", 0) for f in files)
    if rows == 0:  # `datasets` refuses a split with no rows; an empty table with the version's columns it takes
        import pyarrow as pa
        import pyarrow.parquet as pq

        return datasets.Dataset(pa.concat_tables([pq.read_table(f) for f in files]))
    root = Path(cache_dir) if cache_dir is not None else cache_root()
    keyed = root / "lidr-versions" / opened.content_id / subset
    try:
        return datasets.load_dataset("parquet", data_files=[str(f) for f in files], split="train",
                                     cache_dir=str(keyed))
    except Exception as e:  # noqa: BLE001 (a verified version that still fails to load: say where)
        raise LidrError(f"{opened.reference}: subset {subset!r} does not load ({type(e).__name__}: "
                        f"{str(e).splitlines()[0] if str(e) else ''})") from None


def load_version(ref: str | Reference, subset: str = "all", cache_dir: str | Path | None = None) -> datasets.Dataset:
    """The `subset` (`all` or a language) of the dataset version `ref` names, as a `datasets.Dataset`.

    `ref` is any reference the CLI accepts: a version folder, `store/name@version`, or `org/name@revision` on the
    Hub. The version is verified first (a version whose files do not match its manifest is refused), and its rows
    are cached under its content id, so two different versions that share a name never share cached rows.
    """
    return load_opened(open_version(ref), subset, cache_dir)
