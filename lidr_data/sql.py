"""Read-only SQL over a dataset version (or any folder of Parquet files) with DuckDB.

Views: for a version, `pairs` (data/all) and `dropped` (data/dropped); for a folder without a manifest (a run
folder, eval results), one view per `<name>.parquet`. Views holding conversational `prompt`/`chosen`/`rejected`
columns also get flat `prompt_text` (the last user turn), `chosen_text` and `rejected_text`.

Read-only is enforced twice: only SELECT-like statements pass DuckDB's own parser (`extract_statements`), and
the connection is sandboxed after the views exist (external access off except for the dataset's own files,
configuration locked), so a statement that slips past the first check still cannot write, attach, install or
read other files.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from lidr_data.dataset.store import Reference, read_manifest, resolve
from lidr_data.errors import LidrError

ALLOWED = {duckdb.StatementType.SELECT, duckdb.StatementType.EXPLAIN}
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _q(path: Path) -> str:
    return "'" + str(path).replace("'", "''") + "'"


def _flat_columns(names: list[str]) -> str:
    """The flat text columns a view lacks; a table that stores them (the `dropped` rows do) keeps its own."""
    flat = {
        "prompt_text": ("prompt", "list_filter(prompt, lambda m: m.role = 'user')[-1].content"),
        "chosen_text": ("chosen", "chosen[1].content"),
        "rejected_text": ("rejected", "rejected[1].content"),
    }
    return "".join(f", {expr} AS {name}" for name, (source, expr) in flat.items()
                   if source in names and name not in names)


@dataclass
class Tables:
    """The views of one reference: view name -> Parquet files, plus where they came from."""

    reference: str
    folder: Path
    views: dict[str, list[Path]]
    is_version: bool


def tables_for(ref: str | Reference) -> Tables:
    ref, folder, is_version = resolve(ref)
    views: dict[str, list[Path]] = {}
    if is_version:
        manifest = read_manifest(folder)
        for view, config in (("pairs", "all"), ("dropped", "dropped")):
            files = [folder / rel for rel in manifest["configs"].get(config, [])]
            missing = [str(p) for p in files if not p.is_file()]
            if missing:
                raise LidrError(f"{folder}: missing data file {missing[0]} (run `lidr verify`)")
            if files:
                views[view] = files
    else:
        for path in sorted(folder.glob("*.parquet")):
            if _IDENT.match(path.stem):
                views[path.stem] = [path]
        if not views:
            raise LidrError(f"{folder}: no dataset version and no .parquet files to query")
    return Tables(str(ref), folder, views, is_version)


def connect(tables: Tables) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection with the views, sandboxed to reading the dataset's own files."""
    con = duckdb.connect(":memory:")
    allowed: list[Path] = []
    for view, files in tables.views.items():
        names: list[str] = []
        for f in files:
            names += [n for n in pq.read_schema(f).names if n not in names]
        files_sql = "[" + ", ".join(_q(f.resolve()) for f in files) + "]"
        con.execute(
            f'CREATE VIEW "{view}" AS SELECT *{_flat_columns(names)} '
            f"FROM read_parquet({files_sql}, union_by_name = true)"
        )
        allowed += [f.resolve() for f in files]
    con.execute("SET allowed_paths = [" + ", ".join(_q(p) for p in allowed) + "]")
    con.execute("SET enable_external_access = false")
    con.execute("SET enable_progress_bar = false")  # results go to stdout; a bar there would corrupt csv/json
    con.execute("SET autoinstall_known_extensions = false")
    con.execute("SET autoload_known_extensions = false")
    con.execute("SET lock_configuration = true")
    return con


def check_read_only(sql: str) -> str:
    """The one statement in `sql`, if it only reads; a LidrError naming the statement type otherwise."""
    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error as e:
        raise LidrError(f"SQL syntax error: {e}") from None
    if len(statements) != 1:
        raise LidrError(f"expected exactly one SQL statement, got {len(statements)}")
    st = statements[0]
    if st.type not in ALLOWED:
        kind = st.type.name.replace("_", " ")
        raise LidrError(
            f"refused: {kind} statements are not allowed; `lidr sql` is read-only (SELECT, WITH ... SELECT, "
            "DESCRIBE, SHOW, SUMMARIZE and EXPLAIN only; use --format/--output to save a result)"
        )
    return sql


def query(ref: str | Reference, sql: str) -> pa.Table:
    """Run one read-only statement over the reference's views and return the result as Arrow."""
    check_read_only(sql)
    con = connect(tables_for(ref))
    try:
        return con.sql(sql).to_arrow_table()
    except duckdb.PermissionException as e:
        raise LidrError(f"refused: {str(e).splitlines()[0]} (`lidr sql` reads only the dataset's own files)") from None
    except duckdb.Error as e:
        raise LidrError(f"SQL error: {str(e).splitlines()[0]}") from None
    finally:
        con.close()
