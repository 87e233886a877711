"""`lidr train`: real TRL training steps on the tiny model, from a version made by `lidr build`, through the CLI.

Real components: `lidr build` (the demo recipe on the tiny model), `load_version` with `datasets`, TRL's
DPOTrainer, transformers loading and generating from the output folder, huggingface_hub's ModelCard.
"""

from __future__ import annotations

import inspect
import json
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from synthetic import make_run
from train_helpers import mean_margin

import lidr_data
from lidr_data.build.materialize import materialize
from lidr_data.cli import main
from lidr_data.dataset.layout import content_id, read_manifest
from lidr_data.errors import LidrError
from lidr_data.train.data import check_columns, check_template_and_lengths, split_by_prompt
from lidr_data.train.dpo import parse_args
from lidr_data.train.output import staging_dir

FAST = ["--per_device_train_batch_size", "4", "--logging_steps", "1", "--max_length", "256", "--save_strategy", "no"]


def _train_rows(version: Path, fraction: float, seed: int = 42) -> list[dict]:
    ds = lidr_data.load_version(str(version))
    train, _ = split_by_prompt(ds, fraction, seed)
    return [{k: r[k] for k in ("prompt", "chosen", "rejected")} for r in train]


@pytest.fixture(scope="module")
def synthetic_version(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("synthetic")
    return materialize(make_run(work / "runs" / "demo-lidr" / "iter-1", n_prompts=6), work / "store", progress=False)


@pytest.mark.slow
def test_train_five_steps_from_a_built_version(built_version, tiny_model_dir, tmp_path, capsys):
    from huggingface_hub import ModelCard
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = tmp_path / "M1"
    code = main(["train", str(built_version), "--model", str(tiny_model_dir), "--output", str(out),
                 "--max_steps", "5", "--learning_rate", "1e-3", "--eval-fraction", "0.25", *FAST])
    printed = capsys.readouterr().out
    assert code == 0
    n = read_manifest(built_version)["counts"]["pairs"]
    assert f"pairs: {n} (" in printed and "dropped by TRL (prompt alone too long)" in printed
    assert not staging_dir(out).exists()
    for name in ("config.json", "model.safetensors", "tokenizer.json", "chat_template.jinja", "README.md",
                 "train_manifest.json"):
        assert (out / name).is_file(), name

    manifest = json.loads((out / "train_manifest.json").read_text())
    cid = content_id(read_manifest(built_version))
    # Published with --push-to: outside the work folder (the current directory), a version is `dataset/version`
    # and a model folder its name (test_hub_train.py checks a pushed model holds no local path at all).
    assert manifest["dataset"]["reference"] == manifest["dataset"]["path"] == "demo/iter-1"
    assert manifest["dataset"]["content_id"] == cid and manifest["dataset"]["version"] == "iter-1"
    assert manifest["base_model"]["path"] == tiny_model_dir.name
    assert manifest["settings"]["dpo"]["max_steps"] == 5 and manifest["settings"]["dpo"]["bf16"] is False
    assert manifest["objective"]["nll_normalization"] == "sequence"
    assert manifest["data"]["train_pairs"] + manifest["data"]["eval_pairs"] == n and manifest["data"]["eval_pairs"]
    assert {"train_loss", "eval_loss", "eval_rewards/margins", "last_logged/nll"} <= set(manifest["metrics"])
    assert manifest["libraries"]["trl"] and manifest["libraries"]["torch"]

    card = ModelCard.load(out / "README.md")
    assert card.data.lidr_dataset["content_id"] == cid and card.data.base_model is None  # local base
    assert cid in card.text and "the local version `demo/iter-1`" in card.text
    assert "[None]" not in card.text and f"the local model `{tiny_model_dir.name}`" in card.text
    assert str(tmp_path.parent.parent) not in card.text + json.dumps(manifest)
    assert sorted(card.data.language) == sorted(read_manifest(built_version)["counts"]["by_language"])

    # Training moved the model the DPO way on its own training pairs; the output loads and generates.
    tokenizer = AutoTokenizer.from_pretrained(out)
    trained = AutoModelForCausalLM.from_pretrained(out)
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    rows = _train_rows(built_version, 0.25)
    assert len(rows) == manifest["data"]["train_pairs"]
    assert mean_margin(base, base, tokenizer, rows) == 0
    assert mean_margin(trained, base, tokenizer, rows) > 0.5
    ids = tokenizer.apply_chat_template(rows[0]["prompt"], add_generation_prompt=True, return_tensors="pt",
                                        return_dict=True)
    gen = trained.generate(**ids, max_new_tokens=4, do_sample=False)
    assert gen.shape[1] > ids["input_ids"].shape[1]


@pytest.mark.slow
def test_lora_output_is_a_merged_full_model_with_the_adapter_beside_it(synthetic_version, tiny_model_dir, tmp_path):
    import torch
    from transformers import AutoModelForCausalLM

    out = tmp_path / "lora"
    assert main(["train", str(synthetic_version), "--model", str(tiny_model_dir), "--output", str(out),
                 "--max_steps", "3", "--learning_rate", "1e-2", "--use_peft", "--lora_r", "4", "--lora_alpha", "8",
                 "--lora_target_modules", "q_proj", "v_proj", "--precompute-ref-log-probs", *FAST]) == 0
    assert (out / "adapter" / "adapter_config.json").is_file() and not (out / "adapter_config.json").exists()
    merged = AutoModelForCausalLM.from_pretrained(out)  # a plain model: the next `lidr build` loads it as is
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    q_m, q_b = merged.model.layers[0].self_attn.q_proj.weight, base.model.layers[0].self_attn.q_proj.weight
    k_m, k_b = merged.model.layers[0].self_attn.k_proj.weight, base.model.layers[0].self_attn.k_proj.weight
    assert not torch.equal(q_m, q_b) and torch.equal(k_m, k_b)  # only the adapted modules moved
    manifest = json.loads((out / "train_manifest.json").read_text())
    assert manifest["lora"] is True and manifest["settings"]["model"]["lora_r"] == 4
    assert "lora" in (out / "README.md").read_text()


def test_config_file_with_command_line_overrides_and_cpu_defaults(tmp_path):
    cfg = tmp_path / "train.yaml"
    cfg.write_text("dataset: some/ref@iter-1\nmax_steps: 7\nlearning_rate: 1.0e-4\nnll_weight: 0.5\nbeta: 0.2\n")
    targs, args, margs = parse_args(["--config", str(cfg), "--max_steps", "2", "--nll-normalization", "token",
                                     "--precompute-ref-log-probs", "--model", "m"])
    assert (args.max_steps, args.learning_rate, args.beta, args.precompute_ref_log_probs) == (2, 1e-4, 0.2, True)
    assert (targs.dataset, targs.nll_weight, targs.nll_normalization, targs.model) == \
        ("some/ref@iter-1", 0.5, "token", "m")
    assert args.bf16 is False and args.gradient_checkpointing is False and args.use_cpu is True  # no GPU here
    targs, _, _ = parse_args(["org/x@iter-2", "--subset", "de"])  # the first bare word is the reference
    assert (targs.dataset, targs.subset) == ("org/x@iter-2", "de")


def test_split_by_prompt_keeps_both_directions_of_a_prompt_together(synthetic_version):
    ds = lidr_data.load_version(str(synthetic_version))
    train, held = split_by_prompt(ds, 0.3, seed=1)
    assert train.num_rows + held.num_rows == ds.num_rows
    assert not set(train["prompt_id"]) & set(held["prompt_id"])
    assert {"to_dominant", "from_dominant"} <= set(held["direction"])
    n_prompts = len(set(ds["prompt_id"]))
    assert len(set(held["prompt_id"])) == -(-3 * n_prompts // 10)  # ceil(0.3 * prompts)
    assert list(split_by_prompt(ds, 0.3, seed=1)[1]["pair_id"]) == list(held["pair_id"])
    assert len({tuple(sorted(set(split_by_prompt(ds, 0.3, seed=s)[1]["prompt_id"]))) for s in range(6)}) > 1


def test_length_report_counts_what_trl_drops_and_truncates(synthetic_version, tiny_model_dir, tmp_path):
    from transformers import AutoTokenizer
    from trl import DPOConfig

    from lidr_data.train.loss import LidrDPOTrainer

    ds = lidr_data.load_version(str(synthetic_version))
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    max_length = 40
    report = check_template_and_lengths(ds, tokenizer, max_length, "x")
    assert report.pairs == ds.num_rows and 0 < report.dropped_prompt_too_long < ds.num_rows and report.truncated
    args = DPOConfig(output_dir=str(tmp_path / "o"), bf16=False, gradient_checkpointing=False, use_cpu=True,
                     max_length=max_length, report_to=[])
    trainer = LidrDPOTrainer(model=str(tiny_model_dir), args=args, train_dataset=ds, processing_class=tokenizer)
    kept = trainer.train_dataset
    assert kept.num_rows == ds.num_rows - report.dropped_prompt_too_long
    cut = sum(len(p) + max(len(c), len(r)) > max_length
              for p, c, r in zip(kept["prompt_ids"], kept["chosen_ids"], kept["rejected_ids"]))
    assert cut == report.truncated


# ------------------------------------------------------------------------------------------------ bad input


def _bad_template_model(tiny_model_dir: Path, tmp_path: Path) -> Path:
    """The tiny model with a template that renders an assistant turn unlike its generation prompt."""
    model = tmp_path / "bad-template"
    shutil.copytree(tiny_model_dir, model)
    (model / "chat_template.jinja").write_text(
        "{% for m in messages %}<|{{ m['role'] }}|>: {{ m['content'] }}<|end|>\n{% endfor %}"
        "{% if add_generation_prompt %}<|assistant|>\n{% endif %}")
    return model


def _broken_weights_model(tiny_model_dir: Path, tmp_path: Path) -> Path:
    model = tmp_path / "broken-weights"
    shutil.copytree(tiny_model_dir, model)
    data = (model / "model.safetensors").read_bytes()
    (model / "model.safetensors").write_bytes(data[:100])
    return model


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def _broken_config_model(tiny_model_dir: Path, tmp_path: Path) -> Path:
    model = tmp_path / "broken-config"
    shutil.copytree(tiny_model_dir, model)
    (model / "config.json").write_text("{")
    return model


def _failing_verify(version: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "store" / "demo-lidr" / "iter-1"
    shutil.copytree(version, copy)
    for p in copy.rglob("*"):
        p.chmod(0o755 if p.is_dir() else 0o644)
    target = copy / read_manifest(copy)["configs"]["de"][0]
    target.write_bytes(target.read_bytes()[:-8] + b"\0" * 8)
    return copy


def _empty_version(tmp_path: Path) -> Path:
    import pyarrow.parquet as pq

    run = make_run(tmp_path / "runs" / "empty" / "iter-1", n_prompts=2, name="empty")
    pq.write_table(pq.read_table(run / "pairs.parquet").slice(0, 0), run / "pairs.parquet")
    # A later change may ask for an explicit opt-in to empty versions: give it when the function takes it.
    kw = {"allow_empty": True} if "allow_empty" in inspect.signature(materialize).parameters else {}
    return materialize(run, tmp_path / "store", progress=False, **kw)


BAD = {
    "unresolvable reference": (lambda v, m, t: (["nowhere/at/all/x"], {}), "unknown reference"),
    "version failing verify": (lambda v, m, t: ([str(_failing_verify(v, t))], {}), "fails verification"),
    "dropped subset": (lambda v, m, t: ([str(v), "--subset", "dropped"], {}), "`dropped` subset"),
    "unknown subset": (lambda v, m, t: ([str(v), "--subset", "ja"], {}), "no subset 'ja'"),
    "subset with 0 pairs": (lambda v, m, t: ([str(_empty_version(t))], {}), "0 pairs"),
    "model folder that is empty": (lambda v, m, t: ([str(v)], {"model": t}), "does not load"),
    "model folder with a broken config": (lambda v, m, t: ([str(v)], {"model": _broken_config_model(m, t)}),
                                          "does not load"),
    "model folder with broken weights": (
        lambda v, m, t: ([str(v)], {"model": _broken_weights_model(m, t)}), "does not load"),
    "chat template whose prompt is not a prefix": (
        lambda v, m, t: ([str(v)], {"model": _bad_template_model(m, t)}), "is not a prefix of prompt + completion"),
    "every prompt longer than max_length": (lambda v, m, t: ([str(v), "--max_length", "3"], {}), "every prompt"),
    "evaluation without held-out pairs": (lambda v, m, t: ([str(v), "--eval_strategy", "steps"], {}),
                                          "needs held-out pairs"),
    "another loss type": (lambda v, m, t: ([str(v), "--loss_type", "ipo"], {}), "instead of --loss_type"),
    "bad nll normalization": (lambda v, m, t: ([str(v), "--nll-normalization", "batch"], {}), "bad arguments"),
    "bad --push-to name": (lambda v, m, t: ([str(v), "--push-to", "acme/../x"], {}), "org/name"),
    "malformed --config file": (lambda v, m, t: ([str(v), "--config", str(_write(t / "c.yaml", "a: [1,"))], {}),
                                "lidr train:"),
    "missing --config file": (lambda v, m, t: ([str(v), "--config", str(t / "none.yaml")], {}), "none.yaml"),
    "a license that is no id": (lambda v, m, t: ([str(v), "--license", "CC BY 4.0"], {}), "license: a license id"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_is_one_line_exit_2_and_writes_nothing(case, synthetic_version, tiny_model_dir, tmp_path, capsys):
    make, expected = BAD[case]
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    words, opts = make(synthetic_version, tiny_model_dir, scratch)
    out = tmp_path / "out"
    code = main(["train", *words, "--model", str(opts.get("model", tiny_model_dir)), "--output", str(out),
                 "--max_steps", "1"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert expected in " ".join(err.split()) and "Traceback" not in err
    assert not out.exists() and not staging_dir(out).exists()


# Refused by `check` or by `load` before the model's tokenizer and config are read (`_check_model`).
BEFORE_THE_MODEL = ["unresolvable reference", "version failing verify", "dropped subset", "unknown subset",
                    "subset with 0 pairs", "another loss type", "bad --push-to name", "a license that is no id"]


@pytest.mark.parametrize("case", BEFORE_THE_MODEL)
def test_bad_input_is_refused_before_any_model_load(case, synthetic_version, tiny_model_dir, tmp_path, capsys,
                                                     monkeypatch):
    from lidr_data.train import dpo

    def loaded(*args, **kwargs):
        raise AssertionError(f"{case}: the model was loaded before the bad input was refused")

    monkeypatch.setattr(dpo, "_check_model", loaded)
    make, expected = BAD[case]
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    words, _ = make(synthetic_version, tiny_model_dir, scratch)
    out = tmp_path / "out"
    assert main(["train", *words, "--model", str(tiny_model_dir), "--output", str(out), "--max_steps", "1"]) == 2
    assert expected in " ".join(capsys.readouterr().err.split())
    assert not out.exists() and not staging_dir(out).exists()


@pytest.mark.slow
def test_an_output_that_holds_a_model_is_refused_unless_overwrite(synthetic_version, tiny_model_dir, tmp_path, capsys):
    out = tmp_path / "existing"
    shutil.copytree(tiny_model_dir, out)
    before = sorted(p.name for p in out.iterdir())
    assert main(["train", str(synthetic_version), "--model", str(tiny_model_dir), "--output", str(out)]) == 2
    assert "already holds a model (pass --overwrite" in " ".join(capsys.readouterr().err.split())
    assert sorted(p.name for p in out.iterdir()) == before
    # --overwrite replaces it; the next iteration's run records the lineage of its base model.
    assert main(["train", str(synthetic_version), "--model", str(tiny_model_dir), "--output", str(out),
                 "--overwrite", "--max_steps", "1", *FAST]) == 0
    first = json.loads((out / "train_manifest.json").read_text())
    m2 = tmp_path / "M2"
    assert main(["train", str(synthetic_version), "--model", str(out), "--output", str(m2), "--max_steps", "1",
                 *FAST]) == 0
    second = json.loads((m2 / "train_manifest.json").read_text())
    assert second["base_model"]["trained_on"]["content_id"] == first["dataset"]["content_id"]


def test_help_lists_lidr_and_trl_options(capsys):
    assert main(["train", "--help"]) == 0
    text = capsys.readouterr().out
    for flag in ("--nll-weight", "--nll-normalization", "--eval-fraction", "--push-to", "--beta",
                 "--precompute_ref_log_probs", "--use_peft", "--max_steps"):
        assert flag in text, flag


def test_trust_remote_code_is_refused(synthetic_version, tiny_model_dir, tmp_path, capsys):
    code = main(["train", str(synthetic_version), "--model", str(tiny_model_dir), "--output", str(tmp_path / "o"),
                 "--trust_remote_code", "True"])
    assert code == 2 and "--trust_remote_code is refused" in capsys.readouterr().err


def test_a_dataset_without_preference_columns_is_refused():
    from datasets import Dataset

    ds = Dataset.from_list([{"prompt": [{"role": "user", "content": "hi"}], "answer": "x"}])
    with pytest.raises(LidrError, match=r"x: no `chosen`, `rejected` column"):
        check_columns(ds, "x")


# ------------------------------------------------------------------------------------------------ resume


def _script_env(tmp_path: Path) -> dict:
    import os

    return {**os.environ, "HF_HOME": str(tmp_path / "hf"), "HF_DATASETS_CACHE": str(tmp_path / "hf" / "datasets"),
            "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1"}


@pytest.mark.slow
def test_resume_continues_from_the_last_checkpoint_after_a_kill(synthetic_version, tiny_model_dir, tmp_path):
    """SIGKILL right after checkpoint-4 is complete (the process kills itself on the Trainer's `on_save` event:
    polling from outside for `checkpoint-N/` once killed a run before its `trainer_state.json` was written, and
    --resume then rightly started over). A kill caught mid-write is
    test_resume_passes_over_a_checkpoint_a_kill_caught_mid_write."""
    out = tmp_path / "resumed"
    args = [str(synthetic_version), "--model", str(tiny_model_dir), "--output", str(out), "--max_steps", "10",
            "--save_strategy", "steps", "--save_steps", "2", "--per_device_train_batch_size", "2",
            "--max_length", "128", "--learning_rate", "1e-4"]
    cmd = [sys.executable, "-m", "lidr_data.train", *args]
    env = _script_env(tmp_path)
    killed = subprocess.run([sys.executable, str(Path(__file__).parent / "killed_after_save.py"), "4", *args],
                            env=env, capture_output=True, text=True, timeout=400)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    assert not out.exists(), "a killed run must leave nothing at --output"
    checkpoints = staging_dir(out) / "checkpoints"
    assert sorted(p.name for p in checkpoints.glob("checkpoint-*")) == ["checkpoint-2", "checkpoint-4"]

    again = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert again.returncode == 2 and "--resume continues it" in again.stderr

    resumed = subprocess.run(cmd + ["--resume"], env=env, capture_output=True, text=True, timeout=400)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    # transformers' own bars and its FutureWarning about its internals stay out of lidr's output (issue 20)
    for noise in ("Loading weights", "Writing model shards", "FutureWarning"):
        assert noise not in resumed.stderr + resumed.stdout, noise
    manifest = json.loads((out / "train_manifest.json").read_text())
    assert Path(manifest["data"]["resumed_from"]).name == "checkpoint-4"
    assert manifest["data"]["global_step"] == 10
    assert not staging_dir(out).exists()


# ------------------------------------------------------------------------------------------------ scale


@pytest.mark.slow
def test_two_processes_with_torchrun(synthetic_version, tiny_model_dir, tmp_path):
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "lidr_data.train", str(synthetic_version), "--model", str(tiny_model_dir), "--output", str(out),
           "--max_steps", "3", "--per_device_train_batch_size", "2", "--max_length", "128", "--save_strategy", "no"]
    run = subprocess.run(cmd, env=_script_env(tmp_path), capture_output=True, text=True, timeout=400)
    assert run.returncode == 0, run.stderr[-4000:]
    manifest = json.loads((out / "train_manifest.json").read_text())
    assert manifest["data"]["world_size"] == 2 and manifest["data"]["global_step"] == 3
    assert run.stdout.count("model written to") == 1  # only the main process writes


def test_shipped_training_recipe_and_accelerate_configs_load():
    from accelerate.commands.config.config_args import ClusterConfig

    root = Path(__file__).resolve().parents[2] / "recipes"
    targs, args, _ = parse_args(["org/x@iter-1", "--config", str(root / "train-paper.yaml"), "--model", "m"])
    assert (targs.nll_normalization, targs.nll_weight, targs.eval_fraction) == ("sequence", 1.0, 0.05)
    assert (args.learning_rate, args.max_length, args.eval_strategy) == (5e-7, 4096, "steps")
    text = (root / "train-paper.yaml").read_text()
    for key in ("nll_weight", "beta", "learning_rate", "num_train_epochs"):  # unpublished values say so
        assert "not published" in next(line for line in text.splitlines() if line.startswith(f"{key}:"))
    kinds = {"ddp": "MULTI_GPU", "zero3": "DEEPSPEED", "fsdp2": "FSDP"}
    for name, kind in kinds.items():
        config = ClusterConfig.from_yaml_file(str(root / "accelerate" / f"{name}.yaml"))
        assert str(config.distributed_type).endswith(kind) and config.mixed_precision == "bf16"


def test_resume_passes_over_a_checkpoint_a_kill_caught_mid_write(tmp_path):
    """A SIGKILL during a save leaves checkpoint-N without (or with a cut) trainer_state.json, which the Trainer
    writes last: --resume must continue from the newest complete one (seen in CI: resuming from the cut one failed
    with FileNotFoundError on trainer_state.json)."""
    from lidr_data.train.output import last_checkpoint

    out = tmp_path / "m"
    checkpoints = staging_dir(out) / "checkpoints"
    for step, state in ((2, '{"global_step": 2}'), (4, '{"global_step": 4}'), (6, None), (10, '{"global_st')):
        (checkpoints / f"checkpoint-{step}").mkdir(parents=True)
        (checkpoints / f"checkpoint-{step}" / "model.safetensors").write_bytes(b"x")
        if state is not None:
            (checkpoints / f"checkpoint-{step}" / "trainer_state.json").write_text(state)
    assert last_checkpoint(out) == str(checkpoints / "checkpoint-4")
    assert last_checkpoint(tmp_path / "never-started") is None


@pytest.mark.slow
def test_the_model_card_license_is_the_base_models_never_the_datasets(synthetic_version, tiny_model_dir, tmp_path):
    """The card's license was copied from the dataset: a Llama 3 fine-tune on a cc-by-nc-4.0 (or apache-2.0)
    dataset was labelled with the dataset's license."""
    from huggingface_hub import ModelCard

    from lidr_data.train.output import model_card

    assert read_manifest(synthetic_version)["license"] == "cc-by-nc-4.0"
    base = tmp_path / "llama-like"
    shutil.copytree(tiny_model_dir, base)
    (base / "README.md").write_text("---\nlicense: llama3\nlanguage: [en]\n---\n# a base model\n")
    out = tmp_path / "M1"
    assert main(["train", str(synthetic_version), "--model", str(base), "--output", str(out), "--max_steps", "1",
                 *FAST]) == 0
    card = ModelCard.load(out / "README.md")
    assert card.data.license == "llama3" and "`llama3`, as the base model declares it" in card.text
    manifest = json.loads((out / "train_manifest.json").read_text())
    assert manifest["base_model"]["license"] == "llama3"
    # M_2 trained from M_1 keeps it: M_1's card declares the license it inherited
    from lidr_data.train.output import base_license

    assert base_license(str(out)) == "llama3" and base_license(str(tiny_model_dir)) is None

    # a base that declares none: no license in the card, and the card says so (the dataset's is not taken)
    unknown = json.loads(json.dumps(manifest))
    unknown["base_model"]["license"] = None
    card = ModelCard(model_card(unknown, ["de"]))
    assert card.data.license is None and "Not determined" in card.text and "cc-by-nc-4.0" not in card.text
    # --license wins
    given = json.loads(json.dumps(manifest))
    given["settings"]["lidr"]["license"] = "other"
    card = ModelCard(model_card(given, ["de"]))
    assert card.data.license == "other" and "given with `--license`" in card.text
    targs, _, _ = parse_args(["x", "--model", "m", "--output", "o", "--license", "llama3.1"])
    assert targs.license == "llama3.1"
