"""Persistent request cache: a SQLite file in the run folder, keyed by `Generator.request_key`.

SQLite in WAL mode commits each batch atomically, so a run killed with SIGKILL loses at most the batch in
flight and never leaves a half-written row. Errors are never cached: a rerun retries them.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from collections.abc import Iterable
from pathlib import Path

from lidr_data.errors import LidrError
from lidr_data.files import disk_full, no_space_error
from lidr_data.generation.base import Completion, TokenLogprob

_SCHEMA = """
CREATE TABLE IF NOT EXISTS completions (
    request_key TEXT PRIMARY KEY,
    text TEXT NOT NULL,
    finish_reason TEXT NOT NULL,
    n_tokens INTEGER NOT NULL,
    model TEXT NOT NULL,
    model_revision TEXT NOT NULL,
    logprobs TEXT,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
)
"""


class RequestCache:
    """`get_many` / `put_many` over a SQLite file; safe to reopen after a crash."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if self.path.suffix != ".sqlite":  # a folder was given: keep the file inside it
            self.path = self.path / "requests.sqlite"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = sqlite3.connect(self.path, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute(_SCHEMA)
            columns = {row[1] for row in self._db.execute("PRAGMA table_info(completions)")}
            if "logprobs" not in columns:  # a cache written before log-probabilities existed: keep its rows
                self._db.execute("ALTER TABLE completions ADD COLUMN logprobs TEXT")
        except sqlite3.DatabaseError as e:
            raise self._disk_error(e) or LidrError(f"request cache {self.path} is not a readable SQLite file: "
                                                   f"{e}") from e

    def _disk_error(self, e: sqlite3.DatabaseError) -> LidrError | None:
        """A full disk is named as one (SQLite says "database or disk is full", or "disk I/O error" when it
        cannot even create its WAL files), never as a corrupt cache; None when the error is not the device's."""
        code = getattr(e, "sqlite_errorcode", None)
        primary = code & 0xFF if isinstance(code, int) else None
        io_error = primary == sqlite3.SQLITE_IOERR or "disk i/o error" in str(e).lower()
        if primary == sqlite3.SQLITE_FULL or disk_full(e) or (io_error and _nearly_full(self.path.parent)):
            return no_space_error(self.path, f"request cache {self.path}")
        if io_error:
            return LidrError(f"request cache {self.path}: disk I/O error ({e}); check the device it is on")
        return None

    def get_many(self, keys: Iterable[str]) -> dict[str, Completion]:
        keys = list(dict.fromkeys(keys))
        found: dict[str, Completion] = {}
        for i in range(0, len(keys), 500):  # SQLite caps the number of bound parameters
            chunk = keys[i : i + 500]
            rows = self._db.execute(
                "SELECT request_key, text, finish_reason, n_tokens, model, model_revision, logprobs "
                f"FROM completions WHERE request_key IN ({','.join('?' * len(chunk))})",
                chunk,
            )
            for key, text, reason, n_tokens, model, revision, logprobs in rows:
                found[key] = Completion(text, reason, n_tokens, model, revision,
                                        logprobs=_load_logprobs(logprobs), cached=True)
        return found

    def put_many(self, items: Iterable[tuple[str, Completion]]) -> int:
        rows = [
            (k, c.text, c.finish_reason, c.n_tokens, c.model, c.model_revision, _dump_logprobs(c.logprobs))
            for k, c in items
            if c.finish_reason != "error"
        ]
        try:
            with self._db:  # one transaction per batch: a failed one leaves no row of it
                self._db.execute("BEGIN")
                self._db.executemany(
                    "INSERT OR REPLACE INTO completions "
                    "(request_key, text, finish_reason, n_tokens, model, model_revision, logprobs) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)",
                    rows,
                )
        except sqlite3.OperationalError as e:
            error = self._disk_error(e)
            if error is None:
                raise
            raise error from e
        return len(rows)

    def __len__(self) -> int:
        return self._db.execute("SELECT count(*) FROM completions").fetchone()[0]

    def close(self) -> None:
        self._db.close()


def _nearly_full(folder: Path) -> bool:
    """Under 1 MiB free: SQLite's "disk I/O error" there comes from the full device (its WAL and shared-memory
    files cannot grow), not from a failing one."""
    try:
        return shutil.disk_usage(folder).free < (1 << 20)
    except OSError:
        return False


def _dump_logprobs(logprobs: tuple[TokenLogprob, ...] | None) -> str | None:
    if logprobs is None:
        return None
    return json.dumps([[t.token, t.logprob, [list(x) for x in t.top]] for t in logprobs], ensure_ascii=False)


def _load_logprobs(blob: str | None) -> tuple[TokenLogprob, ...] | None:
    if blob is None:
        return None
    return tuple(TokenLogprob(token, logprob, tuple((t, lp) for t, lp in top))
                 for token, logprob, top in json.loads(blob))
