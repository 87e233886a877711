"""File-to-file generation: the library side of `lidr generate`."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from lidr_data.config import resolve_path
from lidr_data.errors import LidrError
from lidr_data.files import atomic_path
from lidr_data.generation.base import Generator, Request, SamplingParams
from lidr_data.generation.cache import RequestCache
from lidr_data.generation.runner import RunStats, run_requests
from lidr_data.progress import Progress
from lidr_data.readers import read_located


def requests_from_records(path: Path, rows: list[tuple[str, dict]],
                          sampling: SamplingParams,
                          system_prompt: str | None) -> tuple[list, list[Request]]:
    ids, requests = [], []
    for where, row in rows:
        if "id" not in row or row["id"] is None:
            raise LidrError(f"{where}: missing field 'id'")
        if row.get("messages") is not None:
            messages = row["messages"]
            if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
                raise LidrError(f"{where}: field 'messages' must be a list of {{role, content}} objects")
        elif row.get("prompt") is not None:
            messages = row["prompt"]
            if not isinstance(messages, str):
                raise LidrError(f"{where}: field 'prompt' must be a string")
        else:
            raise LidrError(f"{where}: needs a 'messages' or a 'prompt' field")
        try:
            requests.append(Request.from_messages(messages, sampling, system_prompt))
        except LidrError as e:
            raise LidrError(f"{where}: {e}") from None
        ids.append(row["id"])
    if len(set(map(str, ids))) != len(ids):
        raise LidrError(f"{path}: duplicate ids")
    return ids, requests


def read_requests(input_path: str | Path, sampling: dict | None = None,
                  system_prompt: str | None = None) -> tuple[list, list[Request]]:
    """(ids, requests) of every row of a prompts file, every row checked: a caller that reads them before
    loading a model reports a bad or missing file at once. `lidr:assets/...` names a file shipped in the package."""
    path = resolve_path(input_path)
    try:
        rows = read_located(path)
    except OSError as e:  # e.g. no permission to read it
        raise LidrError(f"{path}: cannot read ({e.strerror or e})") from None
    if not rows:
        raise LidrError(f"{path}: no rows")
    return requests_from_records(path, rows, SamplingParams(**(sampling or {})), system_prompt)


def write_completions(generator: Generator, ids: list, requests: list[Request], output_path: Path,
                      cache: RequestCache | None, progress: Progress | None = None) -> RunStats:
    """Generate `requests` (those not in `cache`); write the completions table to `output_path` atomically."""
    completions, keys, stats = run_requests(generator, requests, cache, progress=progress)
    table = pl.DataFrame({
        "id": ids,
        "text": [c.text for c in completions],
        "finish_reason": [c.finish_reason for c in completions],
        "n_tokens": [c.n_tokens for c in completions],
        "model": [c.model for c in completions],
        "model_revision": [c.model_revision for c in completions],
        "request_key": keys,
        "error": [c.error for c in completions],
    }, schema_overrides={"error": pl.String})
    with atomic_path(Path(output_path)) as tmp:  # readers never see a half-written file
        table.write_parquet(tmp)
    return stats


def generate_file(generator: Generator, input_path: Path, output_path: Path, cache: RequestCache | None,
                  sampling: dict | None = None, system_prompt: str | None = None,
                  progress: Progress | None = None) -> RunStats:
    """Generate for every row of `input_path`; write the completions table to `output_path` atomically."""
    ids, requests = read_requests(input_path, sampling, system_prompt)
    return write_completions(generator, ids, requests, output_path, cache, progress)
