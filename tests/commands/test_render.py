"""Tables people can read: numbers are never cut, piped or not; csv/json carry the raw values."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import polars as pl
import pytest
from rich.console import Console
from shared_data import require_shared_data
from synthetic import make_run

from lidr_data.build.materialize import materialize
from lidr_data.cli import main
from lidr_data.commands.render import make_console, output_consoles, print_tables
from lidr_data.table import Column, TableData

VALUES = [92.123456 + 7.5 * i for i in range(14)]


def wide_table(label: str = "a language label that is rather long") -> TableData:
    columns = [Column("label")] + [Column(f"c{i}", f"metric number {i}", numeric=True, fmt=lambda v: f"{v:.4f}")
                                   for i in range(len(VALUES))]
    return TableData("wide", columns, [{"label": label, **{f"c{i}": v for i, v in enumerate(VALUES)}}])


def render(table: TableData, fmt: str = "table", **console_kw) -> str:
    buf = io.StringIO()
    print_tables([table], fmt, Console(file=buf, **console_kw))
    return buf.getvalue()


def test_piped_table_keeps_every_number_whole():
    out = render(wide_table(), width=80)  # what rich assumes for a pipe or a log file
    for v in VALUES:
        assert f"{v:.4f}" in out
    assert "…" not in out and "a language label that is rather long" in out


def test_terminal_table_wraps_labels_not_numbers():
    table = wide_table()
    table.columns, table.rows = table.columns[:4], [{k: v for k, v in table.rows[0].items() if k in ("label", "c0",
                                                                                                         "c1", "c2")}]
    out = render(table, width=50, force_terminal=True, color_system=None)
    assert max(len(line) for line in out.splitlines()) <= 50  # it fits the terminal ...
    assert "a language label that is rather long" not in out  # ... by wrapping the label
    for v in VALUES[:3]:
        assert f"{v:.4f}" in out
    # Too many numbers for the terminal: printed wider than the terminal rather than cut.
    out = render(wide_table(), width=50, force_terminal=True, color_system=None)
    assert all(f"{v:.4f}" in out for v in VALUES) and "…" not in out


def test_csv_and_json_hold_raw_values():
    table = wide_table(label='a "quoted", label')
    rows = list(csv.DictReader(io.StringIO(render(table, "csv"))))
    assert rows[0]["label"] == 'a "quoted", label' and float(rows[0]["c3"]) == VALUES[3]
    assert json.loads(render(table, "json")) == [{"label": 'a "quoted", label',
                                                  **{f"c{i}": v for i, v in enumerate(VALUES)}}]
    two = [wide_table(), TableData("other", [Column("x", numeric=True)], [{"x": 1}], name="other")]
    buf = io.StringIO()
    print_tables(two, "json", Console(file=buf))
    assert json.loads(buf.getvalue())["other"] == [{"x": 1}]


def test_winrate_piped_shows_whole_numbers_and_formats(tmp_path, capsys):
    outputs = require_shared_data("x-alpacaeval", "outputs")
    args = ["eval", "winrate", "--candidate", str(outputs / "gpt-3.5-turbo-0125"), "--reference",
            str(outputs / "gpt-4-turbo-2024-04-09"), "--judge", "length", "--langs", "en,es,ru,de,fr",
            "--output", str(tmp_path / "wr"), "--no-progress"]
    assert main(args) == 0
    out = capsys.readouterr().out
    summary = pl.read_parquet(tmp_path / "wr" / "summary.parquet")
    for r in summary.iter_rows(named=True):
        for key in ("win_rate", "se", "lc_win_rate"):
            assert f"{r[key]:.2f}" in out, (key, r[key])
    assert "…" not in out
    assert main([*args, "--format", "csv"]) == 0
    captured = capsys.readouterr()
    rows = list(csv.DictReader(io.StringIO(captured.out)))
    assert [r["lang"] for r in rows] == summary["lang"].to_list()
    assert [float(r["win_rate"]) for r in rows] == summary["win_rate"].to_list()
    assert "results in" in captured.err  # notes go to stderr, stdout is only the CSV
    assert main([*args, "--format", "json"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert [r["se"] for r in got] == summary["se"].to_list()


@pytest.fixture(scope="module")
def deep_version(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("render") / ("a-rather-long-folder-name-" * 3) / "work"
    run = make_run(root / "runs" / "demo-lidr" / "iter-1", n_prompts=30)
    return materialize(run, root / "store", progress=False)


def test_versions_and_inspect_piped_and_as_data(deep_version: Path, capsys):
    from lidr_data.inspect import build_report, quantiles_text

    manifest = json.loads((deep_version / "manifest.json").read_text())
    assert main(["versions", str(deep_version.parent)]) == 0
    out = capsys.readouterr().out
    assert str(deep_version) in out and f"{manifest['counts']['pairs']:,}" in out and "…" not in out
    assert main(["versions", str(deep_version.parent), "--format", "json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["pairs"] == manifest["counts"]["pairs"] and row["license"] == "cc-by-nc-4.0"

    report = build_report(str(deep_version))
    assert main(["inspect", str(deep_version)]) == 0
    out = capsys.readouterr().out
    for r in report.lengths:
        assert quantiles_text(r["ratio_q"], 2) in out and quantiles_text(r["chosen_q"]) in out
    assert main(["inspect", str(deep_version), "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["pairs"] == report.pairs and data["lengths"][0]["ratio_q"] == pytest.approx(report.lengths[0]["ratio_q"])
    assert main(["inspect", str(deep_version), "--format", "csv"]) == 0
    blocks = capsys.readouterr().out.split("\n\n")
    assert blocks[0].startswith("# agreement\n")
    agreement = list(csv.DictReader(io.StringIO(blocks[0].split("\n", 1)[1])))
    assert sum(int(r["pairs"]) for r in agreement) == report.pairs


def test_sql_and_compare_tables_piped(deep_version: Path, tmp_path: Path, capsys):
    import pyarrow.parquet as pq

    q = ("SELECT pair_id, chosen_lang_score, rejected_lang_score, chosen_chars, rejected_chars, lang, direction, "
         "prompt_text, chosen_text FROM pairs ORDER BY pair_id LIMIT 5")
    assert main(["sql", str(deep_version), q]) == 0
    out = capsys.readouterr().out
    rows = sorted(pq.read_table(deep_version / "data" / "all").to_pylist(), key=lambda r: r["pair_id"])[:5]
    for r in rows:
        assert r["pair_id"] in out and str(r["chosen_lang_score"]) in out and str(r["rejected_chars"]) in out

    outputs = require_shared_data("x-alpacaeval", "outputs")
    assert main(["eval", "winrate", "--candidate", str(outputs / "gpt-3.5-turbo-0125"), "--reference",
                 str(outputs / "gpt-4-turbo-2024-04-09"), "--judge", "length", "--langs", "de,fr", "--label",
                 "a-model-with-a-long-label", "--output", str(tmp_path / "wr"), "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["eval", "compare", str(tmp_path / "wr"), "--format", "csv"]) == 0
    got = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))  # one table: plain CSV
    summary = pl.read_parquet(tmp_path / "wr" / "summary.parquet")
    assert [r["lang"] for r in got] == summary["lang"].to_list()
    assert got[0]["a-model-with-a-long-label"].startswith(f"{summary['win_rate'][0]:.2f}")


def test_cells_are_data_not_markup():
    table = TableData("t", [Column("label"), Column("n", numeric=True)],
                      [{"label": "[ERROR] [bold]x[/bold] [/]", "n": 12345}])
    for kw in ({"width": 80}, {"width": 80, "force_terminal": True, "color_system": None}):
        out = render(table, **kw)
        assert "[ERROR] [bold]x[/bold] [/]" in out and "12,345" in out


def test_messages_off_a_terminal_are_never_wrapped(capsys):
    """Issue 20: piped output was cut at the 80 columns rich assumes (`lidr generate`'s path split in two,
    `lidr iterate`'s step lines, `verify`'s ids). Every console a command prints on comes from make_console."""
    line = "finished build:1 in " + "/a-long-folder-name" * 8 + "/completions.parquet (content id " + "3de4" * 16 + ")"
    out, notes = output_consoles("csv")  # the table on stdout, messages on stderr
    out.print(line)
    notes.print(line, markup=False, highlight=False)
    make_console(stderr=True).print(line)
    captured = capsys.readouterr()
    assert captured.out == line + "\n" and captured.err == (line + "\n") * 2
