"""Read-only SQL over a dataset version (or any folder of Parquet files) with DuckDB.

Views: for a version, `pairs` (data/all) and `dropped` (data/dropped), plus `audit` (judged pairs) and
`audit_summary` when `lidr audit` has judged it (lidr_data/dataset/audits.py: the audits beside it, of this exact
content id); for a folder without a manifest (a run folder, eval results), one view per `<name>.parquet`. Views holding conversational `prompt`/`chosen`/`rejected`
columns also get flat `prompt_text` (the last user turn), `chosen_text` and `rejected_text`.

Read-only holds at two levels:
- the statement: DuckDB's own parser must type it as a query (SELECT, WITH, DESCRIBE, SHOW, SUMMARIZE, ...), or
  as an EXPLAIN [ANALYZE] of such a query (EXPLAIN ANALYZE executes what it explains);
- the engine: DuckDB's own LocalFileSystem is disabled and external access is off (configuration locked); the
  views read the dataset's files through `ReadOnlyFiles`, a file system that opens only those files and only
  for reading. A statement that slipped past the parser check could neither write a file (the version's own
  included) nor read any other.
A timeout (interrupt) and a memory limit bound what one query may cost.
"""

from __future__ import annotations

import math
import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
from fsspec.implementations.local import LocalFileSystem

from lidr_data.dataset import audits
from lidr_data.dataset.layout import content_id, read_manifest, version_file
from lidr_data.dataset.store import Reference, resolve
from lidr_data.errors import LidrError
from lidr_data.files import sql_literal

ALLOWED = {duckdb.StatementType.SELECT}
DEFAULT_TIMEOUT_S = 60.0
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SIZE = re.compile(r"^\s*\d+(\.\d+)?\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)\s*$", re.IGNORECASE)
# EXPLAIN, EXPLAIN ANALYZE or EXPLAIN (options): what follows must parse as a query on its own.
PROTOCOL = "lidr-read-only"
# What DuckDB's Parquet reader says of damaged data (matched with quoted file names removed: every data file's
# name ends in .parquet, so "parquet" alone says nothing).
_DATA_ERROR = re.compile(r"thrift|TProtocol|parquet|corrupt|magic bytes|decompress|don't know what type|"
                         r"out of buffer|failed to read", re.IGNORECASE)
_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")
# Readers that take a file as text, CSV or JSON: given a version's Parquet file they fail, which is a mistake in
# the query, not damaged data.
_OTHER_READER = re.compile(r"\b(read_text|read_blob|read_csv\w*|read_json\w*|read_ndjson\w*|sniff_csv)\b|"
                           r"Malformed JSON|sniffing file|CSV Error", re.IGNORECASE)
_REFUSED = re.compile(r"PermissionError: (lidr sql is read-only.*)")
_EXPLAIN = re.compile(r"^\s*EXPLAIN\s+(ANALY[SZ]E\s+|\([^()]*\)\s*)?", re.IGNORECASE)


def default_memory_limit() -> str:
    """A quarter of the machine's RAM (at least 1 GB): a runaway query fails long before the machine swaps."""
    try:
        ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        ram = 8 << 30
    return f"{max(1, ram // 4 >> 30)}GB"


def flat_text_columns(names: list[str]) -> str:
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


def unreadable(path: Path, error: BaseException, folder: Path | None = None) -> LidrError:
    """The one-line error for a Parquet file that cannot be read (a corrupted footer, a truncated copy)."""
    why = str(error).splitlines()[0] if str(error) else type(error).__name__
    hint = f"run `lidr verify {folder}`" if folder is not None else "check the file"
    return LidrError(f"{path}: unreadable Parquet file ({why}); {hint}")


def _unreadable_data(tables: Tables, error: BaseException) -> LidrError:
    """A query failed while decoding the data (not a SQL mistake): name the file, or the files, to check."""
    files = [f for fs in tables.views.values() for f in fs]
    where = files[0] if len(files) == 1 else f"{tables.folder} (one of {len(files)} Parquet files)"
    hint = f"run `lidr verify {tables.folder}`" if tables.is_version else "check the file"
    return LidrError(f"{where}: unreadable Parquet data ({str(error).splitlines()[0]}); {hint}")


def one_line(error: BaseException) -> str:
    """DuckDB's message in one line: its first line, plus a "Did you mean ..." hint or, for a syntax error, the
    line of the query it points at (DuckDB spreads these over four lines with a caret)."""
    lines = [x.strip() for x in str(error).splitlines() if x.strip()]
    if not lines:
        return type(error).__name__
    extra = [x for x in lines[1:] if x.startswith(("Did you mean", "LINE "))][:1]
    return " ".join(lines[:1] + [f"({x})" if x.startswith("LINE ") else x for x in extra])


def read_schema(path: Path, folder: Path | None = None) -> pa.Schema:
    try:
        return pq.read_schema(path)
    except (OSError, pa.ArrowException) as e:
        raise unreadable(path, e, folder) from None


def tables_for(ref: str | Reference) -> Tables:
    ref, folder, is_version = resolve(ref)
    views: dict[str, list[Path]] = {}
    if is_version:
        manifest = read_manifest(folder)
        for view, config in (("pairs", "all"), ("dropped", "dropped")):
            # Inside the version (or its Hub snapshot) once links are resolved, checked before anything is read.
            rels = manifest["configs"].get(config, [])
            files = [folder / rel for rel in rels if version_file(folder, rel)]
            missing = [str(p) for p in files if not p.is_file()]
            if missing:
                raise LidrError(f"{folder}: missing data file {missing[0]} (run `lidr verify`)")
            if files:
                views[view] = files
        views.update(audits.audit_views(audits.find_audits(audits.audits_root(ref, folder), content_id(manifest))))
    else:
        for path in sorted(folder.glob("*.parquet")):
            if _IDENT.match(path.stem):
                views[path.stem] = [path]
        if not views:
            raise LidrError(f"{folder}: no dataset version and no .parquet files to query")
    return Tables(str(ref), folder, views, is_version)


def _column_names(tables: Tables, files: list[Path]) -> list[str]:
    """The columns of the files, unioned by name (as `read_parquet(union_by_name = true)` reads them); reading
    every footer here also turns a corrupted one into a clear error before DuckDB sees it."""
    hint = tables.folder if tables.is_version else None
    names: list[str] = []
    for f in files:
        names += [n for n in read_schema(f, hint).names if n not in names]
    return names


class PositionalFile:
    """A read-only file whose reads never share a position between threads.

    DuckDB's fsspec bridge reads one shared handle from several threads (its workers and async I/O threads) as
    `seek(offset)` then `read(n)`, releasing the GIL in between: with one shared position (a plain Python file, or
    fsspec's LocalFileOpener) another thread's seek lands between the two and the read returns bytes from the
    wrong offset: corrupt-looking pages, or silently wrong results. Here the position is per thread (the bridge
    seeks and reads from the same thread) and each read is an `os.pread` at that offset, which moves no shared
    state.
    """

    def __init__(self, path: str):
        flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
        self.name = path
        self._fd = os.open(path, flags)
        self.size = os.fstat(self._fd).st_size
        self._local = threading.local()
        self.closed = False

    def _pos(self) -> int:
        return getattr(self._local, "pos", 0)

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        base = {os.SEEK_SET: 0, os.SEEK_CUR: self._pos(), os.SEEK_END: self.size}[whence]
        if base + offset < 0:
            raise OSError(f"negative seek position {base + offset}")
        self._local.pos = base + offset
        return self._local.pos

    def tell(self) -> int:
        return self._pos()

    def read(self, n: int | None = -1) -> bytes:
        if self.closed:
            raise ValueError("I/O operation on closed file")
        pos = self._pos()
        want = max(0, self.size - pos) if n is None or n < 0 else n
        chunks, got = [], 0
        while got < want:  # pread may return less than asked (large reads, signals): loop until EOF
            chunk = os.pread(self._fd, want - got, pos + got)
            if not chunk:
                break
            chunks.append(chunk)
            got += len(chunk)
        self._local.pos = pos + got
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def writable(self) -> bool:
        return False

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            os.close(self._fd)

    def __enter__(self) -> PositionalFile:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001, S110 (interpreter shutdown: nothing left to report to)
            pass


class ReadOnlyFiles(LocalFileSystem):
    """The only file system a sandboxed connection has: opens the listed files for reading, nothing else.

    Paths are `lidr-read-only:///abs/path`. Anything else (writing, renaming, deleting, making folders, links,
    reading or listing another path) raises PermissionError, which DuckDB passes on as the query's error. Files
    open as `PositionalFile` (positional reads, safe under DuckDB's concurrent readers).
    """

    protocol = PROTOCOL
    cachable = False  # one instance per connection, each with its own files

    def __init__(self, files: list[Path]):
        super().__init__()
        self.files = frozenset(str(f) for f in files)

    @classmethod
    def _strip_protocol(cls, path):
        path = str(path)
        if path.startswith(PROTOCOL + "://"):
            path = path[len(PROTOCOL) + 3:]
        return super()._strip_protocol(path)

    def _check(self, path, mode: str = "rb") -> str:
        path = self._strip_protocol(path)
        if mode != "rb" or path not in self.files:
            raise PermissionError(f"lidr sql is read-only and reads only the dataset's own files (refused: {mode} {path})")
        return path

    def _open(self, path, mode="rb", **kwargs):
        return PositionalFile(self._check(path, mode))

    def isfile(self, path) -> bool:
        path = self._strip_protocol(path)
        return path in self.files and os.path.isfile(path)

    def isdir(self, path) -> bool:
        return False

    def lexists(self, path, **kwargs) -> bool:
        return self.isfile(path)

    def info(self, path, **kwargs):
        return super().info(self._check(path), **kwargs)

    def modified(self, path):
        return super().modified(self._check(path))

    def created(self, path):
        return super().created(self._check(path))

    def ls(self, path, detail=False, **kwargs):
        return [self.info(path) if detail else self._check(path)]

    def _refuse(self, path, *args, **kwargs):
        self._check(path, "w")

    rm_file = _rm = rm = rmdir = mkdir = makedirs = touch = mv = cp_file = put_file = pipe_file = _refuse
    link = symlink = chmod = _refuse


def _url(path: Path) -> str:
    return f"{PROTOCOL}://{path}"


def connect(tables: Tables, *, sandbox: bool = True, memory_limit: str | None = None) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection with the views.

    `sandbox` (the default, for any SQL a user typed): DuckDB reads the dataset's files through `ReadOnlyFiles`
    and has no other file system. `sandbox=False` is for the library's own fixed queries (e.g. `inspect`, which
    reads rows by file position): plain paths, external access off but for those files.
    """
    con = duckdb.connect(":memory:")
    try:
        files = [f.resolve() for fs in tables.views.values() for f in fs]
        allowed = [_url(f) if sandbox else str(f) for f in files]
        if sandbox:
            con.register_filesystem(ReadOnlyFiles(files))
        for view, view_files in tables.views.items():
            names = _column_names(tables, view_files)
            paths = [_url(f.resolve()) if sandbox else str(f.resolve()) for f in view_files]
            source = "read_parquet([" + ", ".join(sql_literal(p) for p in paths) + "], union_by_name = true)"
            con.execute(f'CREATE VIEW "{view}" AS SELECT *{flat_text_columns(names)} FROM {source}')
        if sandbox:
            con.execute("SET temp_directory = ''")  # nothing spills to disk: the memory limit is the limit
        con.execute("SET allowed_paths = [" + ", ".join(sql_literal(a) for a in allowed) + "]")
        con.execute("SET enable_external_access = false")
        if sandbox:
            con.execute("SET disabled_filesystems = 'LocalFileSystem'")
        con.execute("SET enable_progress_bar = false")  # results go to stdout; a bar there would corrupt csv/json
        con.execute("SET autoinstall_known_extensions = false")
        con.execute("SET autoload_known_extensions = false")
        if memory_limit is not None:
            if not _SIZE.match(memory_limit):
                raise LidrError(f"--memory-limit {memory_limit!r}: not a size (e.g. 2GB, 512MB)")
            con.execute(f"SET memory_limit = '{memory_limit.strip()}'")  # validated above
        con.execute("SET lock_configuration = true")
    except BaseException:
        con.close()
        raise
    return con


def check_read_only(sql: str) -> str:
    """The one statement in `sql`, if DuckDB's parser types it as a query (or an EXPLAIN of one); a LidrError
    naming the statement type otherwise."""
    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error as e:
        raise LidrError(f"SQL syntax error: {one_line(e).removeprefix('Parser Error: ')}") from None
    if len(statements) != 1:
        raise LidrError(f"expected exactly one SQL statement, got {len(statements)}")
    st = statements[0]
    kind = st.type
    if kind == duckdb.StatementType.EXPLAIN:
        # EXPLAIN ANALYZE runs the statement it explains: what follows EXPLAIN must be a query by itself. Anything
        # the prefix pattern does not strip (comments between keywords, ...) fails to parse and is refused.
        inner = _EXPLAIN.sub("", st.query, count=1)
        try:
            inner_statements = duckdb.extract_statements(inner)
        except duckdb.Error:
            inner_statements = []
        if len(inner_statements) != 1 or inner_statements[0].type not in ALLOWED:
            raise LidrError("refused: EXPLAIN is allowed only of a query (EXPLAIN ANALYZE executes the statement "
                            "it explains); `lidr sql` is read-only")
        return sql
    if kind not in ALLOWED:
        name = kind.name.replace("_", " ")
        raise LidrError(
            f"refused: {name} statements are not allowed; `lidr sql` is read-only (SELECT, WITH ... SELECT, "
            "DESCRIBE, SHOW, SUMMARIZE and EXPLAIN only; use --format/--output to save a result)"
        )
    return sql


def query(ref: str | Reference, sql: str, *, timeout: float | None = DEFAULT_TIMEOUT_S,
          memory_limit: str | None = None) -> pa.Table:
    """Run one read-only statement over the reference's views and return the result as Arrow.

    `timeout` (seconds; None for none) interrupts the query; `memory_limit` (a DuckDB size such as "2GB",
    default a quarter of the RAM) makes a query that needs more fail instead of exhausting the machine.
    """
    check_read_only(sql)
    # nan would silently disable the timer and inf overflow it (in the timer's thread): finite and above 0 only
    if timeout is not None and not (math.isfinite(timeout) and 0 < timeout <= threading.TIMEOUT_MAX):
        raise LidrError(f"--timeout {timeout:g}: must be a positive, finite number of seconds")
    memory_limit = memory_limit or default_memory_limit()
    tables = tables_for(ref)
    con = connect(tables, memory_limit=memory_limit)
    timer = threading.Timer(timeout, con.interrupt) if timeout is not None else None
    try:
        if timer is not None:
            timer.start()
        return con.sql(sql).to_arrow_table()
    except duckdb.InterruptException:
        raise LidrError(f"query stopped after the --timeout of {timeout:g} s (raise --timeout, or narrow the "
                        "query: a filter, a LIMIT, no cross join)") from None
    except duckdb.OutOfMemoryException:
        raise LidrError(f"query needs more memory than the --memory-limit of {memory_limit} (raise it, or "
                        "narrow the query)") from None
    except duckdb.PermissionException as e:
        raise LidrError(f"refused: {str(e).splitlines()[0]} (`lidr sql` reads only the dataset's own tables)") from None
    except duckdb.Error as e:
        refused = _REFUSED.search(str(e))  # ReadOnlyFiles refused an operation (it travels as a Python traceback)
        if refused:
            raise LidrError(f"refused: {refused.group(1)}") from None
        unquoted = _QUOTED.sub("", str(e))
        if PROTOCOL in str(e) and _OTHER_READER.search(str(e)):  # e.g. read_text over a data file
            raise LidrError(f"SQL error: {one_line(e)} (the dataset's files are Parquet and are read through its "
                            f"views: {', '.join(tables.views)}; other file readers do not apply)") from None
        if type(e) is duckdb.Error or isinstance(e, duckdb.IOException) or _DATA_ERROR.search(unquoted):
            raise _unreadable_data(tables, e) from None
        raise LidrError(f"SQL error: {one_line(e)}") from None
    finally:
        if timer is not None:
            timer.cancel()
        con.close()
