"""The shared file and SQL-text helpers: atomic writes leave the old file or the new one, never a half; stale
temporaries of dead writers go; quoting round-trips through DuckDB."""

from __future__ import annotations

import json

import duckdb
import pytest

from lidr_data.files import (
    atomic_path,
    atomic_paths,
    remove_stale_temps,
    sql_ident,
    sql_literal,
    temp_path,
    write_json_atomic,
    write_text_atomic,
)


def test_atomic_path_replaces_only_on_success(tmp_path):
    target = tmp_path / "sub" / "out.txt"
    write_text_atomic(target, "old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert target.read_text() == "old"
    assert [p.name for p in target.parent.iterdir()] == ["out.txt"]  # no temporary left
    with atomic_path(target, fsync=True) as tmp:
        assert tmp == temp_path(target) and tmp.parent == target.parent
        tmp.write_text("new")
    assert target.read_text() == "new"


def test_atomic_paths_rename_in_order(tmp_path):
    first, last = tmp_path / "dropped.parquet", tmp_path / "kept.parquet"
    with atomic_paths(first, last) as (a, b):
        a.write_text("d")
        b.write_text("k")
    assert first.read_text() == "d" and last.read_text() == "k"
    assert first.stat().st_mtime_ns <= last.stat().st_mtime_ns
    write_json_atomic(tmp_path / "x.json", {"ü": [1]})
    assert json.loads((tmp_path / "x.json").read_text(encoding="utf-8")) == {"ü": [1]}


def test_sql_quoting_round_trips():
    con = duckdb.connect()
    text = "it's a \"quote\" \\ ; DROP TABLE x; --"
    assert con.execute(f"SELECT {sql_literal(text)} AS {sql_ident(text)}").fetchone() == (text,)
    assert con.execute(f"SELECT {sql_literal(text)} AS {sql_ident(text)}").description[0][0] == text


def test_remove_stale_temps_only_takes_files_of_dead_writers(tmp_path):
    import os
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    names = {f".pairs.parquet.part-{proc.pid}": False, f".x.json.tmp-{proc.pid}": False,
             f".pairs.parquet.part-{os.getpid()}": True, f".pairs.parquet.part-{os.getppid()}": True,
             "pairs.parquet": True, ".hidden": True, f"notes.part-{proc.pid}": True}
    for name in names:
        (tmp_path / name).write_text("x")
    removed = remove_stale_temps(tmp_path)
    assert sorted(p.name for p in removed) == sorted(n for n, keep in names.items() if not keep)
    assert {p.name for p in tmp_path.iterdir()} == {n for n, keep in names.items() if keep}
