"""Pair-filter files (issue 13 item 3, build side): `lidr audit --write-filter` lists pair ids the judge found
reversed; a build drops exactly those with the file's reason (`judge_reversed`), kept + dropped = in, and the new
version's manifest says which audit removed what. Bad files are one clear line before anything runs.

The filter files are written by hand in the contract format, from the pair ids of a real version (a tiny-model
build), as `lidr audit --write-filter` writes them.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from counting import CountingGenerator
from postprocess_rows import make_pair, write_pairs

import lidr_data.generation as generation
from lidr_data.build.materialize import materialize_run
from lidr_data.build.pipeline import build, read_stats
from lidr_data.build.recipe import load_recipe
from lidr_data.cli import main
from lidr_data.dataset.layout import content_id, read_manifest, verify
from lidr_data.errors import LidrError
from lidr_data.files import sha256_file
from lidr_data.stages.filter import FilterConfig, filter_pairs, read_pair_filter
from lidr_data.stages.tag import TagConfig, tag_pairs

FR = "La rivière traverse la vieille ville, passe devant le marché et la cathédrale, avant d'atteindre la mer."
FR_B = "Le fleuve coule lentement vers l'océan en passant par les collines, les villages et les grandes forêts."


def write_filter(path: Path, pair_ids: list, **changes) -> Path:
    data = {"kind": "lidr-pair-filter", "reason": "judge_reversed",
            "audit": {"path": "store/demo/iter-1", "version": "iter-1", "content_id": "c" * 64, "judge": "length",
                      "judge_model": None, "sample": 8, "seed": 0},
            "pair_ids": pair_ids}
    data.update(changes)
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def test_listed_pairs_are_dropped_after_the_rules(tmp_path: Path):
    rows = [make_pair(f"Question {i} ?", FR + f" {i}", FR_B + f" {i}", lang="fr") for i in range(6)]
    rows.append(make_pair("Vide ?", FR, "  ", lang="fr"))  # empty_side: a built-in rule names it first
    raw = write_pairs(rows, tmp_path / "raw.parquet")
    tag_pairs(raw, tmp_path / "tagged.parquet", TagConfig(), ["en", "fr"])
    ids = pq.read_table(raw, columns=["pair_id"]).column("pair_id").to_pylist()
    listed = [ids[1], ids[4], ids[6], "no-such-pair"]
    f = read_pair_filter(write_filter(tmp_path / "judge_reversed.json", listed))
    stats = filter_pairs(raw, tmp_path / "tagged.parquet", tmp_path / "kept.parquet", tmp_path / "dropped.parquet",
                         dataclasses.replace(FilterConfig(), wrong_language=False), "en", [f])
    dropped = pq.read_table(tmp_path / "dropped.parquet").to_pylist()
    assert {(d["pair_id"], d["reason"]) for d in dropped} == {(ids[1], "judge_reversed"), (ids[4], "judge_reversed"),
                                                                (ids[6], "empty_side")}
    kept = pq.read_table(tmp_path / "kept.parquet").column("pair_id").to_pylist()
    assert kept == [ids[i] for i in (0, 2, 3, 5)]
    assert stats.dropped == {"judge_reversed": 2, "empty_side": 1} and stats.rows_in == 7 == stats.kept + 3


BAD = {
    "not JSON": ("{kind: nope", r"malformed JSON \(line 1, column 2"),
    "not an object": ("[1, 2]", "expected a JSON object"),
    "wrong kind": (json.dumps({"kind": "something", "reason": "judge_reversed", "pair_ids": []}), "field `kind`"),
    "no reason": (json.dumps({"kind": "lidr-pair-filter", "pair_ids": []}), "field `reason`"),
    "built-in reason": (json.dumps({"kind": "lidr-pair-filter", "reason": "wrong_language", "pair_ids": []}),
                        "field `reason`: 'wrong_language' is a built-in filter rule"),
    "ids not a list": (json.dumps({"kind": "lidr-pair-filter", "reason": "judge_reversed", "pair_ids": "abc"}),
                       "field `pair_ids`: expected a list"),
    "an id not a string": (json.dumps({"kind": "lidr-pair-filter", "reason": "judge_reversed",
                                       "pair_ids": ["a", 5]}), r"field `pair_ids\[1\]`: expected a pair id"),
    "audit not an object": (json.dumps({"kind": "lidr-pair-filter", "reason": "judge_reversed", "pair_ids": [],
                                        "audit": "x"}), "field `audit`"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_a_bad_filter_file_is_one_line_naming_file_and_field(tmp_path: Path, case: str):
    text, message = BAD[case]
    path = tmp_path / "f.json"
    path.write_text(text)
    with pytest.raises(LidrError, match=f"^{path}: {message}"):
        read_pair_filter(path)


def test_missing_file(tmp_path: Path):
    with pytest.raises(LidrError, match="pair filter file not found"):
        read_pair_filter(tmp_path / "absent.json")


# -- a real build on the tiny model

class Loads(list):
    def __call__(self, *args, **kwargs):
        self.append(CountingGenerator(generation.load_generator(*args, **kwargs)))
        return self[-1]

    @property
    def calls(self) -> int:
        return sum(g.calls for g in self)


@pytest.fixture(scope="module")
def demo_version(tiny_model_dir: Path, tmp_path_factory):
    """(recipe, workdir, iter-1 version, its run folder): the demo recipe on three items in en + es, de."""
    workdir = tmp_path_factory.mktemp("work")
    recipe = dataclasses.replace(load_recipe("lidr:assets/demo.yaml"), model=str(tiny_model_dir))
    run = build(recipe, workdir=workdir, limit=3, langs=["es", "de"], progress=False)
    return recipe, workdir, materialize_run(run).path, run


@pytest.mark.slow
def test_build_drops_exactly_the_listed_pairs_and_records_the_audit(demo_version, tmp_path: Path, capsys):
    recipe, workdir, v1, run = demo_version
    pairs = pq.read_table(v1 / "data" / "all", columns=["pair_id"]).column("pair_id").to_pylist()
    assert len(pairs) >= 3, "the demo build should keep a few pairs"
    chosen = sorted(pairs[::2])
    work = shutil.copytree(workdir, tmp_path / "work", symlinks=True)  # the module's folder stays as it was
    audited = work / "store" / "demo" / "iter-1"
    filter_file = write_filter(work / "judge_reversed.json", sorted([*chosen, "0" * 16]),
                               audit={"path": str(audited), "version": "iter-1",
                                      "content_id": content_id(read_manifest(v1)), "judge": "length",
                                      "judge_model": None, "sample": len(pairs), "seed": 0})
    loads = Loads()
    run2 = build(recipe, workdir=work, limit=3, langs=["es", "de"], progress=False, load_generator=loads,
                 exclude_pairs=[filter_file], parent=str(audited))
    assert loads.calls == 0  # generation is reused: only filter and dedup ran again
    v2 = materialize_run(run2, version="iter-1-audited").path

    dropped = pq.read_table(v2 / "data" / "dropped").to_pylist()
    reversed_ = sorted(d["pair_id"] for d in dropped if d["reason"] == "judge_reversed")
    assert reversed_ == chosen and all(d["stage"] == "filter" for d in dropped if d["reason"] == "judge_reversed")
    kept = set(pq.read_table(v2 / "data" / "all", columns=["pair_id"]).column("pair_id").to_pylist())
    assert kept == set(pairs) - set(chosen)
    for s in read_stats(run2):  # kept + dropped = in, at every stage
        assert s.rows_in == s.kept + sum(s.dropped.values())
    m2 = read_manifest(v2)
    assert m2["counts"]["drop_reasons"]["judge_reversed"] == len(chosen)
    assert m2["counts"]["pairs"] + m2["counts"]["dropped"] == read_manifest(v1)["counts"]["pairs"] + \
        read_manifest(v1)["counts"]["dropped"]
    record = m2["filters"]["exclude_pairs"]
    assert record == [{"path": "judge_reversed.json", "sha256": sha256_file(filter_file), "reason": "judge_reversed",
                       "audit": {"path": "store/demo/iter-1", "version": "iter-1",
                                 "content_id": content_id(read_manifest(v1)), "judge": "length", "judge_model": None,
                                 "sample": len(pairs), "seed": 0},
                       "listed": len(chosen) + 1, "dropped": len(chosen)}]
    assert m2["parent"]["content_id"] == content_id(read_manifest(v1))
    assert m2["recipe"]["filters"]["exclude_pairs"] == ["judge_reversed.json"]
    assert str(tmp_path) not in (v2 / "manifest.json").read_text()
    assert (f"| removed by `judge_reversed.json` (judge_reversed) | {len(chosen)} of {len(chosen) + 1} listed pairs; "
            "audit of `iter-1` by the `length` judge, sample") in (v2 / "README.md").read_text()
    assert verify(v2).ok
    capsys.readouterr()
    assert main(["verify", str(v2)]) == 0

    # A changed file reruns filter and dedup only; the same file again reruns nothing.
    write_filter(work / "judge_reversed.json", chosen[:1])
    events: list = []
    from lidr_data.build.pipeline import BuildEvents
    build(recipe, workdir=work, limit=3, langs=["es", "de"], progress=False, load_generator=loads,
          exclude_pairs=[work / "judge_reversed.json"], events=BuildEvents(stage_done=lambda s, t: events.append(
              (s.stage, t is None))))
    assert loads.calls == 0
    assert [stage for stage, skipped in events if not skipped] == ["filter", "dedup"]
    assert read_stats(run2)[-2].dropped.get("judge_reversed") == 1


@pytest.mark.slow
def test_a_bad_filter_file_stops_the_build_before_generation_and_writes_no_version(demo_version, tmp_path: Path,
                                                                                   capsys):
    recipe, *_ = demo_version
    bad = write_filter(tmp_path / "bad.json", ["a", None])
    loads = Loads()
    with pytest.raises(LidrError, match=rf"^filters.exclude_pairs\[0\]: {bad}: field `pair_ids\[1\]`"):
        build(recipe, workdir=tmp_path / "w", limit=3, langs=["es"], progress=False, load_generator=loads,
              exclude_pairs=[bad])
    assert loads == [] and not list((tmp_path / "w").rglob("*.parquet"))
    recipe_file = tmp_path / "r.yaml"
    recipe_file.write_text(recipe.to_yaml())
    capsys.readouterr()
    assert main(["build", str(recipe_file), "--workdir", str(tmp_path / "w2"), "--limit", "2", "--no-progress",
                 "--exclude-pairs", str(tmp_path / "absent.json")]) == 2
    err = capsys.readouterr().err
    assert "absent.json: pair filter file not found" in err and "Traceback" not in err
    assert not (tmp_path / "w2" / "store").exists()


@pytest.mark.slow
def test_audit_write_filter_then_build_drops_what_the_audit_found_reversed(demo_version, tmp_path: Path, capsys):
    """The whole user path on the command line: `lidr audit --write-filter`, then `lidr build --exclude-pairs`."""
    recipe, workdir, v1, _ = demo_version
    work = shutil.copytree(workdir, tmp_path / "work", symlinks=True)
    audited = work / "store" / "demo" / "iter-1"
    recipe_file = tmp_path / "r.yaml"
    recipe_file.write_text(recipe.to_yaml())
    capsys.readouterr()
    assert main(["audit", str(audited), "--judge", "length", "--sample", "50", "--seed", "1", "--write-filter",
                 "--no-progress"]) == 0
    filter_file = audited.parent / "audits" / "iter-1" / "length-50-1" / "judge_reversed.json"
    assert str(filter_file) in capsys.readouterr().out.replace("\n", "")
    listed = json.loads(filter_file.read_text())["pair_ids"]
    # independently: the audit's own per-pair outcomes (every pair is sampled: 50 > pairs per stratum)
    audit_rows = pq.read_table(filter_file.parent / "pairs.parquet", columns=["pair_id", "outcome"]).to_pylist()
    assert listed == sorted(r["pair_id"] for r in audit_rows if r["outcome"] == "rejected") and listed

    assert main(["build", str(recipe_file), "--workdir", str(work), "--limit", "3", "--langs", "es", "de",
                 "--no-progress", "--exclude-pairs", str(filter_file), "--parent", str(audited),
                 "--version", "iter-1-audited"]) == 0
    v2 = work / "store" / "demo" / "iter-1-audited"
    dropped = pq.read_table(v2 / "data" / "dropped").to_pylist()
    assert sorted(d["pair_id"] for d in dropped if d["reason"] == "judge_reversed") == listed
    kept = set(pq.read_table(v2 / "data" / "all", columns=["pair_id"]).column("pair_id").to_pylist())
    v1_kept = set(pq.read_table(v1 / "data" / "all", columns=["pair_id"]).column("pair_id").to_pylist())
    assert kept == v1_kept - set(listed)
    record = read_manifest(v2)["filters"]["exclude_pairs"][0]
    assert record["audit"]["content_id"] == content_id(read_manifest(audited)) and record["dropped"] == len(listed)
    assert main(["verify", str(audited)]) == 0 and main(["verify", str(v2)]) == 0
