"""File-to-file generation: the library side of `lidr generate`."""

from __future__ import annotations

from pathlib import Path

import polars as pl

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


def generate_file(generator: Generator, input_path: Path, output_path: Path, cache: RequestCache | None,
                  sampling: dict | None = None, system_prompt: str | None = None,
                  progress: Progress | None = None) -> RunStats:
    """Generate for every row of `input_path`; write the completions table to `output_path` atomically."""
    input_path, output_path = Path(input_path), Path(output_path)
    rows = read_located(input_path)
    if not rows:
        raise LidrError(f"{input_path}: no rows")
    ids, requests = requests_from_records(input_path, rows, SamplingParams(**(sampling or {})), system_prompt)
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
    with atomic_path(output_path) as tmp:  # readers never see a half-written file
        table.write_parquet(tmp)
    return stats
