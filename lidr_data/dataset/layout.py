"""The layout of a dataset version: its files, its manifest (read, write, content id), the dataset's index of
content ids, the counts computed from its data, and `verify`.

Layout of a version (the Hub's dataset layout, so `datasets.load_dataset(folder_or_repo, config)` reads it):

    data/<lang>/train-00000-of-0000N.parquet   one config per prompt language
    data/all/...                               every pair
    data/dropped/...                           every dropped row with its stage and reason
    README.md                                  the dataset card (Hub YAML metadata + text)
    manifest.json                              counts, sha256 of every file, recipe, generator, lineage

A dataset folder holds its versions and an append-only `index.jsonl` (one line per version made: name, content
id, time), written beside the versions so that editing a manifest cannot change the id recorded for it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import duckdb
import pyarrow.parquet as pq

from lidr_data.errors import LidrError
from lidr_data.files import sha256_file, sql_literal_list
from lidr_data.readers import read_json

SCHEMA_VERSION = 1
MANIFEST = "manifest.json"
CARD = "README.md"
INDEX = "index.jsonl"
ALL, DROPPED = "all", "dropped"
# Audits of a version live beside it, in `<dataset>/audits/<version>/` (lidr_data/dataset/audits.py): never a version.
AUDITS = "audits"

# One path component: no slashes, no "..", no leading dot or dash (hidden files, option look-alikes).
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")


def check_name(name: str, what: str = "name") -> str:
    """A dataset or version name used as one folder name (and a Hub tag): reject `..`, slashes and oddities."""
    if not isinstance(name, str) or not _NAME.match(name) or ".." in name:
        raise LidrError(
            f"invalid {what} {name!r}: use letters, digits, '.', '_' and '-' (no slashes, no '..', "
            "not starting with '.' or '-')"
        )
    if what == "version" and name == AUDITS:
        raise LidrError(f"invalid version name {name!r}: a dataset folder keeps the audits of its versions there")
    return name


def safe_relpath(rel: str) -> bool:
    """A path inside a version folder: relative, forward slashes, no `..` or empty parts."""
    parts = rel.split("/")
    return bool(rel) and not rel.startswith("/") and "\\" not in rel and all(p not in ("", ".", "..") for p in parts)


def is_version_dir(path: Path) -> bool:
    return (path / MANIFEST).is_file()


def read_manifest(version_dir: Path) -> dict:
    """The manifest of a version folder, with a clear error when it is missing or malformed."""
    path = Path(version_dir) / MANIFEST
    if not path.is_file():
        raise LidrError(f"{version_dir}: no {MANIFEST} (not a dataset version)")
    manifest = read_json(path, "manifest")
    required = {"schema_version": int, "name": str, "version": str, "files": dict, "counts": dict, "configs": dict}
    if not isinstance(manifest, dict):
        raise LidrError(f"{path}: malformed manifest (expected a JSON object)")
    for key, typ in required.items():
        if not isinstance(manifest.get(key), typ):
            raise LidrError(f"{path}: malformed manifest (field {key!r} missing or not a {typ.__name__})")
    for rel, entry in manifest["files"].items():
        if not isinstance(entry, dict) or not isinstance(entry.get("sha256"), str) or not safe_relpath(rel):
            raise LidrError(f"{path}: malformed manifest (bad entry for file {rel!r})")
    # A manifest is written by whoever made (or published) the version: every path it names must stay inside the
    # version folder. Checked on the text alone, so the error never tells whether an outside file exists.
    for cfg, rels in manifest["configs"].items():
        if not isinstance(rels, list) or not all(isinstance(r, str) for r in rels):
            raise LidrError(f"{path}: malformed manifest (config {cfg!r}: expected a list of file paths)")
        for rel in rels:
            if not safe_relpath(rel):
                raise LidrError(f"{path}: config {cfg!r} names {rel!r}, a path outside the version folder; refused")
    return manifest


def _roots(version_dir: Path) -> list[Path]:
    """Where a version's files may lie once symlinks are resolved: the folder itself, and for a Hub snapshot
    (`<cache>/datasets--org--name/snapshots/<commit>/`, whose files are links to `../../blobs/<hash>`) the blobs
    folder of the same repository."""
    root = Path(version_dir).resolve()
    roots = [root]
    repo = root.parent.parent
    if root.parent.name == "snapshots" and repo.name.startswith("datasets--"):
        roots.append(repo / "blobs")
    return roots


def version_file(version_dir: Path, rel: str) -> Path:
    """The file `rel` (a path a manifest names) of a version, resolved through any symlink; a LidrError when it
    leads outside the version folder (or its Hub snapshot's blobs). Nothing is read, and the error is the same
    whether or not the outside file exists."""
    folder = Path(version_dir)
    if not safe_relpath(rel):
        raise LidrError(f"{folder}: the manifest names {rel!r}, a path outside the version folder; refused")
    target = (folder / rel).resolve()
    if not any(target.is_relative_to(root) for root in _roots(folder)):
        raise LidrError(f"{folder}: {rel} is a link that leads outside the version folder; refused")
    return target


def content_id(manifest: dict) -> str:
    """A version's content id: the sha256 of its canonical manifest (sorted keys, no whitespace, UTF-8).

    The manifest lists every file's sha256, so the id pins the data, the card and every recorded setting. It is
    kept where the manifest cannot change it silently (the store's index, the Hub tag message, a training run's
    `train_manifest.json`) and keys every cache of a loaded version.
    """
    canonical = json.dumps(manifest, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def write_manifest(folder: Path, manifest: dict) -> None:
    """Hash every file in `folder` (but the manifest) into manifest["files"] and write manifest.json."""
    files = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and p.name != MANIFEST):
        rel = path.relative_to(folder).as_posix()
        entry = {"sha256": sha256_file(path), "bytes": path.stat().st_size}
        if path.suffix == ".parquet":
            entry["rows"] = pq.ParquetFile(path).metadata.num_rows
        files[rel] = entry
    manifest["files"] = files
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2, ensure_ascii=False, allow_nan=False) + "\n",
                                   encoding="utf-8")  # allow_nan: a bare NaN is not JSON


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


def row_counts(con: duckdb.DuckDBPyConnection, dropped: bool) -> dict:
    """Counts of the `pairs` view (and the `dropped` view when `dropped`) of `con`: what a manifest records and
    `lidr inspect` shows (one definition for both)."""

    def rows(q: str) -> list[tuple]:
        return con.sql(q).fetchall()

    by_lang_dir: dict = {}
    for lang, direction, n in rows("SELECT lang, direction, count(*) FROM pairs GROUP BY ALL ORDER BY ALL"):
        by_lang_dir.setdefault(lang, {})[direction] = n
    by_lang = {lang: sum(d.values()) for lang, d in by_lang_dir.items()}
    by_dir: dict = {}
    for d in by_lang_dir.values():
        for direction, n in d.items():
            by_dir[direction] = by_dir.get(direction, 0) + n
    n_dropped, drop_reasons, drops_by_stage = 0, {}, {}
    if dropped:
        for stage, reason, n in rows("SELECT stage, reason, count(*) FROM dropped GROUP BY ALL ORDER BY 3 DESC, 1, 2"):
            drops_by_stage.setdefault(stage, {})[reason] = n
            drop_reasons[reason] = drop_reasons.get(reason, 0) + n
            n_dropped += n
    return {
        "pairs": sum(by_lang.values()),
        "by_language": by_lang,
        "by_direction": dict(sorted(by_dir.items(), key=lambda kv: (kv[0] is None, str(kv[0])))),
        "by_language_direction": by_lang_dir,
        "dropped": n_dropped,
        "drop_reasons": drop_reasons,
        "drops_by_stage": drops_by_stage,
    }


def compute_stats(all_files: list[Path], dropped_files: list[Path]) -> dict:
    """Counts and quality figures for the manifest and card, from the written data (numbers only, no text)."""
    con = duckdb.connect()
    con.execute(f"CREATE VIEW pairs AS SELECT * EXCLUDE (prompt, chosen, rejected) FROM read_parquet({sql_literal_list(all_files)})")
    if dropped_files:
        con.execute(f"CREATE VIEW dropped AS SELECT stage, reason FROM read_parquet({sql_literal_list(dropped_files)}, union_by_name=true)")
    counts = row_counts(con, dropped=bool(dropped_files))
    per_lang = []
    for r in con.execute("""
        SELECT lang, direction, count(*) AS n,
               avg((chosen_lang = lang)::INT) AS chosen_agree,
               avg((rejected_lang = lang)::INT) AS rejected_agree,
               avg(chosen_chars) AS chosen_mean, median(chosen_chars) AS chosen_median,
               avg(rejected_chars) AS rejected_mean, median(rejected_chars) AS rejected_median,
               median(chosen_chars / greatest(rejected_chars, 1)) AS ratio_median
        FROM pairs GROUP BY ALL ORDER BY ALL""").fetchall():
        per_lang.append(dict(zip(["lang", "direction", "pairs", "chosen_lang_agreement", "rejected_lang_agreement",
                                  "chosen_chars_mean", "chosen_chars_median", "rejected_chars_mean",
                                  "rejected_chars_median", "length_ratio_median"], r)))
    return {**counts, "quality": per_lang}


@dataclass
class VerifyResult:
    version_dir: Path
    problems: list[str]
    files_checked: int
    content_id: str | None = None  # of the manifest as it is now
    recorded_content_id: str | None = None  # what the store's index (or the caller) recorded; None: unknown
    expected_content_id: str | None = None  # what the user expects (`lidr verify --expect`); None: not given

    @property
    def ok(self) -> bool:
        return not self.problems


def _same_model(in_data: object, claimed: object) -> bool:
    """The generator a row names against the manifest's: equal, or the manifest's portable form of the same local
    folder (relative to the work folder, or its last part: `files.portable`)."""
    if in_data == claimed:
        return True
    return (isinstance(in_data, str) and isinstance(claimed, str) and bool(claimed)
            and in_data.startswith(("/", "~")) and in_data.rstrip("/").endswith("/" + claimed))


def data_problems(folder: Path, manifest: dict, counts: dict) -> list[str]:
    """Where the rows themselves disagree with what the manifest claims of them (checked even when no recorded id
    exists, e.g. a version copied out of its store): the generator model and revision the rows name, their
    iteration, and that each language config holds rows of its language only and every language has a config."""
    problems: list[str] = []
    configs = manifest["configs"]
    all_files = [version_file(folder, rel) for rel in configs.get(ALL, [])]
    if not all_files:
        return problems
    con = duckdb.connect()
    try:
        src = f"read_parquet({sql_literal_list(all_files)}, union_by_name = true)"
        names = {row[0] for row in con.execute(f"DESCRIBE SELECT * FROM {src}").fetchall()}
        generator = manifest.get("generator") if isinstance(manifest.get("generator"), dict) else {}
        if {"generator_model", "generator_revision"} <= names:
            found = con.execute(f"SELECT DISTINCT generator_model, generator_revision FROM {src} ORDER BY ALL").fetchall()
            claimed = [tuple(x) for x in generator.get("all") or [] if isinstance(x, list) and len(x) == 2]
            same = len(found) == len(claimed) and all(
                any(_same_model(fm, cm) and fr == cr for cm, cr in claimed) for fm, fr in found)
            if found and (not same or not _same_model(found[0][0], generator.get("model"))):
                shown = ", ".join(f"{m}@{r}" for m, r in found)
                problems.append(f"generator: the rows were made by {shown}, the manifest says "
                                f"{generator.get('model')}@{generator.get('revision')}")
        if "iteration" in names:
            its = sorted(r[0] for r in con.execute(f"SELECT DISTINCT iteration FROM {src}").fetchall()
                         if r[0] is not None)
            if its and its != [manifest.get("iteration")]:
                problems.append(f"iteration: the rows say {', '.join(map(str, its))}, the manifest says "
                                f"{manifest.get('iteration')}")
        lang_configs = {cfg: rels for cfg, rels in configs.items() if cfg not in (ALL, DROPPED)}
        for cfg, rels in sorted(lang_configs.items()):
            if not rels or "lang" not in names:
                continue
            files = sql_literal_list([version_file(folder, rel) for rel in rels])
            langs = [r[0] for r in con.execute(f"SELECT DISTINCT lang FROM read_parquet({files}) ORDER BY 1").fetchall()]
            if langs and langs != [cfg]:
                problems.append(f"config {cfg}: holds rows in {', '.join(map(str, langs))}")
        without = sorted(str(lang) for lang in counts["by_language"] if lang not in lang_configs)
        if without:
            problems.append(f"configs: no config for the rows in {', '.join(without)}")
    finally:
        con.close()
    return problems


def verify(version_dir: str | Path, expected_content_id: str | None = None, expect: str | None = None) -> VerifyResult:
    """Recompute every hash and row count in the manifest; report missing, altered and unlisted files, a
    manifest whose content id differs from the one recorded when the version was made (`expected_content_id`,
    else the store's index) or from `expect` (an id the user has from elsewhere: a colleague, a paper), and rows
    that disagree with what the manifest says of them (`data_problems`)."""
    folder = Path(version_dir)
    manifest = read_manifest(folder)
    problems: list[str] = []
    cid = content_id(manifest)
    recorded = expected_content_id or recorded_content_id(folder)
    if recorded is not None and recorded != cid:
        problems.append(f"{MANIFEST}: manifest altered (content id {cid}, recorded when the version was made: "
                        f"{recorded})")
    if expect is not None and expect != cid:
        problems.append(f"{MANIFEST}: content id {cid}, not the expected {expect} (--expect)")
    files = manifest["files"]
    for rel, entry in sorted(files.items()):
        try:
            path = version_file(folder, rel)
        except LidrError:
            problems.append(f"{rel}: a link that leads outside the version folder (not read)")
            continue
        if not path.is_file():
            problems.append(f"{rel}: missing")
            continue
        if sha256_file(path) != entry["sha256"]:
            problems.append(f"{rel}: sha256 mismatch (file altered)")
            continue
        if "rows" in entry:
            try:
                rows = pq.ParquetFile(path).metadata.num_rows
            except Exception as e:  # noqa: BLE001 (any read failure is a verification failure)
                problems.append(f"{rel}: unreadable Parquet ({e})")
                continue
            if rows != entry["rows"]:
                problems.append(f"{rel}: {rows} rows, manifest says {entry['rows']}")
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and p.name != MANIFEST):
        rel = path.relative_to(folder).as_posix()
        # Hub-managed files (.gitattributes, which every Hub repo has) and download metadata are not ours.
        if rel not in files and rel != ".gitattributes" and not rel.startswith(".cache/"):
            problems.append(f"{rel}: not listed in the manifest")
    for cfg, rels in manifest["configs"].items():
        for rel in rels:
            if rel not in files:
                problems.append(f"config {cfg}: file {rel} not in the manifest")
    if all(p.startswith(f"{MANIFEST}:") for p in problems):  # counts: only meaningful once the files are intact
        all_files = [version_file(folder, rel) for rel in manifest["configs"].get(ALL, [])]
        dropped_files = [version_file(folder, rel) for rel in manifest["configs"].get(DROPPED, [])]
        counts = compute_stats(all_files, dropped_files)
        for key in ("pairs", "by_language", "by_direction", "by_language_direction", "dropped", "drop_reasons"):
            if counts[key] != manifest["counts"].get(key):
                problems.append(f"counts.{key}: data has {counts[key]}, manifest says {manifest['counts'].get(key)}")
        for cfg, rels in manifest["configs"].items():
            if cfg in (ALL, DROPPED):
                continue
            n = sum(files[r].get("rows", 0) for r in rels)
            if n != manifest["counts"]["by_language"].get(cfg, 0):
                problems.append(f"config {cfg}: {n} rows, manifest counts {manifest['counts']['by_language'].get(cfg)}")
        problems += data_problems(folder, manifest, counts)
    return VerifyResult(folder, problems, len(files), cid, recorded, expect)
