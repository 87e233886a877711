"""Several results folders side by side per language (e.g. M0, M1, M2), as the paper's tables show them."""

from __future__ import annotations

from pathlib import Path

import duckdb

from lidr_data.errors import LidrError
from lidr_data.eval import registry
from lidr_data.eval.evaluation import Evaluation
from lidr_data.eval.results import read_run


def _cell(evaluation: Evaluation | None, metric: str | None, row: dict) -> str:
    if metric is None and evaluation is not None:  # the evaluation's own cell (e.g. accuracy and off-target)
        return evaluation.cell(row)
    value = row.get(metric)
    return "-" if value is None else f"{value:.4g}" if isinstance(value, float) else str(value)


def compare_runs(runs: list[Path], metric: str | None = None) -> list[tuple[str, str, list[str], list]]:
    """[(task, metric title, languages in order, [(label, {lang: cell})])], one entry per task present."""
    labels, files, tasks = [], [], {}
    for folder in runs:
        info, _ = read_run(folder)  # validates the folder
        label = info.get("label") or Path(folder).name
        if label in labels:  # two runs of the same model: tell them apart by folder
            label = f"{label} ({Path(folder).name})"
        labels.append(label)
        files.append(str(Path(folder) / "summary.parquet"))
        tasks.setdefault(info["task"], []).append(len(labels) - 1)
    con = duckdb.connect()
    rows = con.sql(f"SELECT *, filename FROM read_parquet({files!r}, union_by_name = true, filename = true)").pl()
    con.close()
    if metric is not None and metric not in rows.columns:
        raise LidrError(f"no column {metric!r} in the summaries; columns: {', '.join(rows.columns)}")
    out = []
    for task, indices in tasks.items():
        evaluation = registry.find(task)
        langs: list[str] = []
        columns = []
        for i in indices:
            cells = {}
            for row in rows.filter(rows["filename"] == files[i]).iter_rows(named=True):
                if row["lang"] not in langs:
                    langs.append(row["lang"])
                cells[row["lang"]] = _cell(evaluation, metric, row)
            columns.append((labels[i], cells))
        langs = [lang for lang in langs if lang != "avg"] + (["avg"] if "avg" in langs else [])
        title = metric or (evaluation.cell_title if evaluation else task)
        out.append((task, title, langs, columns))
    return out
