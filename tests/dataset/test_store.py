"""References: local versions, dataset folders with @version, stores, Hub ids; bad references fail clearly."""

from __future__ import annotations

import errno
import json
from pathlib import Path

import pytest
from synthetic import make_run

from lidr_data.build.materialize import materialize
from lidr_data.cli import main
from lidr_data.dataset.store import parse_reference, resolve_version
from lidr_data.errors import LidrError


def test_local_references(version_dir: Path, store: Path, tmp_path: Path):
    dataset = version_dir.parent
    assert resolve_version(str(version_dir)) == version_dir
    assert resolve_version(f"{dataset}@iter-1") == version_dir
    v2 = materialize(make_run(tmp_path / "r2" / "demo-lidr" / "iter-2", n_prompts=3, iteration=2), store,
                     progress=False)
    assert resolve_version(str(dataset)) == v2  # a dataset folder alone: its newest version
    assert resolve_version(f"{dataset}@iter-1") == version_dir
    with pytest.raises(LidrError, match=r"no version 'iter-9' \(versions: iter-1, iter-2\)"):
        resolve_version(f"{dataset}@iter-9")
    with pytest.raises(LidrError, match="invalid version"):
        resolve_version(f"{dataset}@../iter-1")


def test_hub_references_parse_without_network():
    ref = parse_reference("acme/demo-lidr@iter-1")
    assert ref.is_hub and ref.repo_id == "acme/demo-lidr" and ref.revision == "iter-1"
    ref = parse_reference("acme/demo-lidr")
    assert ref.is_hub and ref.revision is None
    assert parse_reference("acme/demo-lidr@refs/pr/1").revision == "refs/pr/1"


@pytest.mark.parametrize("text, message", [
    ("acme/../etc@v1", "unknown reference"),
    ("a/b/c", "unknown reference"),
    ("./no/such/folder", "unknown reference"),
    ("acme/x@..", "invalid revision"),
    ("acme/x@a//b", "invalid revision"),
    ("a..b/x", "invalid Hub namespace"),
    ("acme/x..y@v1", "invalid dataset name"),
    ("", "empty dataset reference"),
])
def test_bad_references(text: str, message: str):
    with pytest.raises(LidrError, match=message):
        parse_reference(text)


def test_hub_reference_while_offline_is_a_clear_error(monkeypatch, capsys):
    """The test session runs with HF_HUB_OFFLINE=1 (tests/conftest.py): no request leaves the machine."""
    assert main(["verify", "acme/never-downloaded@iter-1"]) == 2
    err = capsys.readouterr().err
    assert "acme/never-downloaded@iter-1" in err and ("HF_HUB_OFFLINE" in err or "cannot be reached" in err)


def test_versions_lists_a_store_and_a_dataset(version_dir: Path, store: Path, capsys):
    assert main(["versions", str(store)]) == 0
    out = capsys.readouterr().out
    assert "iter-1" in out and "de en es fr" in out
    assert main(["versions", str(version_dir.parent)]) == 0
    assert "iter-1" in capsys.readouterr().out
    empty = store / "empty"
    empty.mkdir()
    assert main(["versions", str(empty)]) == 2
    assert "no dataset versions found" in capsys.readouterr().err


def test_cli_materialize_and_local_publish(run_dir: Path, tmp_path: Path, capsys):
    store = tmp_path / "s1"
    assert main(["materialize", str(run_dir), "--store", str(store)]) == 0
    v = store / "demo-lidr" / "iter-1"
    assert v.is_dir()
    assert main(["materialize", str(run_dir), "--store", str(store)]) == 2
    assert "already exists" in capsys.readouterr().err
    other = tmp_path / "s2"
    assert main(["publish", str(v), "--to", str(other), "--version", "release-1"]) == 0
    published = other / "demo-lidr" / "release-1"
    assert main(["verify", str(published)]) == 0
    card = (published / "README.md").read_text()
    assert str(published.resolve()) in card and "# demo-lidr · release-1" in card
    assert main(["publish", str(v), "--to", str(other), "--version", "release-1"]) == 2
    assert "already exists" in capsys.readouterr().err


def test_content_id_is_canonical_and_sees_every_field():
    from lidr_data.dataset.layout import content_id

    m = {"name": "x", "version": "iter-1", "files": {"a": {"sha256": "0" * 64}}, "generator": {"model": "m"}}
    same_reordered = {"generator": {"model": "m"}, "files": {"a": {"sha256": "0" * 64}}, "version": "iter-1", "name": "x"}
    assert content_id(m) == content_id(same_reordered)
    assert len(content_id(m)) == 64
    forged = {**m, "generator": {"model": "other"}}
    assert content_id(forged) != content_id(m)


def test_license_flags_set_the_card_and_manifest(run_dir: Path, tmp_path: Path, capsys):
    import yaml

    store = tmp_path / "s1"
    assert main(["materialize", str(run_dir), "--store", str(store), "--license", "apache-2.0"]) == 0
    v = store / "demo-lidr" / "iter-1"

    def license_of(version: Path) -> tuple[str, str]:
        card = (version / "README.md").read_text()
        meta = yaml.safe_load(card.split("---")[1])
        return meta["license"], json.loads((version / "manifest.json").read_text())["license"]

    assert license_of(v) == ("apache-2.0", "apache-2.0")
    assert "| license | apache-2.0 |" in (v / "README.md").read_text()
    assert main(["publish", str(v), "--to", str(tmp_path / "s2"), "--license", "cc-by-4.0"]) == 0
    published = tmp_path / "s2" / "demo-lidr" / "iter-1"
    assert license_of(published) == ("cc-by-4.0", "cc-by-4.0") and main(["verify", str(published)]) == 0
    capsys.readouterr()
    assert main(["publish", str(v), "--to", str(tmp_path / "s3"), "--license", "CC BY 4.0"]) == 2
    assert "license: a license id such as cc-by-4.0" in capsys.readouterr().err
    assert not (tmp_path / "s3" / "demo-lidr" / "iter-1").exists()


def test_card_names_every_generator_when_answers_were_imported(tmp_path: Path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    run = make_run(tmp_path / "work" / "runs" / "demo-lidr" / "iter-1", n_prompts=6)
    table = pq.read_table(run / "pairs.parquet")
    models = ["imported:answers.jsonl" if i % 2 else m for i, m in enumerate(table["generator_model"].to_pylist())]
    revisions = ["imported" if i % 2 else r for i, r in enumerate(table["generator_revision"].to_pylist())]
    table = table.set_column(table.schema.get_field_index("generator_model"), "generator_model", pa.array(models))
    table = table.set_column(table.schema.get_field_index("generator_revision"), "generator_revision",
                             pa.array(revisions))
    pq.write_table(table, run / "pairs.parquet")
    version = materialize(run, tmp_path / "store", progress=False)
    card = (version / "README.md").read_text()
    assert "`imported:answers.jsonl` @ `imported`" in card and "`org/tiny-chat` @ `0123abcd`" in card
    assert json.loads((version / "manifest.json").read_text())["generator"]["all"] == [
        ["imported:answers.jsonl", "imported"], ["org/tiny-chat", "0123abcd"]]


def test_versions_shows_each_parent_as_a_reference_one_can_type(tmp_path: Path, capsys, monkeypatch):
    """Issue 20: a parent in another store was shown as a bare `iter-1`, which reads as the sibling of that name.
    A parent that can be found is shown as a reference `lidr verify` accepts, naming that very version (its
    content id); one outside the work folder (recorded as `dataset/version` only: no local layout is written)
    is shown with its content id."""
    from lidr_data.dataset.layout import content_id, read_manifest

    monkeypatch.chdir(tmp_path)
    elsewhere = materialize(make_run(tmp_path / "a" / "runs" / "demo-lidr" / "iter-1", n_prompts=4),
                            tmp_path / "a" / "store", progress=False)
    work = tmp_path / "w"
    sibling = materialize(make_run(work / "runs" / "demo-lidr" / "iter-1", n_prompts=5), work / "store",
                          progress=False)
    other_store = materialize(make_run(work / "runs" / "demo-lidr" / "iter-2", n_prompts=6, iteration=2),
                              work / "other-store", progress=False)
    parents = {"iter-2": "a/store/demo-lidr@iter-1", "iter-3": "w/store/demo-lidr@iter-1",
               "iter-4": "w/other-store/demo-lidr@iter-2"}
    for i, (version, ref) in enumerate(parents.items()):
        materialize(make_run(work / "runs" / "demo-lidr" / f"c{i}", n_prompts=3, iteration=2 + i), work / "store",
                    version=version, parent=ref, progress=False)
    capsys.readouterr()
    assert main(["versions", "w/store/demo-lidr", "--format", "json"]) == 0
    rows = {Path(r["reference"]).name: r["parent"] for r in json.loads(capsys.readouterr().out)}
    assert rows["iter-1"] == "—"
    assert rows["iter-2"] == f"demo-lidr/iter-1 (content id {content_id(read_manifest(elsewhere))[:12]})"
    for version, parent in (("iter-3", sibling), ("iter-4", other_store)):
        shown = rows[version]
        assert main(["verify", shown]) == 0, (version, shown, capsys.readouterr().err)
        assert content_id(read_manifest(resolve_version(shown))) == content_id(read_manifest(parent)), version
    assert rows["iter-4"] == "w/other-store/demo-lidr/iter-2"  # not the sibling iter-2 of w/store
    capsys.readouterr()
    monkeypatch.chdir(work)  # the same references, as seen from another folder
    assert main(["versions", "store/demo-lidr", "--format", "json"]) == 0
    rows = {Path(r["reference"]).name: r["parent"] for r in json.loads(capsys.readouterr().out)}
    assert (rows["iter-3"], rows["iter-4"]) == ("store/demo-lidr/iter-1", "other-store/demo-lidr/iter-2")


def _full_disk(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def test_a_full_disk_while_recording_the_id_leaves_no_version(run_dir: Path, tmp_path: Path, monkeypatch, capsys):
    """With ~96 KB free the version was renamed into place, then appending its content id to index.jsonl failed:
    a traceback and a visible version with no recorded id (tampering with it never detected)."""
    from lidr_data.dataset import store as store_module
    from lidr_data.dataset.layout import INDEX, record_version

    store = tmp_path / "s"
    assert main(["materialize", str(run_dir), "--store", str(store), "--version", "v1"]) == 0
    dataset = store / "demo-lidr"
    index_before = (dataset / INDEX).read_bytes()
    v1_manifest = (dataset / "v1" / "manifest.json").read_bytes()

    def half_line_then_full(dataset_dir, version, cid, replaced=False):
        with open(Path(dataset_dir) / INDEX, "a", encoding="utf-8") as f:
            f.write('{"version": "' + version)  # what fitted before the device filled up
        _full_disk()

    monkeypatch.setattr(store_module, "record_version", half_line_then_full)
    capsys.readouterr()
    for words in (["--version", "v2"], ["--version", "v1", "--force"]):
        assert main(["materialize", str(run_dir), "--store", str(store), *words]) == 2
        err = capsys.readouterr().err
        assert "no space left on the device" in err and f"{dataset}/{words[1]}" in " ".join(err.split()), err
        assert "Traceback" not in err and err.strip().splitlines()[-1].startswith("error: no space left"), err
        assert (dataset / INDEX).read_bytes() == index_before  # the half line was cut back out
        assert sorted(p.name for p in dataset.iterdir()) == [".lock", INDEX, "v1"]  # no v2, no temporary folder
        assert (dataset / "v1" / "manifest.json").read_bytes() == v1_manifest  # the old version is untouched

    # the rename failing after the id was recorded takes the id back out too
    monkeypatch.setattr(store_module, "record_version", record_version)
    monkeypatch.setattr(store_module, "swap_into_place", _full_disk)
    assert main(["materialize", str(run_dir), "--store", str(store), "--version", "v2"]) == 2
    assert "no space left on the device" in capsys.readouterr().err
    assert (dataset / INDEX).read_bytes() == index_before and not (dataset / "v2").exists()
    monkeypatch.undo()
    assert main(["materialize", str(run_dir), "--store", str(store), "--version", "v2"]) == 0
    assert main(["verify", str(dataset / "v2")]) == 0 and "no recorded id" not in capsys.readouterr().out
