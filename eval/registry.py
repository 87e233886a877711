"""Every evaluation, in order: `lidr eval` makes a subcommand of each (commands/eval.py), `lidr iterate` checks a
recipe's `eval:` section against them and reads their metrics into its table (commands/iterate.py, iterate.py),
`lidr eval compare` shows their summaries (compare.py).

Each evaluation declares its own entry (`EVALUATION`, an `evaluation.Evaluation`: name, options, runner, the
metrics and compare cell its summary gives) in its own module. A new evaluation is one new module in eval/ and
its line here (import it, and list its entry in EVALUATIONS); nothing else changes.
"""

from __future__ import annotations

from lidr_data.eval import mgsm, refnll, winrate
from lidr_data.eval.evaluation import Evaluation

# Read through this module (`registry.EVALUATIONS`, `names()`, `find()`), never copied: this tuple is the list.
EVALUATIONS: tuple[Evaluation, ...] = (mgsm.EVALUATION, winrate.EVALUATION, refnll.EVALUATION)


def names() -> tuple[str, ...]:
    """The evaluations' names, in order."""
    return tuple(e.name for e in EVALUATIONS)


def find(name: str) -> Evaluation | None:
    """The evaluation called `name` (a recipe's `eval.NAME`, a run.json's `task`), or None."""
    return next((e for e in EVALUATIONS if e.name == name), None)
