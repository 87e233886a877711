"""`lidr iterate`: the self-improvement loop M_t -> data -> M_{t+1}, one process per step, resumable step by step.

Iteration t builds with M_{t-1} on its prompt slice (`lidr build`), materializes version `iter-t` (`lidr build`
again: every stage is done, so it only materializes or reuses the version), optionally publishes it, trains M_t
on that version (`lidr train`) and evaluates M_{t-1} (once) and M_t (`lidr eval ...`). Each step is a child
process running the existing CLI: a generation engine and a training run never share one process (or one GPU's
memory). `W/iterate.json` records a step, with the fingerprint of its inputs, only once it finished; a rerun
continues at the first step that is not recorded with the same fingerprint, and a changed setting reruns that
step and every step that depends on it. A fingerprint covers the step's settings and the identity of every output
it consumes as it is on disk now (a version's content id, a model's train_manifest.json, a run's pairs and
lineage), so a model or version replaced or removed by hand reruns what was made from it. `W/iterate.log` gets a
line each time a step starts or finishes. Training runs in W, so the paths its train_manifest.json records are
relative to W whatever folder `lidr iterate` was started from.

This module computes and returns; it reports through `notify` and never prints.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any

import duckdb
import polars as pl
import yaml

from lidr_data import locks
from lidr_data.build.recipe import TINY_MODEL, Recipe
from lidr_data.build.run_folder import RunPaths
from lidr_data.dataset.layout import content_id, read_manifest
from lidr_data.errors import LidrError
from lidr_data.eval import registry
from lidr_data.files import atomic_path, sha256_file, sql_literal, write_json_atomic, write_text_atomic
from lidr_data.readers import read_json
from lidr_data.redact import secret_name, secret_paths
from lidr_data.train.output import last_checkpoint, staging_dir

STATE, LOG, SUMMARY = "iterate.json", "iterate.log", "summary.parquet"


@dataclass
class IteratePlan:
    """Everything a loop needs, validated before iteration 1 starts (see `commands/iterate.py`)."""

    recipe: Recipe = field(metadata={"help": "the recipe, without its train:/eval: sections"})
    recipe_path: str = field(metadata={"help": "the recipe file, as typed (error messages name it)"})
    iterations: int = field(metadata={"help": "how many iterations (M_1 .. M_N)"})
    workdir: Path = field(metadata={"help": "W: runs/, store/, models/, eval/, iterate.json, summary.parquet"})
    slice_size: int = field(metadata={"help": "prompt items per iteration (the recipe's prompts.limit)"})
    train: dict[str, Any] = field(metadata={"help": "lidr train settings (a --config YAML's keys)"})
    evals: dict[str, list[str]] = field(default_factory=dict, metadata={
        "help": "evaluation name (mgsm, winrate, refnll) -> its `lidr eval NAME` options as command-line words"})
    publish: str | None = field(default=None, metadata={"help": "publish each version to this Hub repo"})
    executor: str = field(default="local", metadata={"help": "build executor: local or ray"})
    ray_address: str | None = field(default=None, metadata={"help": "Ray cluster address for --executor ray"})


@dataclass
class Step:
    """One child process of the loop."""

    id: str
    kind: str  # build | materialize | publish | train | eval
    iteration: int
    argv: list[str]
    settings: dict
    deps: list[str]
    # extra words decided just before the start (resume, overwrite); told whether the step's inputs changed
    before: Callable[[bool], list[str]] | None = None
    cwd: Path | None = None  # where the child process runs (None: this process's folder)


def _hash(obj: object) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def lidr_command() -> list[str]:
    """The CLI in a child process: the same interpreter, so the loop runs with the environment it was started in."""
    return [sys.executable, "-m", "lidr_data.cli"]


def version_dir(plan: IteratePlan, t: int) -> Path:
    return plan.workdir / "store" / plan.recipe.name / f"iter-{t}"


def run_dir(plan: IteratePlan, t: int) -> Path:
    return plan.workdir / "runs" / plan.recipe.name / f"iter-{t}"


def model_dir(plan: IteratePlan, t: int) -> Path:
    """M_t's folder (M_0 is the recipe's model; the tiny test model is built in W/tiny-model by the first build)."""
    if t == 0:
        if plan.recipe.model == TINY_MODEL:
            return plan.workdir / "tiny-model"
        return Path(plan.recipe.model)
    return plan.workdir / "models" / f"M{t}"


def model_name(plan: IteratePlan, t: int) -> str:
    return str(model_dir(plan, t)) if t or plan.recipe.model == TINY_MODEL else plan.recipe.model


def _absolute(model: str) -> str:
    """A local model folder as an absolute path (a step that runs in W must find it); a Hub id as it is."""
    path = Path(model).expanduser()
    return str(path.resolve()) if path.exists() else model


def eval_dir(plan: IteratePlan, name: str, t: int) -> Path:
    return plan.workdir / "eval" / f"{name}-M{t}"


def iteration_recipe(plan: IteratePlan, t: int) -> dict:
    """The recipe of iteration t: M_{t-1} generates, on slice t, with iter-(t-1) as the parent version."""
    data = plan.recipe.to_dict()
    prompts = dict(data["prompts"])
    prompts["offset"] = plan.recipe.prompts.offset + (t - 1) * plan.slice_size
    prompts["limit"] = plan.slice_size
    data.update(prompts=prompts, iteration=t, workdir=str(plan.workdir),
                model=plan.recipe.model if t == 1 else model_name(plan, t - 1),
                parent=str(version_dir(plan, t - 1)) if t > 1 else plan.recipe.parent)
    if t > 1:
        data["revision"] = None  # M_{t-1} is a local folder
    return data


def plan_steps(plan: IteratePlan) -> list[Step]:
    """Every step of the loop in order, each with its settings and the steps its inputs come from."""
    cli, w = lidr_command(), plan.workdir
    recipes = w / "iterate"
    train_yaml = recipes / "train.yaml"
    executor = ["--executor", plan.executor] if plan.executor != "local" else []  # `local` is build's default
    if plan.ray_address:
        executor += ["--ray-address", plan.ray_address]
    steps: list[Step] = []

    def evaluations(t: int, deps: list[str]) -> None:
        for name, words in plan.evals.items():
            out = eval_dir(plan, name, t)
            model_flag = ["--model", model_name(plan, t)]
            steps.append(Step(f"eval-{name}:M{t}", "eval", t, [*cli, "eval", name, *model_flag, "--output", str(out),
                                                            "--label", f"M{t}", "--no-progress", *words],
                              {"words": words, "model": model_name(plan, t)}, deps))

    for t in range(1, plan.iterations + 1):
        recipe_file = recipes / f"iter-{t}.recipe.yaml"
        rec = iteration_recipe(plan, t)
        build_deps = [f"materialize:{t - 1}", f"train:{t - 1}"] if t > 1 else []  # the parent, the generator
        steps.append(Step(f"build:{t}", "build", t,
                          [*cli, "build", str(recipe_file), "--no-materialize", "--no-progress", *executor],
                          {"recipe": rec}, build_deps))
        steps.append(Step(f"materialize:{t}", "materialize", t,
                          [*cli, "build", str(recipe_file), "--no-progress"], {}, [f"build:{t}"]))
        if plan.publish:
            steps.append(Step(f"publish:{t}", "publish", t,
                              [*cli, "publish", str(version_dir(plan, t)), "--to", plan.publish, "--force"],
                              {"to": plan.publish}, [f"materialize:{t}"]))
        if t == 1:
            evaluations(0, [f"build:{t}"])  # M_0 (the tiny model is made by the first build)
        out = model_dir(plan, t)
        # In W, with absolute paths: lidr train names local paths relative to its working folder, so M_t's
        # train_manifest.json is the same whatever folder the loop was started from.
        steps.append(Step(f"train:{t}", "train", t,
                          [*cli, "train", str(version_dir(plan, t)), "--model", _absolute(model_name(plan, t - 1)),
                           "--output", str(out), "--config", str(train_yaml)],
                          {"train": plan.train}, [f"materialize:{t}"] + ([f"train:{t - 1}"] if t > 1 else []),
                          before=lambda changed, out=out: _train_resume_words(out, changed), cwd=w))
        evaluations(t, [f"train:{t}"])
    return steps


def _train_resume_words(output: Path, changed: bool = False) -> list[str]:
    """A training killed earlier continues from its last complete checkpoint, unless its inputs changed since
    (its checkpoints then come from another version or base model); anything else left is replaced."""
    if last_checkpoint(output) and not changed:
        return ["--resume"]
    if output.exists() or staging_dir(output).exists():
        return ["--overwrite"]
    return []


def read_state(workdir: Path) -> dict:
    path = workdir / STATE
    if not path.is_file():
        return {"steps": {}}
    try:
        state = read_json(path)
    except LidrError as e:
        raise LidrError(f"{e}; remove it to start the loop over") from None
    if not isinstance(state, dict) or not isinstance(state.get("steps"), dict):
        raise LidrError(f"{path}: not an iterate state file (no `steps` mapping)")
    return state


def _log(workdir: Path, line: str) -> None:
    with open(workdir / LOG, "a", encoding="utf-8") as f:
        f.write(f"{datetime.now(timezone.utc).isoformat(timespec='seconds')} {line}\n")


def pair_count(run: Path) -> int:
    import pyarrow.parquet as pq

    return pq.ParquetFile(run / "pairs.parquet").metadata.num_rows


def drop_reasons(run: Path) -> dict[str, int]:
    path = run / "dropped.parquet"
    if not path.is_file():
        return {}
    rows = duckdb.sql(f"SELECT reason, count(*) FROM read_parquet({sql_literal(path)}) GROUP BY ALL ORDER BY 2 DESC")
    return {r: n for r, n in rows.fetchall()}


def run_loop(plan: IteratePlan, notify: Callable[[str], None] = lambda m: None,
             env: dict[str, str] | None = None, stdout: IO | None = None) -> list[dict]:
    """Run (or continue) the loop; return the finished steps' records in order. Raises LidrError when a step
    fails (naming the step and its exit code) or an iteration keeps no pair. One loop per work folder at a time.
    `stdout`: where the steps' own output goes (default: this process's stdout)."""
    plan.workdir.mkdir(parents=True, exist_ok=True)
    with locks.hold(plan.workdir, "lidr iterate"):
        return _run_loop(plan, notify, env, stdout)


def _run_loop(plan: IteratePlan, notify: Callable[[str], None], env: dict[str, str] | None,
              stdout: IO | None) -> list[dict]:
    w = plan.workdir
    check_no_secrets(plan)
    (w / "iterate").mkdir(parents=True, exist_ok=True)
    write_text_atomic(w / "iterate" / "train.yaml", yaml.safe_dump(plan.train, sort_keys=True))
    for t in range(1, plan.iterations + 1):
        data = iteration_recipe(plan, t)
        found = secret_paths(data)
        if found:  # the build steps read this file: it would hold the secret in W
            raise LidrError(f"{plan.recipe_path}: {found[0]}: a secret-looking value; lidr iterate writes each "
                            "iteration's recipe into the work folder: pass secrets through the environment "
                            "(e.g. OPENAI_API_KEY) instead")
        write_text_atomic(w / "iterate" / f"iter-{t}.recipe.yaml",
                          yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
    state = read_state(w)
    state.setdefault("started", {})
    fingerprints: dict[str, str] = {}
    identities: dict[str, str | None] = {}  # what each step's outputs are now, for the steps that consume them
    records = []
    for step in plan_steps(plan):
        fingerprint = _hash([step.id, step.settings, [fingerprints[d] for d in step.deps if d in fingerprints],
                             [identities.get(d) for d in step.deps]])
        fingerprints[step.id] = fingerprint
        done = state["steps"].get(step.id)
        if done and done.get("fingerprint") == fingerprint and _outputs_exist(plan, step):
            notify(f"✓ {step.id}: done earlier, skipped")
            records.append(done)
            identities[step.id] = output_identity(plan, step)
            continue
        # Recorded, or started and killed, with other inputs: what it left is replaced, never resumed.
        changed = bool(done) or state["started"].get(step.id) not in (None, fingerprint)
        argv = list(step.argv)
        if step.kind == "materialize" and changed:
            argv.append("--force")
        if step.kind == "build" and changed:
            # The build's own stage fingerprints see settings, not a model retrained in the same folder: every
            # stage runs again (generation still answers from the request cache what the same model asked).
            RunPaths(run_dir(plan, step.iteration)).state.unlink(missing_ok=True)
        if step.before is not None:
            argv += step.before(changed)
        state["started"][step.id] = fingerprint
        write_json_atomic(w / STATE, state)
        notify(f"▶ {step.id}: {' '.join(argv[3:])}")
        _log(w, f"start {step.id}")
        started = time.perf_counter()
        rc = subprocess.run(argv, env=env, stdout=stdout, cwd=step.cwd).returncode
        seconds = time.perf_counter() - started
        if rc != 0:
            _log(w, f"failed {step.id} rc={rc}")
            raise LidrError(f"lidr iterate: step {step.id} failed (exit {rc}); fix the cause and run the same "
                            "command again: finished steps are kept")
        if step.kind == "build":
            kept = pair_count(run_dir(plan, step.iteration))
            if kept == 0:
                reasons = ", ".join(f"{r} {n}" for r, n in drop_reasons(run_dir(plan, step.iteration)).items())
                _log(w, f"stopped {step.id} 0 pairs")
                raise LidrError(f"lidr iterate: iteration {step.iteration} kept 0 pairs (dropped: {reasons or 'none'});"
                                f" the loop stops before training on nothing (see {run_dir(plan, step.iteration)})")
        record = {"step": step.id, "kind": step.kind, "iteration": step.iteration, "fingerprint": fingerprint,
                  "seconds": round(seconds, 3),
                  "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        state["steps"][step.id] = record
        state["started"].pop(step.id, None)
        write_json_atomic(w / STATE, state)  # only now is the step finished
        identities[step.id] = output_identity(plan, step)
        _log(w, f"finished {step.id} {seconds:.1f}s")
        notify(f"✓ {step.id} ({seconds:.1f}s)")
        records.append(record)
    return records


def check_no_secrets(plan: IteratePlan) -> None:
    """Refuse a secret in the `train:` or `eval:` settings (by name or by shape, as `redact_secrets` finds them):
    the train steps read them from W/iterate/train.yaml and the eval steps get them as command-line words, which
    `ps`, iterate's step lines and its fingerprints would show. Secrets belong in the environment."""
    found = [f"train.{p}" for p in secret_paths(plan.train)]
    for name, words in plan.evals.items():
        for i, word in enumerate(words):
            flag = words[i - 1] if i and words[i - 1].startswith("--") else ""
            if secret_paths(word) or (flag and secret_name(flag) and not flag.endswith("-env")):
                found.append(f"eval.{name}.{flag.removeprefix('--').replace('-', '_') or f'[{i}]'}")
    if found:
        raise LidrError(f"{plan.recipe_path}: {found[0].split('.')[0]}: a secret-looking value ({found[0]}); lidr "
                        "iterate writes the train: and eval: settings into the work folder and onto command lines: "
                        "pass secrets through the environment (e.g. HF_TOKEN, OPENAI_API_KEY) instead")


def _outputs_exist(plan: IteratePlan, step: Step) -> bool:
    t = step.iteration
    if step.kind == "build":
        return (run_dir(plan, t) / "pairs.parquet").is_file()
    if step.kind in ("materialize", "publish"):
        return (version_dir(plan, t) / "manifest.json").is_file()
    if step.kind == "train":
        return (model_dir(plan, t) / "train_manifest.json").is_file()
    if step.kind == "eval":
        name = step.id.split(":")[0].removeprefix("eval-")
        return (eval_dir(plan, name, t) / "summary.parquet").is_file()
    return False


def output_identity(plan: IteratePlan, step: Step) -> str | None:
    """What a finished step's outputs are, as the steps consuming them see them: a version's content id, the
    sha256 of a model's train_manifest.json (it pins the dataset, base model and settings, and changes with every
    training), of a run's pairs and lineage, of an evaluation's summary. None when they are missing."""
    t = step.iteration
    try:
        if step.kind == "build":
            paths = RunPaths(run_dir(plan, t))
            return _hash([sha256_file(paths.pairs), sha256_file(paths.lineage) if paths.lineage.is_file() else None])
        if step.kind in ("materialize", "publish"):
            return content_id(read_manifest(version_dir(plan, t)))
        if step.kind == "train":
            return sha256_file(model_dir(plan, t) / "train_manifest.json")
        if step.kind == "eval":
            name = step.id.split(":")[0].removeprefix("eval-")
            return sha256_file(eval_dir(plan, name, t) / "summary.parquet")
    except (OSError, LidrError):
        return None
    return None


def _agreement(version: Path) -> dict:
    files = sorted((version / "data" / "all").glob("*.parquet"))
    if not files:
        return {"chosen_lang_agreement": None, "rejected_lang_agreement": None}
    row = duckdb.sql(
        "SELECT avg((chosen_lang = lang)::INT), avg((rejected_lang = lang)::INT) FROM read_parquet(["
        + ", ".join(sql_literal(p) for p in files) + "])").fetchall()[0]
    return {"chosen_lang_agreement": row[0], "rejected_lang_agreement": row[1]}


def summarize(plan: IteratePlan) -> pl.DataFrame:
    """One row per model M_0..M_N: its data (pairs kept/dropped by reason, language-ID agreement of chosen and
    rejected), training metrics and each evaluation per language with its change from the previous model. Also
    written to W/summary.parquet."""
    rows = []
    for t in range(0, plan.iterations + 1):
        row: dict[str, Any] = {"iteration": t, "model": f"M{t}"}
        if t >= 1:
            version, run = version_dir(plan, t), run_dir(plan, t)
            manifest_path = version / "manifest.json"
            if not manifest_path.is_file():
                break
            manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
            row.update(version=f"iter-{t}", content_id=content_id(manifest), pairs_kept=pair_count(run))
            row.update({f"dropped_{reason}": n for reason, n in drop_reasons(run).items()})
            row.update(_agreement(version))
            tm = model_dir(plan, t) / "train_manifest.json"
            if tm.is_file():
                metrics = json.loads(tm.read_text(encoding="utf-8")).get("metrics") or {}
                row.update(final_loss=metrics.get("last_logged/loss", metrics.get("train_loss")),
                           reward_accuracy=metrics.get("last_logged/rewards/accuracies"),
                           reward_margin=metrics.get("last_logged/rewards/margins"),
                           nll=metrics.get("last_logged/nll"))
        for name in plan.evals:  # each evaluation's metrics per language: <evaluation>_<metric>_<lang>
            folder = eval_dir(plan, name, t)
            if not (folder / "summary.parquet").is_file():
                continue
            for lang, values in registry.find(name).read_metrics(folder).items():
                for metric, value in values.items():
                    row[f"{name}_{metric}_{lang}"] = value
        rows.append(row)
    if not rows:
        return pl.DataFrame()
    df = pl.DataFrame(rows, infer_schema_length=None)
    evals = [c for c in df.columns if c.startswith(tuple(f"{n}_" for n in registry.names()))]
    df = df.select([c for c in df.columns if c not in evals] + evals)  # data and training first, then evaluations
    df = df.with_columns([(pl.col(c) - pl.col(c).shift(1)).alias(f"{c}_change") for c in evals])
    with atomic_path(plan.workdir / SUMMARY) as tmp:
        df.write_parquet(tmp)
    return df


def eval_folders(plan: IteratePlan) -> list[Path]:
    """The finished evaluation folders, per evaluation in model order (for `lidr eval compare`)."""
    return [eval_dir(plan, name, t) for name in plan.evals for t in range(plan.iterations + 1)
            if (eval_dir(plan, name, t) / "summary.parquet").is_file()]


