"""Several results folders side by side per language (e.g. M0, M1, M2), as the paper's tables show them."""

from __future__ import annotations

from pathlib import Path

import duckdb

from lidr_data.errors import LidrError
from lidr_data.eval.results import read_run


def _cell(task: str, metric: str | None, row: dict) -> str:
    if metric is None and task == "mgsm":
        acc, off = row["accuracy"], row["off_target_rate"]
        return f"{100 * acc:.1f}" + ("" if off is None else f" ({100 * off:.1f})")
    if metric is None and task == "winrate":
        wr, se = row["win_rate"], row["se"]
        return "-" if wr is None else f"{wr:.2f}" + ("" if se is None else f" ± {se:.2f}")
    if metric is None and task == "refnll":
        nll, se, per_byte = row["nll_per_token"], row["se_per_token"], row["nll_per_byte"]
        return "-" if nll is None else f"{nll:.3f}" + ("" if se is None else f" ± {se:.3f}") + \
            ("" if per_byte is None else f" ({per_byte:.4f})")
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
        langs: list[str] = []
        columns = []
        for i in indices:
            cells = {}
            for row in rows.filter(rows["filename"] == files[i]).iter_rows(named=True):
                if row["lang"] not in langs:
                    langs.append(row["lang"])
                cells[row["lang"]] = _cell(task, metric, row)
            columns.append((labels[i], cells))
        langs = [lang for lang in langs if lang != "avg"] + (["avg"] if "avg" in langs else [])
        title = metric or {"mgsm": "accuracy % (off-target %)", "winrate": "win rate % ± SE",
                           "refnll": "NLL/token ± SE (NLL/byte)"}.get(task, task)
        out.append((task, title, langs, columns))
    return out
