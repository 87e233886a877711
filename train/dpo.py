"""`lidr train REF --model M --output DIR`: DPO + the paper's NLL on a dataset version, in the shape of TRL's
`scripts/dpo.py`.

Run it as `lidr train ...`, `python -m lidr_data.train ...` or `accelerate launch -m lidr_data.train ...`
(`torchrun -m lidr_data.train ...` too). `TrlParser` reads (`TrainArguments`, `DPOConfig`, `ModelConfig`), so
`--config train.yaml` and command-line overrides of any `DPOConfig` or `ModelConfig` field work (`--max_steps 5`,
`--learning_rate 5e-7`, `--use_peft`, `--precompute_ref_log_probs`); the first bare argument is the dataset
reference. `run` is four steps: `check` (the arguments and the output folder), `load` (the version, the tokenizer,
the pairs' template and lengths), `train`, `save` (the model folder, its manifest and card, moved into place).
Every check on the input runs before the first training step and before anything is written.
"""

from __future__ import annotations

import shutil
import sys
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from lidr_data.dataset.card import check_license
from lidr_data.dataset.layout import check_name
from lidr_data.dataset.load import OpenedVersion, load_opened, open_version
from lidr_data.errors import LidrError
from lidr_data.extras import quiet_transformers
from lidr_data.files import portable, swap_into_place
from lidr_data.readers import read_yaml
from lidr_data.train import output as out
from lidr_data.train.data import LengthReport, check_columns, check_template_and_lengths, split_by_prompt

_WEIGHT_SUFFIXES = (".safetensors", ".bin")


@dataclass
class TrainArguments:
    """lidr train's own arguments (all `DPOConfig` and `ModelConfig` fields are accepted beside them)."""

    dataset: str | None = field(default=None, metadata={
        "help": "the dataset reference (also the first bare argument): a version folder, store/name@version, "
                "or org/name@revision on the Hub"})
    model: str | None = field(default=None, metadata={
        "help": "the starting model M_t (a local folder or a Hub id; --model_revision pins a Hub revision). It is "
                "also the DPO reference model"})
    output: str | None = field(default=None, metadata={
        "help": "the folder of the trained model; it appears only when training has finished"})
    subset: str = field(default="all", metadata={"help": "`all` or one language config of the version"})
    eval_fraction: float = field(default=0.0, metadata={
        "help": "share of prompts held out (seeded, grouped by prompt_id) for TRL's evaluation metrics"})
    nll_weight: float = field(default=1.0, metadata={
        "help": "alpha: weight of the NLL term on the chosen response (1.0 as in Iterative RPO; the LIDR authors "
                "do not publish theirs). 0 gives plain DPO"})
    nll_normalization: Literal["sequence", "token"] = field(default="sequence", metadata={
        "help": "sequence: -log p(chosen|prompt)/|chosen| averaged over pairs (the paper's); token: TRL's `sft` "
                "term, a token mean over the batch"})
    resume: bool = field(default=False, metadata={"help": "continue an interrupted run from its last checkpoint"})
    overwrite: bool = field(default=False, metadata={"help": "replace a model already at --output"})
    push_to: str | None = field(default=None, metadata={
        "help": "upload the finished folder to this Hub model repo (org/name) as one commit"})
    license: str | None = field(default=None, metadata={
        "help": "the trained model's license id for its card (e.g. llama3, apache-2.0); default: the one the base "
                "model's card declares, none when it declares none (never the dataset's)"})


def device_defaults() -> dict:
    """Defaults that run where they are: TRL's bf16 and activation checkpointing fail or cost on CPU."""
    import torch

    if torch.cuda.is_available():
        return {"bf16": True, "gradient_checkpointing": True}
    return {"bf16": False, "gradient_checkpointing": False, "use_cpu": True}


def make_parser():
    from trl import DPOConfig, ModelConfig, TrlParser

    return TrlParser((TrainArguments, DPOConfig, ModelConfig), prog="lidr train",
                     description="DPO + the paper's NLL term on a dataset version (every DPOConfig and "
                                 "ModelConfig field is accepted).")


def parse_args(argv: list[str] | None = None):
    """(TrainArguments, DPOConfig, ModelConfig) from argv and an optional `--config` YAML (the command line wins)."""
    import yaml

    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and not argv[0].startswith("-"):
        argv = ["--dataset", argv[0], *argv[1:]]
    # TrlParser reads --config with PyYAML itself: the project's YAML checks come first (aliases bounded;
    # duplicate keys, NaN and over-long texts refused with the file and line).
    configs = [argv[i + 1] for i, w in enumerate(argv[:-1]) if w == "--config"]
    configs += [w.removeprefix("--config=") for w in argv if w.startswith("--config=")]
    if configs:
        for config in configs:
            try:
                read_yaml(config)
            except LidrError as e:
                raise LidrError(f"lidr train: {e}") from None
    parser = make_parser()
    parser.set_defaults_with_config(**device_defaults())  # before --config: the file and the command line win
    try:
        with warnings.catch_warnings():  # our CPU default sets the old name, which transformers 5.24 still reads
            warnings.filterwarnings("ignore", message="`gradient_checkpointing` is deprecated", category=FutureWarning)
            return parser.parse_args_and_config(argv)
    except (ValueError, OSError, yaml.YAMLError) as e:  # a bad --config file or value: one line, no traceback
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise LidrError(f"lidr train: {first}") from None


def _say(state, *lines: str) -> None:
    if state.is_main_process:
        for line in lines:
            print(line, flush=True)


def _check_model(margs, bf16: bool) -> tuple[object, dict]:
    """Load the tokenizer and config (and read the weight headers of a local folder): a model that does not
    load is refused before anything else happens. Returns (tokenizer, model_init_kwargs)."""
    from transformers import AutoConfig, AutoTokenizer

    name = margs.model_name_or_path
    revision = None if Path(name).exists() else margs.model_revision
    try:
        AutoConfig.from_pretrained(name, revision=revision)
        tokenizer = AutoTokenizer.from_pretrained(name, revision=revision)
        local = Path(name)
        if local.is_dir():
            weights = [p for p in local.iterdir() if p.suffix in _WEIGHT_SUFFIXES and not p.name.startswith("adapter")]
            if not weights:
                raise OSError("no weights (*.safetensors or *.bin) in the folder")
            from safetensors import safe_open

            for p in weights:
                if p.suffix == ".safetensors":
                    with safe_open(str(p), framework="pt") as f:
                        f.keys()
    except Exception as e:  # noqa: BLE001 (whatever the loaders raise, the message names the model)
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise LidrError(f"--model {name}: does not load ({type(e).__name__}: {first})") from None
    dtype = margs.dtype
    if bf16 and dtype in (None, "float32"):  # TRL loads float32 unless told; bf16 training wants bf16 weights
        dtype = "bfloat16"
    init = {"revision": revision, "dtype": dtype, "attn_implementation": margs.attn_implementation}
    return tokenizer, init


@dataclass
class TrainJob:
    """What `check` accepted: the three argument groups, the output folder and the processes' shared state."""

    targs: TrainArguments
    args: Any  # trl.DPOConfig
    margs: Any  # trl.ModelConfig
    output: Path
    state: Any  # accelerate.PartialState


@dataclass
class TrainData:
    """What `load` read and checked: the version, its pairs split for training, and the model's tokenizer."""

    opened: OpenedVersion
    report: LengthReport
    train: Any  # datasets.Dataset
    eval: Any  # datasets.Dataset | None
    langs: list[str]
    tokenizer: Any
    model_init: dict


@dataclass
class Trained:
    """What `train` did: the trainer (its state and model), the final metrics, the checkpoint resumed from."""

    trainer: Any  # LidrDPOTrainer
    metrics: dict
    resumed_from: str | None


def run(targs: TrainArguments, args, margs) -> Path:
    """Train and return the output folder. Raises LidrError (before any step, writing nothing) on bad input."""
    job = check(targs, args, margs)
    data = load(job)
    trained = train(job, data)
    save(job, data, trained)
    return job.output


def check(targs: TrainArguments, args, margs) -> TrainJob:
    """The checks that need no data and no model: arguments, the Hub names, the license id, the output folder."""
    from accelerate import PartialState

    for name in ("dataset", "model", "output"):
        if not getattr(targs, name):
            raise LidrError(f"lidr train: missing {'the dataset reference (REF)' if name == 'dataset' else '--' + name}")
    if args.loss_type != ["sigmoid"]:
        raise LidrError("lidr train's objective is DPO (sigmoid) + NLL: set --nll-weight and --nll-normalization "
                        f"instead of --loss_type (got {args.loss_type})")
    if args.trust_remote_code:
        raise LidrError("lidr train does not run code shipped with a model (--trust_remote_code is refused)")
    if targs.nll_weight < 0:
        raise LidrError(f"--nll-weight must be >= 0, got {targs.nll_weight}")
    if targs.push_to:  # checked now: a typo must not surface only after the training
        org, _, name = targs.push_to.partition("/")
        if not name or "/" in name:
            raise LidrError(f"--push-to {targs.push_to!r}: name a Hub model repository as org/name")
        check_name(org, "Hub namespace")
        check_name(name, "model repository name")
    if targs.license is not None:
        check_license(targs.license)
    margs.model_name_or_path = targs.model
    output = Path(targs.output).expanduser()
    state = PartialState(cpu=args.use_cpu)
    out.check_output(output, targs.overwrite, targs.resume)
    return TrainJob(targs, args, margs, output, state)


def load(job: TrainJob) -> TrainData:
    """Open and verify the version, load the subset, load the tokenizer (and check the model loads), check the
    chat template and the lengths, split off the held-out pairs; say what will be trained. Every rank passes
    every check before this returns."""
    targs, args, margs, state = job.targs, job.args, job.margs, job.state
    quiet_transformers()
    opened = open_version(targs.dataset)
    what = f"{targs.dataset} [{targs.subset}]"
    dataset = load_opened(opened, targs.subset)
    check_columns(dataset, what)
    if dataset.num_rows == 0:
        raise LidrError(f"{what}: the subset has 0 pairs")
    tokenizer, model_init = _check_model(margs, args.bf16)
    report = check_template_and_lengths(dataset, tokenizer, args.max_length, what)
    if report.dropped_prompt_too_long == report.pairs:
        raise LidrError(f"{what}: every prompt is at least max_length={args.max_length} tokens long; TRL would "
                        "drop every pair (raise --max_length)")
    train_ds, eval_ds = split_by_prompt(dataset, targs.eval_fraction, args.seed)
    if args.eval_strategy != "no" and eval_ds is None:
        raise LidrError(f"--eval_strategy {args.eval_strategy} needs held-out pairs: set --eval-fraction")
    langs = sorted(set(dataset["lang"])) if "lang" in dataset.column_names else []
    _say(state,
         f"dataset {opened.reference} -> {opened.manifest['name']}/{opened.manifest['version']} "
         f"(content id {opened.content_id[:16]}...), subset {targs.subset}",
         f"pairs: {report.pairs} ({train_ds.num_rows} train, {eval_ds.num_rows if eval_ds else 0} eval); at "
         f"max_length={args.max_length}: {report.dropped_prompt_too_long} dropped by TRL (prompt alone too long), "
         f"{report.truncated} truncated; longest pair {report.longest} tokens",
         f"objective: DPO sigmoid beta={args.beta} + {targs.nll_weight} x NLL ({targs.nll_normalization}); "
         f"bf16={args.bf16}, checkpointing={args.gradient_checkpointing}, lora={margs.use_peft}")
    state.wait_for_everyone()  # every rank has passed every check before anything is written
    return TrainData(opened, report, train_ds, eval_ds, langs, tokenizer, model_init)


def train(job: TrainJob, data: TrainData) -> Trained:
    """Train in the staging folder (from its last checkpoint with --resume); the metrics of the run."""
    from trl import get_peft_config

    from lidr_data.train.loss import LidrDPOTrainer

    targs, args, margs, state = job.targs, job.args, job.margs, job.state
    stage = out.staging_dir(job.output)
    if state.is_main_process and targs.overwrite and not targs.resume:
        shutil.rmtree(stage, ignore_errors=True)
    resume_from = out.last_checkpoint(job.output) if targs.resume else None
    state.wait_for_everyone()
    args.output_dir = str(stage / "checkpoints")
    args.model_init_kwargs = {**data.model_init, **(args.model_init_kwargs or {})}
    trainer = LidrDPOTrainer(
        model=margs.model_name_or_path, args=args, train_dataset=data.train, eval_dataset=data.eval,
        processing_class=data.tokenizer, peft_config=get_peft_config(margs),
        nll_weight=targs.nll_weight, nll_normalization=targs.nll_normalization,
    )
    result = trainer.train(resume_from_checkpoint=resume_from)
    metrics = dict(result.metrics)
    logged = [h for h in trainer.state.log_history if "loss" in h]
    if logged:
        metrics.update({f"last_logged/{k}": v for k, v in logged[-1].items() if k not in ("epoch", "step")})
    if data.eval is not None:
        metrics.update(trainer.evaluate())
    return Trained(trainer, metrics, resume_from)


def save(job: TrainJob, data: TrainData, trained: Trained) -> None:
    """Write the model, tokenizer, train_manifest.json and card into the staging folder, with no local path in
    them, then move the folder to --output in one step (and push it with --push-to)."""
    targs, output, state, trainer = job.targs, job.output, job.state, trained.trainer
    stage = out.staging_dir(output)
    model_dir = stage / "model"
    lora = bool(job.margs.use_peft)
    if lora:
        trainer.save_model(str(model_dir / "adapter"))  # the adapter, kept beside the merged model
    else:
        trainer.save_model(str(model_dir))
    if state.is_main_process:
        if lora:
            merged = trainer.accelerator.unwrap_model(trainer.model).merge_and_unload()
            merged.save_pretrained(str(model_dir))
        data.tokenizer.save_pretrained(str(model_dir))  # with the chat template (chat_template.jinja)
        # What is written here is pushed (--push-to): local paths are named relative to the work folder (the
        # current directory) when inside it, else by their last parts; the content id identifies the version.
        workdir = Path.cwd()
        lineage = data.opened.lineage(workdir)
        base_local = Path(targs.model).exists()
        base_name = str(portable(targs.model, workdir)) if base_local else targs.model
        names = out.local_names(workdir, {
            str(data.opened.folder): lineage["path"] or lineage["reference"], targs.dataset: lineage["reference"],
            targs.model: base_name, str(output): str(portable(str(output.resolve()), workdir)),
            str(stage): str(portable(str(stage.resolve()), workdir))})
        out.scrub_folder(model_dir, names)
        manifest = _manifest(job, data, trained, lineage, base_local, base_name)
        manifest = out.portable_manifest(manifest, workdir, names)
        out.write_train_manifest(model_dir, manifest)
        (model_dir / out.CARD).write_text(out.model_card(manifest, data.langs), encoding="utf-8")
        swap_into_place(model_dir, output)  # an old model (--overwrite) is swapped out in one step
        shutil.rmtree(stage, ignore_errors=True)  # the checkpoints of the finished run
        _say(state, f"model written to {output}")
        if targs.push_to:
            opened = data.opened
            commit = out.push_folder(output, targs.push_to, f"lidr train: {opened.manifest['name']} "
                                     f"{opened.manifest['version']} ({opened.content_id[:12]})")
            _say(state, f"pushed to {targs.push_to} (commit {commit})")
    state.wait_for_everyone()
    if hasattr(trainer, "end"):  # transformers >= 5.18; without it a multi-process run hangs at exit
        trainer.end()  # finish the trackers, destroy the process group


def _manifest(job: TrainJob, data: TrainData, trained: Trained, lineage: dict, base_local: bool,
              base_name: str) -> dict:
    """train_manifest.json before its local paths are renamed: the dataset version, the base model (a Hub id,
    or a local folder by its published name), the objective, every setting, the data and the metrics."""
    targs, args, margs = job.targs, job.args, job.margs
    revision = data.model_init["revision"]
    report = data.report
    return out.train_manifest(
        dataset={**lineage, "subset": targs.subset},
        base_model={"name_or_path": targs.model, "hub_id": None if base_local else targs.model,
                    "path": base_name if base_local else None, "revision": revision,
                    **out.base_lineage(Path(targs.model)),
                    "license": out.base_license(targs.model, revision)},
        objective={"loss": "dpo_sigmoid+nll", "beta": args.beta, "nll_weight": targs.nll_weight,
                   "nll_normalization": targs.nll_normalization, "reference_model": "the starting model"},
        settings={"lidr": asdict(targs), "dpo": args.to_dict(), "model": asdict(margs)},
        data={"subset": targs.subset, "pairs": report.pairs, "train_pairs": data.train.num_rows,
              "eval_pairs": data.eval.num_rows if data.eval is not None else 0, "max_length": args.max_length,
              "dropped_prompt_too_long": report.dropped_prompt_too_long, "truncated": report.truncated,
              "languages": data.langs, "world_size": job.state.num_processes,
              "global_step": trained.trainer.state.global_step, "resumed_from": trained.resumed_from},
        metrics=trained.metrics, lora=bool(margs.use_peft),
    )


def main(argv: list[str] | None = None) -> int:
    """Script entry point: a LidrError is one line on stderr and exit code 2."""
    try:
        targs, args, margs = parse_args(argv)
        run(targs, args, margs)
    except LidrError as e:
        print(f"error: {e}", file=sys.stderr, flush=True)
        return 2
    return 0

