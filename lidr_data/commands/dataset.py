"""`lidr materialize`, `lidr publish`, `lidr versions`, `lidr verify`: versioned datasets and their stores."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from rich.markup import escape

from lidr_data.build.materialize import materialize
from lidr_data.commands.render import (
    add_format_argument,
    make_console,
    print_tables,
    progress_bar,
    warn,
)
from lidr_data.dataset.hub import hub_versions, published_content_id, published_sources
from lidr_data.dataset.layout import (
    MANIFEST,
    content_id,
    list_versions,
    read_manifest,
    recorded_content_id,
    verify,
)
from lidr_data.dataset.publish import publish
from lidr_data.dataset.store import default_store, parse_reference, resolve_version
from lidr_data.errors import LidrError
from lidr_data.safe_text import printable
from lidr_data.table import Column, TableData


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "materialize",
        help="turn a finished run folder into an immutable dataset version in the local store",
        description="Write data/<config>/*.parquet (one config per language, `all`, `dropped`), README.md (the "
        "dataset card) and manifest.json into STORE/<recipe name>/<version>, atomically.",
    )
    p.add_argument("run_dir", type=Path, help="WORKDIR/runs/<recipe>/iter-<N>")
    p.add_argument("--store", type=Path, default=None, help="local store folder (default: WORKDIR/store)")
    p.add_argument("--workdir", type=Path, default=None, help="WORKDIR (default: $LIDR_WORKDIR or .)")
    p.add_argument("--version", default=None, help="version name (default: iter-<N>)")
    p.add_argument("--force", action="store_true", help="replace an existing version of the same name")
    p.add_argument("--allow-empty", action="store_true",
                   help="write the version even when the run kept no pair (refused otherwise, exit 2)")
    p.add_argument("--license", default=None,
                   help="license id of the data for the card (e.g. cc-by-nc-4.0; default: the recipe's `license:`)")
    p.add_argument("--parent", default=None, metavar="REF",
                   help="the version this one follows (a version folder, STORE/NAME@VERSION or org/name@revision; "
                   "default: the parent the build recorded, if any)")
    p.set_defaults(func=run_materialize)

    p = sub.add_parser(
        "publish",
        help="publish a version to the Hub (org/name) or to another local store folder",
        description="One commit with data, card and manifest, then a tag named after the version. The Hub token "
        "comes from `hf auth login` or HF_TOKEN and is never printed or written.",
    )
    p.add_argument("src", help="a version reference (folder, DATASET_FOLDER@VERSION)")
    p.add_argument("--to", dest="dest", required=True,
                   help="org/name on the Hub, or a local store folder (existing, or written as ./path or /path)")
    p.add_argument("--version", default=None, help="tag/version name (default: the source's version)")
    p.add_argument("--private", action="store_true", help="create the Hub repo as private")
    p.add_argument("--force", action="store_true", help="replace an existing tag/version of the same name")
    p.add_argument("--license", default=None,
                   help="license id written into the published card and manifest (default: the version's)")
    p.add_argument("--with-audit", nargs="?", const="latest", default=None, metavar="AUDIT_DIR",
                   help="add the pair validity of a `lidr audit` of this version to the card (default: its newest "
                   "audit); the data files and their hashes are unchanged")
    p.set_defaults(func=run_publish)

    p = sub.add_parser("versions", help="list the versions of a dataset with their content ids and counts")
    p.add_argument("ref", help="a store folder, a dataset folder, a version, or org/name on the Hub")
    add_format_argument(p, what="list of versions")
    p.set_defaults(func=run_versions)

    p = sub.add_parser("verify", help="recompute hashes and counts of a version, check its content id against "
                       "the store's index or Hub tag (manifest altered) and what its rows say (generator, iteration, "
                       "languages) against its manifest; exit 1 on any mismatch",
                       description="Checks every file's sha256 and row count, the counts the manifest records, "
                       "the generator, iteration and languages the rows themselves name, and the manifest's content "
                       "id against the one recorded when the version was made (the dataset's index.jsonl; for a Hub "
                       "version, the description of the commit its revision points at). A version copied out of its "
                       "store has no recorded id: pass the id you have from elsewhere with --expect.")
    p.add_argument("ref", help="a version folder, DATASET_FOLDER@VERSION, or org/name@revision")
    p.add_argument("--expect", type=content_id_arg, default=None, metavar="CONTENT_ID",
                   help="the content id the version must have (64 hex digits, as `lidr materialize` and `lidr "
                   "verify` print it), e.g. from a colleague or a paper")
    p.set_defaults(func=run_verify)


def content_id_arg(text: str) -> str:
    """A full content id: the sha256 of a manifest, 64 hex digits (a shorter prefix is far easier to forge)."""
    value = text.strip().lower()
    if not re.fullmatch(r"[0-9a-f]{64}", value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a content id (64 hex digits, as `lidr verify` prints it)")
    return value


def run_materialize(args: argparse.Namespace) -> int:
    store = args.store or default_store(args.workdir)
    path = materialize(args.run_dir, store, version=args.version, force=args.force, allow_empty=args.allow_empty,
                       license=args.license, progress=progress_bar, notify=warn, parent=args.parent)
    make_console().print(f"materialized [bold]{path}[/] (content id {content_id(read_manifest(path))})", soft_wrap=True)
    return 0


def run_publish(args: argparse.Namespace) -> int:
    where = publish(args.src, args.dest, version=args.version, private=args.private, force=args.force,
                    license=args.license, notify=warn, with_audit=args.with_audit)
    make_console().print(f"published [bold]{where}[/]")
    return 0


def parent_reference(where: str, manifest: dict, listed: dict[str, str], local: bool) -> str:
    """A version's parent as a reference a user can type (a bare `iter-1` read as the sibling of that name even
    when the parent lay in another store): a listed version with the parent's content id (on the Hub: or
    published from the local version of that id) by its reference as listed; a Hub parent by its recorded `org/name@revision`; a local one found where its build recorded it
    (relative to the work folder, WORKDIR/store/NAME/VERSION, or to the current folder) by that folder; else
    the recorded reference and the content id, which identifies the parent wherever it lies."""
    parent = manifest.get("parent")
    if not parent:
        return "—"
    cid = str(parent.get("content_id") or "")
    if cid in listed:
        return listed[cid]
    ref = str(parent.get("reference") or parent.get("version") or "?")
    if parent.get("commit"):  # a Hub parent: org/name@revision
        return ref
    folder, cwd = Path(where).resolve(), Path.cwd()
    if local and not Path(ref).is_absolute():
        for base in ([folder.parents[2]] if len(folder.parents) > 2 else []) + [cwd]:
            found = (base / ref).resolve()
            try:
                if (found / MANIFEST).is_file() and content_id(read_manifest(found)) == cid:
                    return str(found.relative_to(cwd) if found.is_relative_to(cwd) else found)
            except (LidrError, OSError, ValueError):  # an unreadable candidate is not the parent
                continue
    return f"{ref} (content id {cid[:12]})"


def run_versions(args: argparse.Namespace) -> int:
    ref = parse_reference(args.ref)
    rows: list[tuple[str, dict]] = []
    if ref.is_hub:
        rows = hub_versions(ref.repo_id)
        recorded: dict[str, str | None] = {}
    else:
        path = ref.path / ref.version if ref.version else ref.path
        if (path / "manifest.json").is_file():
            rows = [(str(path), read_manifest(path))]
        else:
            folders = list_versions(path) if path.is_dir() else []
            if not folders and path.is_dir():  # a store: datasets, each with versions
                folders = [v for d in sorted(path.iterdir()) if d.is_dir() for v in list_versions(d)]
            rows = [(str(v), read_manifest(v)) for v in folders]
        recorded = {where: recorded_content_id(Path(where)) for where, _ in rows}
    if not rows:
        raise LidrError(f"{args.ref}: no dataset versions found")
    table = []
    listed = {content_id(m): where for where, m in rows}
    if ref.is_hub:  # a parent published to this repository: the local id its build recorded -> repo@tag
        listed = {**published_sources(ref.repo_id), **listed}
    for where, m in rows:
        counts = m["counts"]
        cid = content_id(m)
        # The first 12 hex digits identify a version; a manifest edited since it was made is flagged.
        shown = cid[:12] if recorded.get(where) in (None, cid) else f"{cid[:12]} (manifest altered)"
        table.append({"reference": where, "content id": shown, "pairs": counts.get("pairs", 0),
                      "dropped": counts.get("dropped", 0),
                      "languages": " ".join(sorted(counts.get("by_language", {}))), "iteration": m.get("iteration"),
                      "parent": parent_reference(where, m, listed, local=not ref.is_hub),
                      "created": str(m.get("created_at", ""))[:10], "license": m.get("license") or "unknown"})
    print_tables([TableData(f"versions · {args.ref}", [
        Column("reference"), Column("content id"), Column("pairs", numeric=True), Column("dropped", numeric=True),
        Column("languages"), Column("iteration", "iter", numeric=True), Column("parent"), Column("created"),
        Column("license")], table)], args.format, make_console())
    return 0


def run_verify(args: argparse.Namespace) -> int:
    ref = parse_reference(args.ref)
    folder = resolve_version(ref)
    expected = None
    if ref.is_hub:  # a Hub version: the id its publishing commit recorded; a local one: the store's index
        expected = published_content_id(ref.repo_id, ref.revision)
    result = verify(folder, expected_content_id=expected, expect=args.expect)
    console = make_console()
    if result.ok:
        console.print(f"[green]ok[/] {escape(printable(str(result.version_dir), keep=''))}: {result.files_checked} "
                      "files, hashes and counts match; the rows agree with the manifest (generator, iteration, "
                      "languages)", soft_wrap=True, highlight=False)
        checked = [what for what, given in (("the id recorded when it was made", result.recorded_content_id),
                                            ("--expect", result.expected_content_id)) if given]
        note = f"matches {' and '.join(checked)}" if checked else \
            "no recorded id to check it against: pass --expect CONTENT_ID to check it against one you have"
        console.print(f"content id {result.content_id} ({note})", soft_wrap=True, highlight=False)
        return 0
    # soft_wrap: a long id or path is never cut into lines (piped output, logs); problems quote the manifest's
    # own text (paths, values): plain text with control characters shown, never markup or escape sequences.
    err = make_console(stderr=True)
    err.print(f"[bold red]verify failed[/] {escape(printable(str(result.version_dir), keep=''))}: "
              f"{len(result.problems)} problem(s)", soft_wrap=True, highlight=False)
    for problem in result.problems:
        err.print(f"  {printable(problem, keep='')}", highlight=False, markup=False, soft_wrap=True)
    return 1
