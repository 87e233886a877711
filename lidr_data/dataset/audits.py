"""Where the audits of a version live, and reading them back (for `lidr sql`, `lidr inspect`, `lidr publish`).

A version is immutable, so an audit (a judge's verdicts on a sample of its pairs, made by `lidr audit`, see
`lidr_data.eval.audit`) is written beside it, never inside it:

    <store>/<dataset>/audits/<version>/<judge>-<sample>-<seed>/   pairs.parquet, summary.parquet, audit.json,
                                                                   judge_reversed.json (with --write-filter)
    <store>/<dataset>/audits/<version>/cache/                     the judge's request cache (shared by reruns)

`audits` holds no manifest.json, so it is never listed as a version (and is refused as a version name). The
audits of a Hub version `org/name@rev` live in the default local store: `<store>/<org>--<name>/audits/<rev>/`.
This module only locates and reads; it imports nothing of `eval` (the core install has no judge).
"""

from __future__ import annotations

from pathlib import Path

from lidr_data.dataset.layout import AUDITS
from lidr_data.dataset.store import Reference, default_store
from lidr_data.errors import LidrError
from lidr_data.readers import read_json

AUDIT_JSON = "audit.json"
PAIRS, SUMMARY = "pairs.parquet", "summary.parquet"
FILTER = "judge_reversed.json"
CACHE = "cache"


def audits_root(ref: Reference, version_dir: Path, store: str | Path | None = None) -> Path:
    """The folder holding the audits of the version `ref` names (resolved to `version_dir`)."""
    if ref.is_hub:
        org, name = ref.repo_id.split("/")
        rev = (ref.revision or "main").replace("/", "--")  # a branch name may hold slashes: one folder
        return Path(store or default_store()) / f"{org}--{name}" / AUDITS / rev
    return Path(version_dir).parent / AUDITS / Path(version_dir).name


def store_of(ref: Reference, version_dir: Path) -> Path:
    """The store that `audits_root` places this version's audits in (paths in a filter file are relative to it)."""
    return default_store() if ref.is_hub else Path(version_dir).parent.parent


def folder_name(judge: str, sample: int, seed: int) -> str:
    return f"{judge}-{sample}-{seed}"


def read_audit(folder: str | Path) -> dict:
    """audit.json of an audit folder, with a one-line error when it is not one."""
    folder = Path(folder)
    path = folder / AUDIT_JSON
    if not path.is_file() or not (folder / PAIRS).is_file():
        raise LidrError(f"{folder}: not an audit folder (needs {AUDIT_JSON} and {PAIRS}; made by `lidr audit`)")
    info = read_json(path)
    if not isinstance(info, dict) or not isinstance(info.get("content_id"), str):
        raise LidrError(f"{path}: malformed audit (field 'content_id' missing)")
    return info


def find_audits(root: Path, content_id: str | None = None) -> list[Path]:
    """Audit folders under `root`, oldest first; with `content_id`, only audits of that exact version (an audit
    of a version since replaced with --force is not shown as this one's)."""
    if not root.is_dir():
        return []
    found = []
    for child in sorted(root.iterdir()):
        if child.name.startswith(".") or not (child / AUDIT_JSON).is_file() or not (child / SUMMARY).is_file():
            continue
        try:
            info = read_audit(child)
        except LidrError:
            continue
        if content_id is None or info["content_id"] == content_id:
            found.append((str(info.get("created_at", "")), child.name, child))
    return [p for _, _, p in sorted(found)]


def audit_views(folders: list[Path]) -> dict[str, list[Path]]:
    """The `lidr sql` views of a version's audits: `audit` (every judged pair, with its `audit` folder name)
    and `audit_summary` (per audit, language and direction)."""
    if not folders:
        return {}
    return {"audit": [f / PAIRS for f in folders], "audit_summary": [f / SUMMARY for f in folders]}


def card_section(folder: Path) -> str:
    """A Markdown section for the dataset card: the pair validity per language measured by an audit."""
    import polars as pl

    info = read_audit(folder)
    rows = pl.read_parquet(folder / SUMMARY).sort("lang", "direction").to_dicts()
    judge = info.get("judge_model") or info.get("judge")
    lines = [
        "## Pair validity (judge audit)",
        "",
        f"A judge (`{info.get('judge')}`{f', model `{judge}`' if judge != info.get('judge') else ''}) compared "
        f"chosen and rejected on a seeded stratified sample of up to {info.get('sample')} pairs per language and "
        f"direction (seed {info.get('seed')}), in both orders; a disagreement between the orders counts as a tie. "
        "*Chosen wins* is the share of judged pairs where the chosen side really is better, with a Wilson 95% "
        f"interval. Audit made {info.get('created_at', '')[:10]} of {info.get('dataset')} {info.get('version')} "
        f"(content id `{info['content_id']}` where it was audited); it is not part of the data.",
        "",
        "| language | direction | judged | chosen wins | ties | rejected wins | Wilson 95% |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        n = r["n"] or 0
        share = [f"{100 * r[k] / n:.1f}%" if n else "n/a" for k in ("chosen_wins", "ties", "rejected_wins")]

        interval = "n/a" if r["wilson_low"] is None else f"{100 * r['wilson_low']:.1f}-{100 * r['wilson_high']:.1f}%"
        lines.append(f"| {r['lang']} | {r['direction']} | {n} | {' | '.join(share)} | {interval} |")
    return "\n".join(lines) + "\n"
