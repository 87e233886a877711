"""Lineage is passed, not guessed (issue 14): a version names the parent it was given and the model that made it.

Real builds on the tiny model (counting the requests that reach it), real versions, `lidr verify`.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from counting import CountingGenerator
from leaks import files_holding
from synthetic import make_run
from tamper import flip_byte

import lidr_data.generation as generation
from lidr_data.build.materialize import materialize, materialize_run
from lidr_data.build.pipeline import build
from lidr_data.build.recipe import load_recipe
from lidr_data.cli import main
from lidr_data.dataset.layout import content_id, read_manifest
from lidr_data.dataset.lineage import TRAIN_MANIFEST, model_record, parent_record
from lidr_data.dataset.load import open_version
from lidr_data.errors import LidrError
from lidr_data.files import sha256_file

pytestmark = pytest.mark.slow  # tiny-model builds


class Loads(list):
    """`build(load_generator=...)`: real generators wrapped to count the requests that reach the model."""

    def __call__(self, *args, **kwargs):
        self.append(CountingGenerator(generation.load_generator(*args, **kwargs)))
        return self[-1]

    @property
    def calls(self) -> int:
        return sum(g.calls for g in self)


def demo(model: Path, **changes):
    return dataclasses.replace(load_recipe("lidr:assets/demo.yaml"), model=str(model), **changes)


@pytest.fixture(scope="module")
def iteration_one(tiny_model_dir: Path, tmp_path_factory):
    """(workdir, iter-1 version) built from the demo recipe on two items in en + es."""
    workdir = tmp_path_factory.mktemp("work")
    run = build(demo(tiny_model_dir), workdir=workdir, limit=2, langs=["es"], progress=False)
    return workdir, materialize_run(run).path


def trained_copy(tiny_model_dir: Path, version: Path, dst: Path) -> Path:
    """A model folder as `lidr train` leaves it: weights plus train_manifest.json naming the version trained on
    (the `dataset` record is what train/dpo.py writes when run from the work folder: `.lineage(workdir)`)."""
    shutil.copytree(tiny_model_dir, dst)
    (dst / TRAIN_MANIFEST).write_text(json.dumps({"schema_version": 1, "dataset": {
        **open_version(str(version)).lineage(version.parents[2]), "subset": "all"}}, indent=2), encoding="utf-8")
    return dst


def test_iteration_two_records_its_parent_and_its_generator(iteration_one, tiny_model_dir: Path, capsys):
    workdir, v1 = iteration_one
    m1_model = trained_copy(tiny_model_dir, v1, workdir / "M1")
    loads = Loads()
    run2 = build(demo(m1_model), workdir=workdir, limit=2, langs=["es"], iteration=2, parent=str(v1),
                 progress=False, load_generator=loads)
    assert loads.calls > 0
    v2 = materialize_run(run2).path
    m2, m1 = read_manifest(v2), read_manifest(v1)
    assert m2["parent"] == {"reference": "store/demo/iter-1", "name": "demo", "version": "iter-1",
                            "content_id": content_id(m1), "manifest_sha256": sha256_file(v1 / "manifest.json")}
    gen = m2["generator"]
    assert gen["model"] == "M1"  # relative to the work folder: no local path of this machine is published
    assert gen["train_manifest_sha256"] == sha256_file(m1_model / TRAIN_MANIFEST)
    assert gen["trained_on"]["content_id"] == content_id(m1) and gen["trained_on"]["version"] == "iter-1"
    assert gen["trained_on"]["reference"] == "store/demo/iter-1"
    # (The local card's usage snippet names the local folder; `publish` rewrites it. The manifest never does.)
    assert str(workdir) not in (v2 / "manifest.json").read_text()
    # Nor do the published rows: the pairs' generator_model is the model folder relative to the work folder.
    assert files_holding(v2, str(workdir)) == ["README.md"]  # the local card's usage snippet (see above)
    assert {m for f in (v2 / "data" / "all").glob("*.parquet")
            for m in pq.read_table(f, columns=["generator_model"])["generator_model"].to_pylist()} == {"M1"}
    assert content_id(m1) in (v2 / "README.md").read_text()
    capsys.readouterr()
    assert main(["verify", str(v2)]) == 0
    # Iteration 1 had no parent given: none, and the tiny model has no train manifest.
    assert m1["parent"] is None and "train_manifest_sha256" not in m1["generator"]


def test_no_parent_given_means_none_for_every_iteration(iteration_one, tiny_model_dir: Path):
    """Before issue 14 the parent of iteration N was guessed by scanning the store for iteration N-1."""
    workdir, _ = iteration_one
    run3 = build(demo(tiny_model_dir), workdir=workdir, limit=2, langs=["es"], iteration=3, progress=False)
    v3 = materialize_run(run3, version="iter-3-orphan").path
    assert read_manifest(v3)["parent"] is None
    # ... and a version whose parent changed is not "up to date": rebuilding needs --version or --force.
    lineage = json.loads((run3 / "lineage.json").read_text())
    lineage["parent"] = parent_record(str(iteration_one[1]), workdir)
    (run3 / "lineage.json").write_text(json.dumps(lineage))
    with pytest.raises(LidrError, match="exists with another parent"):
        materialize_run(run3, version="iter-3-orphan")


@pytest.mark.parametrize("kind", ["unknown", "altered", "not a version"])
def test_a_bad_parent_stops_the_build_before_any_generation(iteration_one, tiny_model_dir: Path, tmp_path: Path,
                                                            kind: str, capsys):
    workdir, v1 = iteration_one
    if kind == "unknown":
        ref, message = str(tmp_path / "nowhere" / "iter-1"), "unknown reference"
    elif kind == "altered":
        bad = tmp_path / "store" / "demo" / "iter-1"
        shutil.copytree(v1, bad)
        target = next((bad / "data" / "all").glob("*.parquet"))
        flip_byte(target, target.stat().st_size // 2)
        ref, message = str(bad), "the version fails verification .*sha256 mismatch"
    else:
        (tmp_path / "plain").mkdir()
        ref, message = str(tmp_path / "plain"), "not a dataset version"
    loads = Loads()
    with pytest.raises(LidrError, match=f"^parent {ref}: {message}"):
        build(demo(tiny_model_dir), workdir=tmp_path / "w", limit=2, langs=["es"], iteration=2, parent=ref,
              progress=False, load_generator=loads)
    assert loads == [] and not list((tmp_path / "w").rglob("*.parquet"))
    # The CLI: one line, exit 2, no version.
    recipe = tmp_path / "r.yaml"
    recipe.write_text(_demo_yaml(tiny_model_dir, parent=ref))
    capsys.readouterr()
    assert main(["build", str(recipe), "--workdir", str(tmp_path / "w2"), "--limit", "2", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert f"parent {ref}:" in err and "Traceback" not in err
    assert not (tmp_path / "w2" / "store").exists()


def _demo_yaml(model: Path, **changes) -> str:
    import yaml

    from lidr_data.config import resolve_path

    data = yaml.safe_load(resolve_path("lidr:assets/demo.yaml").read_text())
    data.update(model=str(model), **changes)
    return yaml.safe_dump(data)


def test_parent_outside_the_work_folder_and_materialize_parent(tmp_path: Path):
    """A parent outside the work folder is named dataset/version; `lidr materialize --parent` overrides."""
    elsewhere = materialize(make_run(tmp_path / "other" / "runs" / "demo-lidr" / "iter-1", n_prompts=3),
                            tmp_path / "other" / "store", progress=False)
    run = make_run(tmp_path / "work" / "runs" / "demo-lidr" / "iter-2", n_prompts=4, iteration=2)
    assert main(["materialize", str(run), "--store", str(tmp_path / "work" / "store"), "--parent",
                 str(elsewhere)]) == 0
    m = read_manifest(tmp_path / "work" / "store" / "demo-lidr" / "iter-2")
    assert m["parent"]["reference"] == "demo-lidr/iter-1" and m["parent"]["content_id"] == content_id(
        read_manifest(elsewhere))
    assert str(tmp_path) not in json.dumps(m)


def test_model_record_of_a_hub_id_and_of_an_unreadable_train_manifest(tmp_path: Path):
    assert model_record("Qwen/Qwen2.5-0.5B-Instruct", "main", tmp_path) == {
        "model": "Qwen/Qwen2.5-0.5B-Instruct", "revision": "main"}
    (tmp_path / "M").mkdir()
    (tmp_path / "M" / TRAIN_MANIFEST).write_text("{not json")
    rec = model_record(str(tmp_path / "M"), None, tmp_path)
    assert rec == {"model": "M", "revision": None, "train_manifest_sha256": sha256_file(tmp_path / "M" / TRAIN_MANIFEST),
                   "trained_on": None}
