"""Materialize and verify on real Parquet files written in the published schema (synthetic run folders)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml
from synthetic import make_run
from tamper import flip_byte, overwrite, writable

from lidr_data.build.materialize import materialize
from lidr_data.cli import main
from lidr_data.dataset.layout import content_id, read_manifest, recorded_content_id, verify
from lidr_data.errors import LidrError
from lidr_data.files import sha256_file


def _tree(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*")} if folder.exists() else set()


def test_layout_manifest_and_counts(run_dir: Path, version_dir: Path):
    assert version_dir == run_dir.parents[2] / "store" / "demo-lidr" / "iter-1"
    pairs = pq.read_table(run_dir / "pairs.parquet").to_pylist()
    dropped = pq.read_table(run_dir / "dropped.parquet").to_pylist()
    m = read_manifest(version_dir)
    langs = sorted({p["lang"] for p in pairs})
    assert set(m["configs"]) == {"all", "dropped", *langs}
    # Every input row is in `all` or in `dropped`; each language config holds exactly its rows.
    assert m["counts"]["pairs"] == len(pairs) and m["counts"]["dropped"] == len(dropped)
    assert m["counts"]["by_language"] == dict(Counter(p["lang"] for p in pairs))
    assert m["counts"]["by_direction"] == dict(Counter(p["direction"] for p in pairs))
    assert m["counts"]["drop_reasons"] == dict(Counter(d["reason"] for d in dropped))
    assert {s for s in m["counts"]["drops_by_stage"]} == {d["stage"] for d in dropped}
    for lang in langs:
        table = pq.read_table(version_dir / "data" / lang).to_pylist()
        assert sorted(r["pair_id"] for r in table) == sorted(p["pair_id"] for p in pairs if p["lang"] == lang)
    assert pq.read_table(version_dir / "data" / "all").num_rows == len(pairs)
    # Hashes of every file but the manifest; recipe, generator, lineage, versions.
    files = {p.relative_to(version_dir).as_posix() for p in version_dir.rglob("*") if p.is_file()}
    assert set(m["files"]) == files - {"manifest.json"}
    for rel, entry in m["files"].items():
        assert entry["sha256"] == sha256_file(version_dir / rel)
    recipe = yaml.safe_load((run_dir / "recipe.yaml").read_text())
    assert m["recipe"]["name"] == recipe["name"] and m["license"] == recipe["license"]
    assert m["generator"]["model"] == "org/tiny-chat" and m["generator"]["revision"] == "0123abcd"
    assert m["iteration"] == 1 and m["parent"] is None and m["schema_version"] == 1
    assert m["lidr_data_version"] and m["created_at"].endswith("+00:00")
    assert m["stage_stats"] == json.loads((run_dir / "stats.json").read_text())
    assert not [p for p in version_dir.parent.iterdir() if p.name.startswith(".tmp-")]


def test_iteration_two_names_the_parent_it_is_given_and_no_other(run_dir: Path, store: Path, version_dir: Path,
                                                                 tmp_path: Path, capsys):
    run2 = make_run(tmp_path / "work" / "runs" / "demo-lidr" / "iter-2", n_prompts=6, iteration=2)
    # No parent passed: none recorded, although iter-1 of the same dataset lies in the store (nothing is guessed).
    v2 = materialize(run2, store, progress=False)
    m2 = read_manifest(v2)
    assert v2.name == "iter-2" and m2["iteration"] == 2 and m2["parent"] is None
    assert "| parent version | none |" in (v2 / "README.md").read_text()
    # Passed (here as STORE/NAME@VERSION, through the CLI): resolved, verified and recorded portably.
    assert main(["materialize", str(run2), "--store", str(store), "--force",
                 "--parent", f"{store / 'demo-lidr'}@iter-1"]) == 0
    capsys.readouterr()
    m2 = read_manifest(v2)
    assert m2["parent"] == {"reference": "store/demo-lidr/iter-1", "name": "demo-lidr", "version": "iter-1",
                            "manifest_sha256": sha256_file(version_dir / "manifest.json"),
                            "content_id": content_id(read_manifest(version_dir))}
    assert "`iter-1`" in (v2 / "README.md").read_text() and str(tmp_path) not in (v2 / "manifest.json").read_text()
    assert verify(v2).ok


def test_existing_version_is_immutable_unless_forced(run_dir: Path, store: Path, version_dir: Path, capsys):
    before = {rel: e["sha256"] for rel, e in read_manifest(version_dir)["files"].items()}
    with pytest.raises(LidrError, match="already exists.*--force"):
        materialize(run_dir, store, progress=False)
    assert {rel: e["sha256"] for rel, e in read_manifest(version_dir)["files"].items()} == before
    capsys.readouterr()
    heard: list[str] = []
    path = materialize(run_dir, store, force=True, progress=False, notify=heard.append)
    assert path == version_dir and verify(path).ok
    # The library reports the replacement to its caller and prints nothing; the CLI says it on stderr.
    assert heard == [f"--force: replacing existing version {version_dir}"] and capsys.readouterr().err == ""
    assert main(["materialize", str(run_dir), "--store", str(store), "--force"]) == 0
    assert "--force: replacing existing version" in capsys.readouterr().err
    assert sorted(p.name for p in store.joinpath("demo-lidr").iterdir() if p.is_dir()) == ["iter-1"]
    assert read_only(path)


def test_secrets_in_recipe_never_reach_manifest_or_card(tmp_path: Path, store: Path):
    run = make_run(tmp_path / "runs" / "x" / "iter-1", n_prompts=3, name="x")
    recipe = yaml.safe_load((run / "recipe.yaml").read_text())
    # The recipe is read through the Recipe type: an option no backend takes (where an old folder could hold a
    # key) is refused, naming the file and the field, before anything is written.
    recipe["backend_options"] = {"api_key": "sk-SECRET-123", "api_key_env": "OPENAI_API_KEY"}
    (run / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    with pytest.raises(LidrError, match=r"recipe\.yaml: backend_options: unknown option\(s\) api_key") as err:
        materialize(run, store, progress=False)
    assert "SECRET" not in str(err.value) and not store.exists()
    recipe["backend"] = "openai"
    recipe["backend_options"] = {"base_url": "https://user:SECRET-123@llm.example/v1", "api_key_env": "OPENAI_API_KEY"}
    (run / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    v = materialize(run, store, progress=False)
    for f in ("manifest.json", "README.md"):
        text = (v / f).read_text()
        assert "SECRET" not in text and "OPENAI_API_KEY" in text
    assert read_manifest(v)["recipe"]["generation"]["max_new_tokens"] == 512  # not a secret despite "tokens"


def test_verify_names_an_altered_file_and_the_cli_fails(version_dir: Path, capsys):
    assert main(["verify", str(version_dir)]) == 0
    target = version_dir / "data" / "de" / "train-00000-of-00001.parquet"
    flip_byte(target, target.stat().st_size // 2)
    result = verify(version_dir)
    assert not result.ok and result.problems == ["data/de/train-00000-of-00001.parquet: sha256 mismatch (file altered)"]
    capsys.readouterr()
    assert main(["verify", str(version_dir)]) == 1
    assert "data/de/train-00000-of-00001.parquet" in capsys.readouterr().err


def test_verify_missing_and_unlisted_files(version_dir: Path):
    writable(version_dir / "data" / "fr" / "train-00000-of-00001.parquet").unlink()
    overwrite(version_dir / "data" / "extra.parquet", b"x")
    problems = verify(version_dir).problems
    assert "data/fr/train-00000-of-00001.parquet: missing" in problems
    assert "data/extra.parquet: not listed in the manifest" in problems


@pytest.mark.parametrize("content, message", [
    ("{not json", "malformed manifest"),
    ("[]", "expected a JSON object"),
    ('{"schema_version": 1, "name": "x", "version": "v", "configs": {}, "counts": {}}', "field 'files'"),
    ('{"schema_version": 1, "name": "x", "version": "v", "configs": {}, "counts": {}, '
     '"files": {"../etc/passwd": {"sha256": "0"}}}', "bad entry"),
])
def test_malformed_manifest_is_a_clear_error(version_dir: Path, content: str, message: str, capsys):
    overwrite(version_dir / "manifest.json", content)
    before = _tree(version_dir)
    with pytest.raises(LidrError, match=message):
        verify(version_dir)
    assert main(["verify", str(version_dir)]) == 2
    assert message.split("'")[0] in capsys.readouterr().err
    assert _tree(version_dir) == before


@pytest.mark.parametrize("version", ["../escape", "a/b", ".hidden", "-rf", "x..y", ""])
def test_bad_version_names_are_refused_and_nothing_is_written(run_dir: Path, store: Path, version: str):
    with pytest.raises(LidrError, match="invalid version"):
        materialize(run_dir, store, version=version or "..", progress=False)
    assert not store.exists() or not any(store.rglob("*.parquet"))


def test_bad_dataset_name_in_recipe(run_dir: Path, store: Path):
    recipe = yaml.safe_load((run_dir / "recipe.yaml").read_text())
    recipe["name"] = "../../outside"
    (run_dir / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    # Read through the Recipe type: the recipe's own name check refuses it, naming the file and the field.
    with pytest.raises(LidrError, match=r"recipe\.yaml: name: .*got '\.\./\.\./outside'"):
        materialize(run_dir, store, progress=False)
    assert not store.exists()


def test_bad_run_folders(tmp_path: Path, store: Path, run_dir: Path):
    with pytest.raises(LidrError, match="does not exist"):
        materialize(tmp_path / "nope", store)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(LidrError, match="no pairs.parquet"):
        materialize(empty, store)
    pq.write_table(pq.read_table(run_dir / "pairs.parquet").drop(["chosen_lang"]), run_dir / "pairs.parquet")
    with pytest.raises(LidrError, match="missing published columns chosen_lang"):
        materialize(run_dir, store)
    assert not store.exists()


@pytest.mark.slow
def test_killed_materialize_leaves_no_version(tmp_path: Path, store: Path):
    """SIGKILL while the data is being written: no version appears; the next materialize cleans up and succeeds."""
    run = make_run(tmp_path / "runs" / "big" / "iter-1", n_prompts=15_000, name="big")
    script = ("import sys; from lidr_data.build.materialize import materialize; "
              "materialize(sys.argv[1], sys.argv[2], shard_rows=5000, progress=False)")
    proc = subprocess.Popen([sys.executable, "-c", script, str(run), str(store)])
    dataset_dir = store / "big"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        temps = [p for p in dataset_dir.glob(".tmp-*")] if dataset_dir.exists() else []
        if temps and any(temps[0].rglob("*.parquet")):
            break
        assert proc.poll() is None, "materialize finished before it could be killed"
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not (dataset_dir / "iter-1").exists()
    assert [p.name for p in dataset_dir.iterdir() if p.is_dir() and not p.name.startswith(".tmp-")] == []
    v = materialize(run, store, progress=False)
    assert verify(v).ok and [p.name for p in dataset_dir.iterdir() if p.is_dir()] == ["iter-1"]


# -- issue 10, item 7: nothing local, secret or empty is published

def _empty_pairs(run: Path) -> None:
    """Move every pair of a synthetic run into `dropped` (reason wrong_language): a build that kept nothing."""
    import pyarrow as pa

    pairs, dropped = pq.read_table(run / "pairs.parquet"), pq.read_table(run / "dropped.parquet")
    moved = pairs.append_column("stage", pa.array(["filter"] * pairs.num_rows)) \
        .append_column("reason", pa.array(["wrong_language"] * pairs.num_rows)) \
        .append_column("duplicate_of", pa.nulls(pairs.num_rows, pa.string()))
    pq.write_table(pa.concat_tables([dropped, moved.select(dropped.schema.names).cast(dropped.schema)]),
                   run / "dropped.parquet")
    pq.write_table(pairs.slice(0, 0), run / "pairs.parquet")


def _card_configs(version: Path) -> list[str]:
    meta = yaml.safe_load((version / "README.md").read_text().split("---")[1])
    return [c["config_name"] for c in meta["configs"]]


def _load(version: Path, config: str, cache: Path):
    import datasets

    return datasets.load_dataset(str(version), config, split="train", cache_dir=str(cache))


def test_zero_pairs_are_refused_naming_the_drop_reasons(run_dir: Path, store: Path, capsys):
    _empty_pairs(run_dir)
    with pytest.raises(LidrError, match=r"no pairs to materialize \(every row was dropped: filter/wrong_language"
                                         r" \d+, .*--allow-empty"):
        materialize(run_dir, store, progress=False)
    assert not (store / "demo-lidr").exists() or not any((store / "demo-lidr").iterdir())
    assert main(["materialize", str(run_dir), "--store", str(store)]) == 2
    assert "no pairs to materialize" in capsys.readouterr().err


def test_allow_empty_version_loads_every_config_its_card_lists(run_dir: Path, store: Path, tmp_path: Path):
    _empty_pairs(run_dir)
    assert main(["materialize", str(run_dir), "--store", str(store), "--allow-empty"]) == 0
    version = store / "demo-lidr" / "iter-1"
    assert verify(version).ok
    meta = yaml.safe_load((version / "README.md").read_text().split("---")[1])
    assert meta["language"] == ["de", "en", "es", "fr"]  # the recipe's languages, not []
    assert _card_configs(version) == ["dropped"]  # `all` is empty: datasets cannot load an empty split
    dropped = pq.read_table(run_dir / "dropped.parquet").num_rows
    assert _load(version, "dropped", tmp_path / "cache").num_rows == dropped
    assert "This version holds no pairs" in (version / "README.md").read_text()


def test_empty_dropped_config_is_not_listed_and_every_listed_config_loads(run_dir: Path, store: Path,
                                                                          tmp_path: Path, capsys):
    from lidr_data.build.pipeline import merge_drops

    (run_dir / "dropped.parquet").unlink()
    merge_drops([], run_dir / "dropped.parquet")  # what a build that dropped nothing writes
    version = materialize(run_dir, store, progress=False)
    listed = _card_configs(version)
    assert "dropped" not in listed and "all" in listed
    counts = read_manifest(version)["counts"]
    for config in listed:
        expected = counts["pairs"] if config == "all" else counts["by_language"][config]
        assert _load(version, config, tmp_path / "cache").num_rows == expected > 0
    capsys.readouterr()
    assert main(["sql", str(version), "SELECT count(*) AS n FROM dropped", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out) == [{"n": 0}]


@pytest.mark.slow
def test_manifest_and_hub_card_hold_no_absolute_local_path(run_dir: Path, store: Path, tmp_path: Path):
    import re

    from servers.hub_server import HubServer

    work = run_dir.parents[2]
    recipe = yaml.safe_load((run_dir / "recipe.yaml").read_text())
    recipe.update(workdir=str(work), model="/home/alice/models/M0")
    recipe["prompts"] = {"source": "/home/alice/data/prompts", "translation_task_ids": str(work / "tasks.jsonl")}
    recipe["imports"] = {"responses": [{"path": "~/answers.jsonl"}], "translations": []}
    (run_dir / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    version = materialize(run_dir, store, progress=False)
    m = read_manifest(version)
    assert m["source_run"] == "runs/demo-lidr/iter-1"
    assert m["recipe"]["workdir"] == "work" and m["recipe"]["model"] == "M0"
    assert m["recipe"]["prompts"] == {"source": "prompts", "translation_task_ids": "tasks.jsonl"}
    assert m["recipe"]["imports"]["responses"] == [{"path": "answers.jsonl"}]

    token = "hf_TestTokenDoNotLeak0123456789"
    with HubServer(token=token, upload_mode="regular") as hub:
        env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")}
        env.update(HF_ENDPOINT=hub.url, HF_HOME=str(tmp_path / "hf-home"), HF_TOKEN=token, HF_HUB_DISABLE_XET="1")
        out = subprocess.run([sys.executable, "-m", "lidr_data.cli", "publish", str(version), "--to", "acme/x"],
                             capture_output=True, text=True, env=env, timeout=120)
        assert out.returncode == 0, out.stderr
        files = hub.repos["acme/x"].commits[-1]["files"]
    home = os.path.expanduser("~")
    for rel, data in files.items():
        for local in (str(tmp_path), "/home/alice", home):
            assert local.encode() not in data, (rel, local)
    assert not re.search(rb"(?m)(^|[\s\"'`(])/(home|root|tmp|Users)/", files["README.md"] + files["manifest.json"])


def read_only(folder: Path) -> bool:
    """No write bit anywhere under a version (files and folders, the version folder included)."""
    return all(not (p.stat().st_mode & 0o222) for p in [folder, *folder.rglob("*")])


def _permission_bits_apply(tmp_path: Path) -> bool:
    """False for a process that ignores them (root with CAP_DAC_OVERRIDE, as in some containers)."""
    probe = tmp_path / "probe"
    probe.write_text("")
    probe.chmod(0o444)
    try:
        with open(probe, "a"):
            return False
    except PermissionError:
        return True


def test_versions_are_read_only_on_disk(version_dir: Path, tmp_path: Path):
    assert read_only(version_dir)
    assert all(p.stat().st_mode & 0o444 == 0o444 for p in version_dir.rglob("*"))  # still readable by all
    if _permission_bits_apply(tmp_path):  # then the bits stop an append, a new file, a deletion
        with pytest.raises(PermissionError):
            with open(version_dir / "README.md", "a") as f:
                f.write("appended")
        with pytest.raises(PermissionError):
            (version_dir / "data" / "new.parquet").write_bytes(b"x")
        with pytest.raises(PermissionError):
            (version_dir / "manifest.json").unlink()
    assert verify(version_dir).ok


FORGERIES = {
    "recipe.model": lambda m: m["recipe"].__setitem__("model", "forged/model"),
    "generator.model": lambda m: m["generator"].__setitem__("model", "gpt-forged"),
    "license": lambda m: m.__setitem__("license", "mit"),
    "parent": lambda m: m.__setitem__("parent", {"version": "iter-0", "manifest_sha256": None}),
}


@pytest.mark.parametrize("field", sorted(FORGERIES))
def test_a_forged_manifest_fails_verify_and_publish(version_dir: Path, tmp_path: Path, field: str, capsys):
    """Fields that no file hash covers: the content id recorded in the store's index catches the edit."""
    manifest = json.loads((version_dir / "manifest.json").read_text())
    made = content_id(manifest)
    assert recorded_content_id(version_dir) == made and verify(version_dir).content_id == made
    FORGERIES[field](manifest)
    overwrite(version_dir / "manifest.json", json.dumps(manifest, indent=2))
    result = verify(version_dir)
    expected = [f"manifest.json: manifest altered (content id {content_id(manifest)}, recorded when the version "
                f"was made: {made})"]
    if field == "generator.model":  # the rows name their generator too: seen even without a recorded id
        expected.append("generator: the rows were made by org/tiny-chat@0123abcd, the manifest says "
                        "gpt-forged@0123abcd")
    assert not result.ok and result.problems == expected
    capsys.readouterr()
    assert main(["verify", str(version_dir)]) == 1
    assert "manifest altered" in capsys.readouterr().err
    assert main(["publish", str(version_dir), "--to", str(tmp_path / "elsewhere")]) == 2
    assert "manifest altered" in capsys.readouterr().err and not (tmp_path / "elsewhere").exists()


def test_content_id_is_printed_indexed_and_listed(run_dir: Path, store: Path, tmp_path: Path, capsys):
    assert main(["materialize", str(run_dir), "--store", str(store)]) == 0
    version = store / "demo-lidr" / "iter-1"
    cid = content_id(read_manifest(version))
    assert f"contentid{cid}" in "".join(capsys.readouterr().out.split())
    index = [json.loads(line) for line in (store / "demo-lidr" / "index.jsonl").read_text().splitlines()]
    assert [(e["version"], e["content_id"]) for e in index] == [("iter-1", cid)]
    assert main(["verify", str(version)]) == 0
    assert f"contentid{cid}(matchestheidrecordedwhenitwasmade)" in "".join(capsys.readouterr().out.split())
    assert main(["versions", str(store / "demo-lidr")]) == 0
    assert cid[:12] in capsys.readouterr().out
    # Publishing to another local store records the new home's id (its card names the new location).
    assert main(["publish", str(version), "--to", str(tmp_path / "other-store")]) == 0
    copy = tmp_path / "other-store" / "demo-lidr" / "iter-1"
    assert recorded_content_id(copy) == content_id(read_manifest(copy)) and verify(copy).ok and read_only(copy)
    # A forced replacement is recorded too, and the replaced version is read-only again.
    assert main(["materialize", str(run_dir), "--store", str(store), "--force"]) == 0
    lines = (store / "demo-lidr" / "index.jsonl").read_text().splitlines()
    assert len(lines) == 2 and json.loads(lines[-1])["replaced"] is True
    assert verify(version).ok and read_only(version)


def test_the_final_move_never_replaces_a_version_that_appeared_meanwhile(run_dir: Path, store: Path, monkeypatch):
    """Two materializes of one version: the existence check at the start passes for both; the final move, under
    the dataset's lock, refuses the second unless --force (issue 10: it used to swap the first one out)."""
    import lidr_data.dataset.materialize as version_module

    first = {}
    real_fsync = version_module.fsync_tree

    def racing_fsync(folder: Path) -> None:  # the other writer finishes while this one is writing
        real_fsync(folder)
        if not first:
            monkeypatch.setattr(version_module, "fsync_tree", real_fsync)
            first["path"] = materialize(run_dir, store, version="iter-1", progress=False)
            first["id"] = content_id(read_manifest(first["path"]))

    monkeypatch.setattr(version_module, "fsync_tree", racing_fsync)
    with pytest.raises(LidrError, match="already exists.*--force"):
        materialize(run_dir, store, version="iter-1", progress=False)
    assert content_id(read_manifest(first["path"])) == first["id"] and verify(first["path"]).ok
    assert [p.name for p in (store / "demo-lidr").iterdir() if p.is_dir()] == ["iter-1"]  # no temp left behind


def test_materialize_run_reuses_the_version_of_the_same_pairs_and_refuses_other_pairs(run_dir: Path, store: Path):
    """The end of `lidr build`, as a library call: a rerun of a finished build finds its version up to date; a run
    whose pairs changed needs --force (or another version name). Progress and notices go to the callbacks."""
    from contextlib import contextmanager

    from lidr_data.build.materialize import materialize_run

    advanced: list[int] = []

    @contextmanager
    def progress(description: str, total: int):
        assert description == "materialize demo-lidr/iter-1" and total == pq.ParquetFile(run_dir / "pairs.parquet").metadata.num_rows
        yield advanced.append

    first = materialize_run(run_dir, progress=progress)  # the store defaults to WORKDIR/store
    assert first.path == store / "demo-lidr" / "iter-1" and not first.up_to_date and verify(first.path).ok
    assert sum(advanced) == pq.ParquetFile(run_dir / "pairs.parquet").metadata.num_rows
    assert first.content_id == content_id(read_manifest(first.path))
    again = materialize_run(run_dir)
    assert again == type(first)(first.path, first.content_id, up_to_date=True)
    make_run(run_dir, n_prompts=5)  # other pairs in the same run folder
    with pytest.raises(LidrError, match="built from other pairs.*--version NAME.*--force"):
        materialize_run(run_dir)
    heard: list[str] = []
    forced = materialize_run(run_dir, force=True, notify=heard.append)
    assert not forced.up_to_date and forced.content_id != first.content_id
    assert heard == [f"--force: replacing existing version {first.path}"]


def _copied_out(version_dir: Path, tmp_path: Path) -> Path:
    """The version copied out of its store (as a user shares a folder): no index beside it, no recorded id."""
    import shutil

    copy = tmp_path / "shared-with-me" / "iter-1"
    shutil.copytree(version_dir, copy)
    assert recorded_content_id(copy) is None and verify(copy).ok
    return copy


def _swap_de_fr(m: dict) -> None:
    m["configs"]["de"], m["configs"]["fr"] = m["configs"]["fr"], m["configs"]["de"]


DATA_CLAIMS = {
    "generator": (lambda m: m["generator"].update(model="org/famous-model", all=[["org/famous-model", "0123abcd"]]),
                  "generator: the rows were made by org/tiny-chat@0123abcd, the manifest says "
                  "org/famous-model@0123abcd"),
    "revision": (lambda m: m["generator"].update(revision="ffff", all=[["org/tiny-chat", "ffff"]]),
                 "generator: the rows were made by org/tiny-chat@0123abcd, the manifest says org/tiny-chat@ffff"),
    "iteration": (lambda m: m.__setitem__("iteration", 3), "iteration: the rows say 1, the manifest says 3"),
    "languages": (_swap_de_fr, "config de: holds rows in fr"),
}


@pytest.mark.parametrize("claim", sorted(DATA_CLAIMS))
def test_verify_checks_what_the_rows_say_without_a_recorded_id(version_dir: Path, tmp_path: Path, claim: str,
                                                               capsys):
    """Issue 20 item 8: a copied-out version has no recorded content id, so a manifest edited to claim another
    generator, revision, iteration or language split passed as "ok". The rows name these themselves."""
    copy = _copied_out(version_dir, tmp_path)
    forge, expected = DATA_CLAIMS[claim]
    manifest = read_manifest(copy)
    forge(manifest)
    overwrite(copy / "manifest.json", json.dumps(manifest, indent=2))
    result = verify(copy)
    assert not result.ok and expected in result.problems, result.problems
    capsys.readouterr()
    assert main(["verify", str(copy)]) == 1
    assert f"  {expected}\n" in capsys.readouterr().err  # whole, on one line


def test_verify_expect_closes_the_gap_of_a_copied_out_version(version_dir: Path, tmp_path: Path, capsys):
    """`--expect CONTENT_ID`: the id from a colleague or a paper. A field no row or file hash covers (the license)
    edited in a copy passes plain `verify`, and fails with `--expect`; ids are printed whole, never wrapped."""
    copy = _copied_out(version_dir, tmp_path)
    made = content_id(read_manifest(copy))
    capsys.readouterr()
    assert main(["verify", str(copy)]) == 0
    assert "no recorded id to check it against: pass --expect CONTENT_ID" in capsys.readouterr().out
    assert main(["verify", str(copy), "--expect", made.upper()]) == 0
    assert f"content id {made} (matches --expect)" in capsys.readouterr().out
    assert main(["verify", str(version_dir), "--expect", made]) == 0
    assert "(matches the id recorded when it was made and --expect)" in capsys.readouterr().out
    manifest = read_manifest(copy)
    manifest["license"] = "mit"
    overwrite(copy / "manifest.json", json.dumps(manifest, indent=2))
    forged = content_id(manifest)
    assert main(["verify", str(copy)]) == 0  # nothing to compare with: what --expect is for
    capsys.readouterr()
    assert main(["verify", str(copy), "--expect", made]) == 1
    err = capsys.readouterr().err
    assert f"  manifest.json: content id {forged}, not the expected {made} (--expect)\n" in err, err
    assert f"{copy}: 1 problem(s)\n" in err
    for bad in ("abc", made[:12], made + "0", "g" * 64):
        with pytest.raises(SystemExit):
            main(["verify", str(copy), "--expect", bad])
        assert "argument --expect" in capsys.readouterr().err
