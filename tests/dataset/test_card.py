"""The dataset card: Hub metadata that `datasets` reads, and usage snippets that run as written.

Real components: `datasets.load_dataset` on the version folder (offline), DuckDB, TRL's DPOTrainer on the tiny
model. The snippets are taken from the rendered README.md; the DPO one gets only the tiny model's path and CPU
test settings (bf16 off, checkpointing off, 2 steps) substituted.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest
import yaml

from lidr_data.dataset.store import read_manifest


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
    assert "org/tiny-chat" in card and "0123abcd" in card and "first iteration" in card


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


def test_datasets_snippet_runs_as_written(version_dir: Path, tmp_path: Path):
    card = (version_dir / "README.md").read_text()
    snippet = _blocks(card, "python")[0]
    assert 'load_dataset("' + str(version_dir) + '", "de", split="train")' in snippet
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    out = subprocess.run([sys.executable, "-c", snippet], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    m = read_manifest(version_dir)
    assert out.stdout.splitlines()[0] == f"{m['counts']['pairs']} {m['counts']['by_language']['de']}"


def test_duckdb_snippet_runs_as_written(version_dir: Path):
    card = (version_dir / "README.md").read_text()
    (sql,) = _blocks(card, "sql")
    rows = duckdb.connect().sql(sql).fetchall()
    m = read_manifest(version_dir)
    assert {(lang, d): n for lang, d, n, *_ in rows} == {
        (lang, d): n for lang, by in m["counts"]["by_language_direction"].items() for d, n in by.items()}


@pytest.mark.slow
def test_trl_snippet_trains_two_dpo_steps_on_the_tiny_model(version_dir: Path, tiny_model_dir: Path, tmp_path: Path):
    card = (version_dir / "README.md").read_text()
    snippet = _blocks(card, "python")[1]
    assert 'MODEL = "org/tiny-chat"' in snippet and "DPOTrainer(" in snippet
    snippet = snippet.replace('MODEL = "org/tiny-chat"', f"MODEL = {str(tiny_model_dir)!r}")
    snippet = snippet.replace("DPOConfig(", "DPOConfig(max_steps=2, bf16=False, gradient_checkpointing=False, "
                              "per_device_train_batch_size=2, max_length=128, save_strategy='no', report_to=[], "
                              "use_cpu=True, logging_steps=1, ")
    snippet += "\nprint('STEPS', trainer.state.global_step, 'LOSS', trainer.state.log_history[-1].get('train_loss'))\n"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf"),
           "CUDA_VISIBLE_DEVICES": ""}
    out = subprocess.run([sys.executable, "-c", snippet], capture_output=True, text=True, env=env, cwd=tmp_path,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    line = [x for x in out.stdout.splitlines() if x.startswith("STEPS")][-1]
    assert line.startswith("STEPS 2 LOSS ") and line.split()[-1] != "None"


@pytest.mark.slow
def test_trl_cli_snippet_flags_exist(version_dir: Path):
    """`trl dpo` parses the card's command line (flags and values), checked without training."""
    card = (version_dir / "README.md").read_text()
    (cmd,) = [b for b in _blocks(card, "bash")]
    args = cmd.split()[2:] + ["--use_cpu", "True"]  # this test machine has no GPU (bf16 needs --use_cpu there)
    from trl import DPOConfig, ModelConfig, ScriptArguments, TrlParser

    parser = TrlParser((ScriptArguments, DPOConfig, ModelConfig))
    script_args, training_args, model_args = parser.parse_args_and_config(args)
    assert script_args.dataset_name == str(version_dir) and script_args.dataset_config == "all"
    assert training_args.loss_type == ["sigmoid", "sft"] and training_args.loss_weights == [1.0, 1.0]
    assert model_args.model_name_or_path == "org/tiny-chat"
    # The Hub variant of the card (as `lidr publish` renders it) parses too.
    from lidr_data.dataset.hub import staged_manifest

    _, hub_card = staged_manifest(version_dir, "iter-1", "acme/demo-lidr", "iter-1")
    (hub_cmd,) = _blocks(hub_card, "bash")
    script_args, _, _ = parser.parse_args_and_config(hub_cmd.split()[2:] + ["--use_cpu", "True"])
    assert script_args.dataset_name == "acme/demo-lidr"
