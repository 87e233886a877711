"""One registry of evaluations: `lidr eval`, `lidr iterate` and `lidr eval compare` all read eval/registry.py, so a
new evaluation is its module's entry and nothing else (here an entry declared in the test, added to the list)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import polars as pl
import pytest

from lidr_data.cli import main
from lidr_data.commands.iterate import check_eval
from lidr_data.errors import LidrError
from lidr_data.eval import registry
from lidr_data.eval.evaluation import EvalReport, Evaluation, Message, langs_argument
from lidr_data.eval.results import write_json, write_table
from lidr_data.iterate import IteratePlan, eval_dir, summarize
from lidr_data.table import Column, TableData


def _add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True)
    p.add_argument("--langs", type=langs_argument, default="de,fr")
    p.add_argument("--scale", type=float, default=1.0)
    p.add_argument("--output", type=Path, required=True)
    p.add_argument("--label", default=None)
    p.add_argument("--no-progress", action="store_true")


def _run(args: argparse.Namespace, progress) -> EvalReport:
    rows = [{"lang": lang, "score": args.scale * (i + 1)} for i, lang in enumerate(args.langs)]
    rows.append({"lang": "avg", "score": sum(r["score"] for r in rows) / len(rows)})
    label = args.label or args.model
    write_table(pl.DataFrame(rows).with_columns(pl.lit("echo").alias("task")), args.output / "summary.parquet")
    write_json({"task": "echo", "label": label}, args.output / "run.json")
    return EvalReport(TableData(f"echo · {label}", [Column("lang"), Column("score", numeric=True)], rows),
                      args.output, [Message("(summary .parquet)", "results", wrap=False)])


ECHO = Evaluation(
    name="echo", help="a score per language, made up", description="Scores each language by its position.",
    add_arguments=_add_arguments, run=_run, metrics=("score",), cell_title="score",
    cell=lambda row: f"{row['score']:.1f}",
    iterate_check=lambda options: None if options.get("langs") else "needs `langs`",
)


def test_the_registry_lists_each_evaluation_once_in_order():
    assert registry.names() == ("mgsm", "winrate", "refnll")
    assert all(registry.find(name).name == name for name in registry.names()) and registry.find("bleu") is None


def test_lidr_eval_has_a_subcommand_per_evaluation_in_registry_order(capsys):
    with pytest.raises(SystemExit):
        main(["eval", "--help"])
    listed = [line.split()[0] for line in capsys.readouterr().out.splitlines() if line.startswith("    ")]
    assert listed == [*registry.names(), "compare"]


def test_a_new_evaluation_is_one_registry_entry(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(registry, "EVALUATIONS", (*registry.EVALUATIONS, ECHO))
    work = tmp_path / "w"
    m0, m1 = eval_dir_for(work, 0), eval_dir_for(work, 1)
    # `lidr eval echo`: its options, its runner, its report (json on stdout, the results line on stderr)
    assert main(["eval", "echo", "--model", "m0", "--output", str(m0), "--label", "M0", "--format", "json"]) == 0
    out = capsys.readouterr()
    assert json.loads(out.out) == [{"lang": "de", "score": 1.0}, {"lang": "fr", "score": 2.0},
                                   {"lang": "avg", "score": 1.5}]
    assert f"results in {m0} (summary .parquet)" in out.err
    assert main(["eval", "echo", "--model", "m1", "--output", str(m1), "--label", "M1", "--scale", "2"]) == 0
    capsys.readouterr()
    # `lidr eval compare`: its cell and title
    assert main(["eval", "compare", str(m0), str(m1), "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out) == [{"lang": "de", "M0": "1.0", "M1": "2.0"},
                                                   {"lang": "fr", "M0": "2.0", "M1": "4.0"},
                                                   {"lang": "avg", "M0": "1.5", "M1": "3.0"}]
    assert main(["eval", "compare", str(m0), str(m1)]) == 0
    assert capsys.readouterr().out.startswith("echo · score\n")
    # `lidr iterate`: a recipe's eval.echo checked by its parser and its own check; its metrics in the table
    assert check_eval({"echo": {"langs": ["de", "fr"], "scale": 2}}, "r.yaml") == {
        "echo": ["--langs", "de,fr", "--scale", "2"]}
    with pytest.raises(LidrError, match=r"^r.yaml: eval.echo: needs `langs`$"):
        check_eval({"echo": {"scale": 2}}, "r.yaml")
    with pytest.raises(LidrError, match=r"eval.echo: argument scale: invalid float value: 'x'"):
        check_eval({"echo": {"langs": ["de"], "scale": "x"}}, "r.yaml")
    with pytest.raises(LidrError, match=r"eval.bleu: unknown evaluation \(known: mgsm, winrate, refnll, echo\)"):
        check_eval({"bleu": {}}, "r.yaml")
    plan = IteratePlan(recipe=None, recipe_path="r.yaml", iterations=0, workdir=work, slice_size=1, train={},
                       evals={"echo": []})
    assert eval_dir(plan, "echo", 0) == m0
    row = summarize(plan).row(0, named=True)
    assert (row["echo_score_de"], row["echo_score_fr"], row["echo_score_avg"]) == (1.0, 2.0, 1.5)


def eval_dir_for(workdir: Path, t: int) -> Path:
    """Where `lidr iterate` keeps M_t's results of the `echo` evaluation."""
    return workdir / "eval" / f"echo-M{t}"
