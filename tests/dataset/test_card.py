"""The dataset card: Hub metadata that `datasets` reads, and usage snippets that run as written.

Real components: `lidr_data.load_version` and `datasets.load_dataset` (offline, each snippet in its own process
and HF_HOME), DuckDB, `lidr train` (TRL) on the tiny model. The snippets are taken from the rendered README.md
and run as written; the `lidr train` line gets only the tiny model's path in place of the generator's Hub id.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest
import yaml
from synthetic import make_run

from lidr_data.build.materialize import materialize
from lidr_data.dataset.layout import read_manifest


def _blocks(card: str, lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", card, flags=re.S)


def _front_matter(card: str) -> dict:
    assert card.startswith("---\n")
    return yaml.safe_load(card.split("---\n")[1])


def test_hub_metadata(version_dir: Path):
    card = (version_dir / "README.md").read_text()
    meta = _front_matter(card)
    m = read_manifest(version_dir)
    assert meta["license"] == "cc-by-nc-4.0"
    assert meta["language"] == ["de", "en", "es", "fr"]
    assert meta["task_categories"] == ["text-generation"] and meta["size_categories"] == ["n<1K"]
    configs = {c["config_name"]: c for c in meta["configs"]}
    assert set(configs) == set(m["configs"]) and configs["all"].get("default") is True
    assert configs["de"]["data_files"] == [{"split": "train", "path": "data/de/*.parquet"}]
    # Statistics and lineage in the text.
    assert f"| de | from_dominant | {m['counts']['by_language']['de']} |" in card
    for reason in m["counts"]["drop_reasons"]:
        assert f"| {reason} |" in card
    assert "org/tiny-chat" in card and "0123abcd" in card and "| parent version | none |" in card


def test_load_dataset_offline_de_and_all(version_dir: Path):
    from datasets import load_dataset

    m = read_manifest(version_dir)
    de = load_dataset(str(version_dir), "de", split="train")
    everything = load_dataset(str(version_dir), "all", split="train")
    assert de.num_rows == m["counts"]["by_language"]["de"] and set(de["lang"]) == {"de"}
    assert everything.num_rows == m["counts"]["pairs"]
    row = de[0]
    assert row["prompt"][0]["role"] == "user" and row["chosen"][0]["role"] == "assistant"
    dropped = load_dataset(str(version_dir), "dropped", split="train")
    assert dropped.num_rows == m["counts"]["dropped"] and all(dropped["reason"])


def _run_python(snippet: str, tmp_path: Path, hf_home: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "HF_HOME": str(hf_home)}
    env.pop("HF_DATASETS_CACHE", None)  # the snippet's cache is the one under its own HF_HOME
    return subprocess.run([sys.executable, "-c", snippet], capture_output=True, text=True, env=env, cwd=tmp_path,
                          timeout=120)


def test_python_snippets_run_as_written(version_dir: Path, tmp_path: Path):
    card = (version_dir / "README.md").read_text()
    lidr_snippet, datasets_snippet = _blocks(card, "python")
    assert f'lidr_data.load_version("{version_dir}", "de")' in lidr_snippet
    assert f'load_dataset("parquet", data_files="{version_dir}/data/de/*.parquet", split="train")' in datasets_snippet
    m = read_manifest(version_dir)
    for snippet in (lidr_snippet, datasets_snippet):
        out = _run_python(snippet, tmp_path, tmp_path / "hf")
        assert out.returncode == 0, out.stderr[-2000:]
        assert out.stdout.splitlines()[0] == f"{m['counts']['pairs']} {m['counts']['by_language']['de']}"


def test_python_snippets_of_two_versions_named_alike_share_one_cache_safely(version_dir: Path, tmp_path: Path):
    """Issue 9: a second, different `iter-1` in the same HF_HOME gets its own rows from both snippets."""
    other = materialize(make_run(tmp_path / "w2" / "runs" / "demo-lidr" / "iter-1", n_prompts=5, seed=7),
                        tmp_path / "w2" / "store", progress=False)
    assert other.name == version_dir.name
    for version in (version_dir, other, version_dir):
        card = (version / "README.md").read_text()
        m = read_manifest(version)
        for snippet in _blocks(card, "python"):
            out = _run_python(snippet, tmp_path, tmp_path / "shared-hf")
            assert out.returncode == 0, out.stderr[-2000:]
            assert out.stdout.splitlines()[0].split()[0] == str(m["counts"]["pairs"])


def test_duckdb_snippet_runs_as_written(version_dir: Path):
    card = (version_dir / "README.md").read_text()
    (sql,) = _blocks(card, "sql")
    rows = duckdb.connect().sql(sql).fetchall()
    m = read_manifest(version_dir)
    assert {(lang, d): n for lang, d, n, *_ in rows} == {
        (lang, d): n for lang, by in m["counts"]["by_language_direction"].items() for d, n in by.items()}


@pytest.mark.slow
def test_train_snippet_runs_as_written_on_cpu(version_dir: Path, tiny_model_dir: Path, tmp_path: Path):
    """The card's `lidr train` line, as written (only the generator, not downloadable here, becomes the tiny
    model), on this CPU machine: the defaults (no bf16, no checkpointing) run where they are."""
    card = (version_dir / "README.md").read_text()
    (cmd,) = _blocks(card, "bash")
    words = shlex.split(cmd)
    assert words[:3] == ["lidr", "train", str(version_dir)] and "org/tiny-chat" in words
    words = [str(tiny_model_dir) if w == "org/tiny-chat" else w for w in words]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf"),
           "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1"}  # one thread: the tiny model on 2 shared cores
    env.pop("HF_DATASETS_CACHE", None)
    out = subprocess.run([sys.executable, "-m", "lidr_data.cli", *words[1:]], capture_output=True, text=True,
                         env=env, cwd=tmp_path, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    model = tmp_path / "demo-lidr-iter-1-dpo"
    manifest = json.loads((model / "train_manifest.json").read_text())
    # Relative to the work folder it ran in (the manifest is pushed with --push-to: no absolute local path).
    assert manifest["dataset"]["path"] == version_dir.resolve().relative_to(tmp_path.resolve()).as_posix()
    assert manifest["metrics"]["train_loss"]


def test_hub_card_snippets_name_the_revision(version_dir: Path):
    from lidr_data.dataset.publish import staged_manifest
    from lidr_data.train.dpo import parse_args

    _, hub_card = staged_manifest(version_dir, "iter-1", "acme/demo-lidr", "iter-1")
    lidr_snippet, datasets_snippet = _blocks(hub_card, "python")
    assert 'lidr_data.load_version("acme/demo-lidr@iter-1", "de")' in lidr_snippet
    assert 'load_dataset("acme/demo-lidr", "de", split="train", revision="iter-1")' in datasets_snippet
    (cmd,) = _blocks(hub_card, "bash")
    targs, args, _ = parse_args(shlex.split(cmd)[2:])
    assert targs.dataset == "acme/demo-lidr@iter-1" and targs.model == "org/tiny-chat"
    assert targs.output == "./demo-lidr-iter-1-dpo" and args.bf16 is False  # CPU here
