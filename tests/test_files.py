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


def test_exchange_paths_swaps_two_folders_in_one_step(tmp_path):
    import sys

    from lidr_data.files import exchange_paths

    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    (a / "x").write_text("a")
    (b / "x").write_text("b")
    swapped = exchange_paths(a, b)
    assert swapped == sys.platform.startswith("linux")  # renameat2(RENAME_EXCHANGE) on Linux (ext4, tmpfs)
    if swapped:
        assert (a / "x").read_text() == "b" and (b / "x").read_text() == "a"
    with pytest.raises(OSError):
        exchange_paths(tmp_path / "missing", b)


def test_a_forced_replacement_never_shows_a_missing_version(tmp_path):
    """A reader polling manifest.json while a version is replaced again and again never finds it missing (the
    two-rename fallback left a gap: a poller saw it missing 345 times in 3.7 million polls)."""
    import os
    import threading

    from lidr_data.files import swap_into_place, temp_dir_name

    final = tmp_path / "iter-1"
    final.mkdir()
    (final / "manifest.json").write_text("0")
    manifest = final / "manifest.json"
    started, done = threading.Event(), threading.Event()
    seen = {"polls": 0, "missing": 0, "inodes": set()}

    def poll() -> None:
        while not done.is_set():
            seen["polls"] += 1
            try:
                seen["inodes"].add(os.stat(manifest).st_ino)
            except FileNotFoundError:
                seen["missing"] += 1
            started.set()

    reader = threading.Thread(target=poll)
    reader.start()
    started.wait()
    try:
        for i in range(300):
            tmp = tmp_path / temp_dir_name("iter-1")
            tmp.mkdir()
            (tmp / "manifest.json").write_text(str(i + 1))
            assert swap_into_place(tmp, final) is True
            assert not tmp.exists()  # the old folder went
    finally:
        done.set()
        reader.join()
    assert manifest.read_text() == "300" and sorted(p.name for p in tmp_path.iterdir()) == ["iter-1"]
    assert len(seen["inodes"]) > 1, seen  # the reader ran during the replacements
    assert seen["missing"] == 0, seen
