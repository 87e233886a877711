"""`lidr iterate RECIPE --iterations N`: build -> version -> train -> eval, M_t generating iteration t+1's data.

The recipe's `train:` and `eval:` sections are checked here, with the parsers of `lidr train` and of each
evaluation (the options `lidr eval NAME` is made from, eval/registry.py), before iteration 1 starts: an error
names the recipe file and the field path.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

from lidr_data.build.recipe import load_recipe, with_overrides
from lidr_data.commands.render import add_format_argument, output_consoles, print_tables
from lidr_data.config import resolve_path
from lidr_data.errors import LidrError
from lidr_data.eval import registry
from lidr_data.extras import require, require_generation
from lidr_data.iterate import SUMMARY, IteratePlan, eval_folders, run_loop, summarize
from lidr_data.readers import read_yaml
from lidr_data.table import Column, TableData
from lidr_data.train.dpo import make_parser, parse_args

# Set by the loop for every step: not the recipe's to choose.
_TRAIN_RESERVED = ("dataset", "model", "output", "resume", "overwrite", "push_to", "config")
_EVAL_RESERVED = ("model", "output", "label", "candidate", "format", "no_progress", "help")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "iterate", help="the self-improvement loop: build with M_t, version, train M_{t+1}, evaluate, repeat",
        description="Iteration t builds with M_{t-1} on prompt slice t (slice t starts where slice t-1 ended; "
        "prompts.limit is the slice size), materializes version iter-t (parent: iter-(t-1); generator: M_{t-1}), "
        "optionally publishes it, trains M_t on it with the recipe's `train:` settings and runs the recipe's "
        "`eval:` evaluations on M_0 (once) and M_t. Each step is its own process, recorded in WORKDIR/iterate.json "
        "when it finished: a rerun continues at the first unfinished step, and a changed setting reruns that "
        "step and the steps that depend on it. Ends with a table across iterations (also WORKDIR/summary.parquet).")
    p.add_argument("recipe", help="recipe YAML with `train:` and (optionally) `eval:` sections")
    p.add_argument("--iterations", type=int, required=True, help="number of iterations N (trains M_1 .. M_N)")
    p.add_argument("--workdir", type=Path, default=None, help="work folder W (default: the recipe's `workdir`)")
    p.add_argument("--slice-size", type=int, default=None,
                   help="prompt items per iteration (default: the recipe's prompts.limit)")
    p.add_argument("--publish", default=None, metavar="ORG/NAME",
                   help="also publish every version to this Hub dataset repo (one commit + tag iter-t each)")
    p.add_argument("--executor", choices=("local", "ray"), default="local",
                   help="where the build steps generate (forwarded to `lidr build`)")
    p.add_argument("--ray-address", default=None, help="Ray cluster address for --executor ray (forwarded)")
    add_format_argument(p, what="table across iterations (csv/json: on stdout, the rest on stderr)")
    p.set_defaults(func=run)


def _words(options: dict[str, Any]) -> list[str]:
    """A mapping of command options as command-line words (`langs: [en, es]` -> `--langs en,es`)."""
    words: list[str] = []
    for key, value in options.items():
        flag = "--" + str(key).replace("_", "-")
        if value is True:
            words.append(flag)
        elif value is False or value is None:
            continue
        elif isinstance(value, (list, tuple)):
            words += [flag, ",".join(str(v) for v in value)]
        else:
            words += [flag, str(value)]
    return words


def _resolve_paths(options: dict[str, Any]) -> dict[str, Any]:
    """`lidr:` paths (files shipped in the package) as real paths: the eval commands take plain paths."""
    return {k: str(resolve_path(v)) if isinstance(v, str) and v.startswith("lidr:") else v
            for k, v in options.items()}


def check_eval(section: Any, where: str) -> dict[str, list[str]]:
    """The `eval:` section -> {evaluation: its `lidr eval NAME` words}, validated by that evaluation's own options
    parser (eval/registry.py)."""
    if section is None:
        return {}
    if not isinstance(section, dict):
        raise LidrError(f"{where}: eval: expected a mapping of evaluations ({', '.join(registry.names())})")
    evals = {}
    for name, options in section.items():
        path = f"{where}: eval.{name}"
        evaluation = registry.find(name)
        if evaluation is None:
            raise LidrError(f"{where}: eval.{name}: unknown evaluation (known: {', '.join(registry.names())})")
        options = options or {}
        if not isinstance(options, dict):
            raise LidrError(f"{path}: expected a mapping of `lidr eval {name}` options")
        parser = argparse.ArgumentParser(prog=f"lidr eval {name}")
        evaluation.add_arguments(parser)
        known = {a.dest for a in parser._actions if a.option_strings} - set(_EVAL_RESERVED)
        for key in options:
            if key in _EVAL_RESERVED:
                raise LidrError(f"{path}.{key}: set by lidr iterate for every model, not in the recipe")
            if str(key).replace("-", "_") not in known:
                raise LidrError(f"{path}.{key}: unknown option (known: {', '.join(sorted(known))})")
        words = _words(_resolve_paths(options))

        def fail(message: str, path: str = path) -> None:
            raise LidrError(f"{path}: {message.replace('--', '').replace('-', '_')}")

        parser.error = fail  # argparse would print usage and exit
        # with the options the loop gives every evaluation (lidr_data/iterate.py: plan_steps)
        parser.parse_args([*words, "--model", "M", "--output", "O", "--label", "M0", "--no-progress"])
        problem = evaluation.iterate_check(options)
        if problem:
            raise LidrError(f"{path}: {problem}")
        evals[name] = words
    return evals


def check_train(section: Any, where: str) -> dict[str, Any]:
    """The `train:` section (a mapping, or the path of a training YAML) -> the settings, validated by `lidr train`'s
    own parser (TrlParser over TrainArguments, DPOConfig, ModelConfig)."""
    if section is None:
        raise LidrError(f"{where}: train: required by lidr iterate (the `lidr train` settings, or a path to a "
                        "training YAML such as recipes/train-paper.yaml)")
    label = "train"
    if isinstance(section, str):
        path = resolve_path(section)
        label = f"train ({path})"
        if not path.is_file():
            raise LidrError(f"{where}: train: {section}: file not found")
        try:
            section = read_yaml(path) or {}
        except LidrError as e:
            raise LidrError(f"{where}: train: {e}") from None
    if not isinstance(section, dict):
        raise LidrError(f"{where}: {label}: expected a mapping of `lidr train` settings")
    require("trl", "peft", "accelerate", purpose="lidr iterate (training)")
    known = {a.dest for a in make_parser()._actions if a.option_strings} - {"help"}
    for key in section:
        if key in _TRAIN_RESERVED:
            raise LidrError(f"{where}: {label}.{key}: set by lidr iterate for every iteration, not in the recipe")
        if key not in known:
            raise LidrError(f"{where}: {label}.{key}: unknown setting (any `lidr train` / DPOConfig / ModelConfig "
                            "field; see `lidr train --help`)")
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "train.yaml"
        config.write_text(yaml.safe_dump(section), encoding="utf-8")
        err = io.StringIO()
        try:
            with contextlib.redirect_stderr(err):
                parse_args(["x", "--model", "x", "--output", str(Path(tmp) / "out"), "--config", str(config)])
        except LidrError as e:
            raise LidrError(f"{where}: {label}: {str(e).removeprefix('lidr train: ')}") from None
        except SystemExit:
            lines = [line for line in err.getvalue().strip().splitlines() if line.strip()]
            message = lines[-1].split("error: ", 1)[-1] if lines else "invalid settings"
            raise LidrError(f"{where}: {label}: {message}") from None
    return section


def make_plan(args: argparse.Namespace) -> IteratePlan:
    recipe = load_recipe(args.recipe)
    where = str(args.recipe)
    if args.executor == "ray":  # every build step would need it: say so before iteration 1
        require_generation(None, executor="ray")
    if args.iterations < 1:
        raise LidrError(f"--iterations must be >= 1, got {args.iterations}")
    train = check_train(recipe.train, where)
    evals = check_eval(recipe.eval, where)
    slice_size = args.slice_size or recipe.prompts.limit
    if not slice_size or slice_size < 1:
        raise LidrError(f"{where}: prompts.limit: set the slice size (prompt items per iteration), or pass "
                        "--slice-size K")
    workdir = Path(args.workdir or recipe.workdir).expanduser().resolve()
    recipe = with_overrides(dataclasses.replace(recipe, train=None, eval=None), workdir=workdir)
    return IteratePlan(recipe=recipe, recipe_path=where, iterations=args.iterations, workdir=workdir,
                       slice_size=slice_size, train=train, evals=evals, publish=args.publish,
                       executor=args.executor, ray_address=args.ray_address)


def summary_table(df) -> TableData:
    """Models as columns, measures as rows: a table that stays narrow however many languages are evaluated."""
    models = df["model"].to_list()
    rows = []
    for name in df.columns:
        if name in ("model",):
            continue
        values = df[name].to_list()
        if name == "content_id":  # the full id is in summary.parquet
            values = [v[:12] + "…" if v else v for v in values]
        rows.append({"measure": name, **{m: v for m, v in zip(models, values)}})
    cols = [Column("measure")] + [Column(m, numeric=True, fmt=lambda v: "-" if v is None else
                                         (f"{v:.4f}" if isinstance(v, float) else str(v))) for m in models]
    return TableData("lidr iterate: across iterations", cols, rows, name="summary")


def run(args: argparse.Namespace) -> int:
    out, console = output_consoles(args.format)
    plan = make_plan(args)  # every check before iteration 1
    console.print(f"lidr iterate: {plan.iterations} iteration(s) of {plan.slice_size} prompt items in "
                  f"[bold]{plan.workdir}[/]", soft_wrap=True)
    try:
        # csv/json: stdout holds only the summary; the steps' own tables go to stderr
        run_loop(plan, notify=lambda m: console.print(m, markup=False, highlight=False),
                 stdout=None if args.format == "table" else sys.stderr)
    finally:
        df = summarize(plan)
    if args.format == "table":
        print_tables([summary_table(df)], args.format, out)
    else:
        print_tables([TableData("summary", [Column(c) for c in df.columns], df.to_dicts())], args.format, out)
    console.print(f"summary: [bold]{plan.workdir / SUMMARY}[/] (try `lidr sql {plan.workdir} \"SELECT * FROM "
                  "summary\"`)", soft_wrap=True)
    folders = eval_folders(plan)
    if folders:
        console.print("evaluations: lidr eval compare " + " ".join(str(f) for f in folders), soft_wrap=True)
    return 0
