"""Publishing a version to the Hub or to another local store.

Hub publishing is one `create_commit` holding the data files, the card and the manifest, then `create_tag`
named after the version: a reader never sees half a version, and `org/name@<version>` pins it. Files of an
earlier version that the new one lacks are deleted in the same commit, so `main` is always exactly one version;
a commit that would add and delete one path is refused, and a commit whose tree lacks part of the version is not
tagged. A local publish copies the files into a temporary folder and moves it into place like `materialize`.
Nothing is printed: what the caller should hear (a moved tag) goes to `notify`.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path

from lidr_data.dataset import audits
from lidr_data.dataset.card import check_license, render_card
from lidr_data.dataset.hub import _hub_error, published_sources, with_retries
from lidr_data.dataset.layout import CARD, MANIFEST, check_name, content_id, read_manifest, verify
from lidr_data.dataset.store import move_into_place, parse_reference, resolve_version
from lidr_data.errors import LidrError
from lidr_data.files import cleanup_stale_temps, temp_dir_name

_HUB_DEST = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")


def staged_manifest(src_dir: Path, version: str, location: str, revision: str | None,
                    license: str | None = None, audit_section: str | None = None,
                    parent_reference: str | None = None) -> tuple[dict, str]:
    """The manifest and card for the version at its new home (name, location in the usage snippets; the
    license when one is given; an audit's section at the end of the card; the card names the parent by
    `parent_reference` when given). Only the card's own entry changes: every data file and its hash stay the
    version's."""
    manifest = read_manifest(src_dir)
    manifest = {**manifest, "version": version}
    if license:
        manifest["license"] = check_license(license)
    card = render_card(manifest, location=location, revision=revision, parent_reference=parent_reference)
    if audit_section:
        card = card.rstrip("\n") + "\n\n" + audit_section
    files = dict(manifest["files"])
    data = card.encode("utf-8")
    files[CARD] = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
    manifest["files"] = files
    return manifest, card


def is_hub_destination(dest: str) -> bool:
    if "@" in dest:
        raise LidrError(f"--to {dest!r}: name the repository without a revision; the tag comes from --version")
    return bool(_HUB_DEST.match(dest)) and not Path(dest).exists()


def publish(src: str, dest: str, version: str | None = None, private: bool = False, force: bool = False,
            license: str | None = None, notify: Callable[[str], None] | None = None,
            with_audit: str | Path | None = None) -> str:
    """Publish the version `src` to `dest` (a Hub repo id or a local store folder); return where it went.
    `license` (a Hub license id) replaces the version's license in the published manifest and card. `notify`
    hears what a `force` replaced (a moved tag, a replaced version). `with_audit` (an audit folder of this
    version, or LATEST_AUDIT for its newest) adds the audit's pair validity to the card as a section."""
    src_dir = resolve_version(src)
    result = verify(src_dir)
    if not result.ok:
        raise LidrError(f"{src}: refusing to publish a version that fails verification: {result.problems[0]}")
    manifest = read_manifest(src_dir)
    version = check_name(version or manifest["version"], "version")
    section = audit_card_section(src, src_dir, with_audit) if with_audit else None
    if is_hub_destination(dest):
        return _publish_hub(src_dir, dest, version, private, force, license, notify, section)
    return _publish_local(src_dir, Path(dest), version, force, license, notify, section)


LATEST_AUDIT = "latest"


def audit_card_section(src: str, src_dir: Path, audit: str | Path) -> str:
    """The card section of an audit of the version `src` (its newest audit for LATEST_AUDIT); the audit must be
    of this exact version (same content id)."""
    cid = content_id(read_manifest(src_dir))
    if str(audit) == LATEST_AUDIT:
        found = audits.find_audits(audits.audits_root(parse_reference(src), src_dir), cid)
        if not found:
            raise LidrError(f"{src}: no audit of this version (run `lidr audit {src} ...` first, or name an audit "
                            "folder after --with-audit)")
        folder = found[-1]
    else:
        folder = Path(audit)
        info = audits.read_audit(folder)
        if info["content_id"] != cid:
            raise LidrError(f"{folder}: an audit of another version (content id {info['content_id'][:12]}, "
                            f"{src} has {cid[:12]})")
    return audits.card_section(folder)


def _publish_local(src_dir: Path, store: Path, version: str, force: bool, license: str | None = None,
                   notify: Callable[[str], None] | None = None, audit_section: str | None = None) -> str:
    manifest = read_manifest(src_dir)
    dataset_dir = store / check_name(manifest["name"], "dataset name")
    final = dataset_dir / version
    if final.resolve() == src_dir.resolve():
        raise LidrError(f"{final}: source and destination are the same version")
    if final.exists() and not force:
        raise LidrError(f"version {final} already exists (pass --force to replace it)")
    dataset_dir.mkdir(parents=True, exist_ok=True)
    cleanup_stale_temps(dataset_dir)
    tmp = dataset_dir / temp_dir_name(version)
    try:
        tmp.mkdir()
        for rel in manifest["files"]:
            if rel in (CARD, MANIFEST):
                continue
            (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src_dir / rel, tmp / rel)
        new_manifest, card = staged_manifest(src_dir, version, str(final.resolve()), None, license, audit_section)
        (tmp / CARD).write_text(card, encoding="utf-8")
        (tmp / MANIFEST).write_text(json.dumps(new_manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        move_into_place(tmp, final, force=force, notify=notify)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return str(final)


def stale_files(existing: set[str], adds: list[str]) -> list[str]:
    """Files of main to delete in a publish commit: all but what the commit adds and the Hub's `.gitattributes`."""
    return sorted(set(existing) - set(adds) - {".gitattributes"})


def check_operations(ops: list, what: str) -> None:
    """Refuse a commit that adds and deletes the same path (or deletes a folder holding an added file): the
    Hub applies both and the tagged tree silently lacks the file."""
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete

    added = {op.path_in_repo for op in ops if isinstance(op, CommitOperationAdd)}
    clashes = set()
    for op in ops:
        if isinstance(op, CommitOperationDelete):
            folder = op.path_in_repo.rstrip("/") + "/"
            clashes |= {a for a in added if a == op.path_in_repo or (op.is_folder and a.startswith(folder))}
    if clashes:
        raise LidrError(f"{what}: refusing a commit that adds and deletes {', '.join(sorted(clashes))}")


def _hub_parent(manifest: dict, repo_id: str, refs) -> str | None:
    """`repo_id@tag` of the version's parent when it was published to this repository (the parent's local
    content id is the source id of a tagged commit there), else None (the card keeps the recorded reference)."""
    parent = manifest.get("parent")
    if not isinstance(parent, dict) or not parent.get("content_id") or parent.get("commit"):
        return None  # no parent, or the parent was already given by its Hub reference
    return published_sources(repo_id, refs).get(parent["content_id"])


def _publish_hub(src_dir: Path, repo_id: str, version: str, private: bool, force: bool,
                 license: str | None = None, notify: Callable[[str], None] | None = None,
                 audit_section: str | None = None) -> str:
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi

    org, name = repo_id.split("/")
    check_name(org, "Hub namespace")
    check_name(name, "dataset name")
    api = HfApi()  # endpoint and token: HF_ENDPOINT, HF_TOKEN / the stored login, as huggingface_hub resolves them
    what = f"{repo_id}@{version}"
    source_id = content_id(read_manifest(src_dir))
    try:
        with_retries(what, lambda: api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True))
        refs = with_retries(what, lambda: api.list_repo_refs(repo_id, repo_type="dataset"))
        tag_exists = any(t.name == version for t in refs.tags)
        if tag_exists and not force:
            raise LidrError(f"{what}: the tag {version!r} already exists (versions are immutable; --force replaces it)")
        manifest, card = staged_manifest(src_dir, version, repo_id, version, license, audit_section,
                                         parent_reference=_hub_parent(read_manifest(src_dir), repo_id, refs))
        existing = set(with_retries(what, lambda: api.list_repo_files(repo_id, repo_type="dataset")))
        adds = sorted(set(manifest["files"]) | {CARD, MANIFEST})
        # main becomes exactly this version: delete what main holds minus everything this commit writes.
        deletes = stale_files(existing, adds)

        def operations() -> list:
            ops: list = [CommitOperationAdd(rel, str(src_dir / rel)) for rel in adds if rel not in (CARD, MANIFEST)]
            ops.append(CommitOperationAdd(CARD, card.encode("utf-8")))
            ops.append(CommitOperationAdd(MANIFEST, (json.dumps(manifest, indent=2, ensure_ascii=False) + "\n").encode("utf-8")))
            ops += [CommitOperationDelete(rel) for rel in deletes]
            check_operations(ops, what)
            return ops

        commit = with_retries(what, lambda: api.create_commit(
            repo_id, operations(), repo_type="dataset",
            commit_message=f"lidr-data: {manifest['name']} {version}",
            commit_description=f"{manifest['counts']['pairs']} pairs; content id {content_id(manifest)}; "
                               f"source content id {source_id}; manifest.json lists every file with its sha256.",
        ))
        # Tag only a commit whose tree holds the whole version (the tag is what readers pin).
        committed = set(with_retries(what, lambda: api.list_repo_files(repo_id, repo_type="dataset",
                                                                       revision=commit.oid)))
        if missing := [rel for rel in adds if rel not in committed]:
            raise LidrError(f"{what}: commit {commit.oid} lacks {', '.join(missing[:3])}; not tagged")
        if tag_exists:
            if notify is not None:
                notify(f"--force: moving existing tag {version} of {repo_id}")
            with_retries(what, lambda: api.delete_tag(repo_id, tag=version, repo_type="dataset"))
        with_retries(what, lambda: api.create_tag(repo_id, tag=version, revision=commit.oid, repo_type="dataset",
                                                  tag_message=f"lidr-data version {version} content id {content_id(manifest)}"))
    except LidrError:
        raise
    except Exception as e:  # noqa: BLE001 (mapped to one line)
        raise _hub_error(e, what) from None
    return what
