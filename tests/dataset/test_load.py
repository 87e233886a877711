"""`lidr_data.load_version`: the rows of exactly the version a reference names.

Real components: `materialize` writes two versions, `datasets` (its real cache, in this test's own HF_HOME) loads
them. The first test reproduces issue 9's report: `load_dataset(<folder>, "all")` on two different versions both
named `iter-1`, in one cache, served the first one's rows for both.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from synthetic import make_run

import lidr_data
from lidr_data.build.materialize import materialize
from lidr_data.dataset.layout import content_id, read_manifest
from lidr_data.errors import LidrError


def _two_iter1_versions(tmp_path: Path) -> tuple[Path, Path]:
    a = materialize(make_run(tmp_path / "w1/runs/demo-lidr/iter-1", n_prompts=4), tmp_path / "w1/store",
                    progress=False)
    b = materialize(make_run(tmp_path / "w2/runs/demo-lidr/iter-1", n_prompts=9, seed=3), tmp_path / "w2/store",
                    progress=False)
    assert a.name == b.name == "iter-1"
    return a, b


def _pair_ids(version: Path, subset: str) -> list[str]:
    m = read_manifest(version)
    return sorted(x for rel in m["configs"][subset] for x in pq.read_table(version / rel)["pair_id"].to_pylist())


@pytest.mark.parametrize("subset", ["all", "de"])
def test_two_versions_named_iter1_in_one_cache_each_load_their_own_rows(tmp_path: Path, subset: str):
    a, b = _two_iter1_versions(tmp_path)
    cache = tmp_path / "datasets-cache"
    for _ in range(2):  # the second round is served from the cache
        for version in (a, b):
            ds = lidr_data.load_version(str(version), subset, cache_dir=cache)
            assert sorted(ds["pair_id"]) == _pair_ids(version, subset)
    assert _pair_ids(a, subset) != _pair_ids(b, subset)
    keyed = {p.name for p in (cache / "lidr-versions").iterdir()}
    assert keyed == {content_id(read_manifest(a)), content_id(read_manifest(b))}


def test_default_cache_follows_hf_home_and_store_references(tmp_path: Path):
    """In a subprocess (HF_HOME is read at import): no cache_dir, `store/name@version` references."""
    a, b = _two_iter1_versions(tmp_path)
    code = (
        "import sys, lidr_data\n"
        "for ref in sys.argv[1:]:\n"
        "    print(lidr_data.load_version(ref).num_rows)\n"
    )
    env = {**os.environ, "HF_HOME": str(tmp_path / "hf"), "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1"}
    env.pop("HF_DATASETS_CACHE", None)
    refs = [f"{a.parent}@iter-1", f"{b.parent}@iter-1", str(a)]
    out = subprocess.run([sys.executable, "-c", code, *refs], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    counts = [read_manifest(v)["counts"]["pairs"] for v in (a, b, a)]
    assert out.stdout.split() == [str(n) for n in counts]
    assert (tmp_path / "hf" / "datasets" / "lidr-versions" / content_id(read_manifest(a))).is_dir()


def test_plain_load_dataset_on_the_folder_is_the_reported_collision(tmp_path: Path):
    """Why load_version exists: `datasets` alone keys a local folder by its name (the issue's reproduction)."""
    from datasets import load_dataset

    a, b = _two_iter1_versions(tmp_path)
    cache = str(tmp_path / "plain-cache")
    first = load_dataset(str(a), "all", split="train", cache_dir=cache)
    second = load_dataset(str(b), "all", split="train", cache_dir=cache)
    assert first.num_rows == read_manifest(a)["counts"]["pairs"]
    if second.num_rows == read_manifest(b)["counts"]["pairs"]:
        pytest.skip("this `datasets` release no longer collides on folder names")
    assert sorted(second["pair_id"]) == _pair_ids(a, "all")  # b's load served a's rows


def test_a_version_failing_verify_is_refused(tmp_path: Path):
    a, _ = _two_iter1_versions(tmp_path)
    rel = read_manifest(a)["configs"]["de"][0]
    target = a / rel
    target.chmod(0o644)
    target.write_bytes(target.read_bytes()[:-8] + b"\0" * 8)
    with pytest.raises(LidrError, match=r"fails verification .*data/de/.*sha256 mismatch"):
        lidr_data.load_version(str(a), "all", cache_dir=tmp_path / "c")


def test_dropped_and_unknown_subsets_are_refused(tmp_path: Path):
    a, _ = _two_iter1_versions(tmp_path)
    with pytest.raises(LidrError, match="`dropped` subset"):
        lidr_data.load_version(str(a), "dropped", cache_dir=tmp_path / "c")
    with pytest.raises(LidrError, match=r"no subset 'ja' \(subsets: all, de, en, es, fr\)"):
        lidr_data.load_version(str(a), "ja", cache_dir=tmp_path / "c")
    with pytest.raises(LidrError, match="unknown reference"):
        lidr_data.load_version(str(tmp_path / "nowhere"), cache_dir=tmp_path / "c")


def test_import_lidr_data_does_not_import_datasets_or_torch():
    code = "import sys, lidr_data, lidr_data.cli; print('datasets' in sys.modules, 'torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.split() == ["False", "False"], out.stderr
