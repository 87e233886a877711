"""`lidr generate`: batch-generate completions for a JSONL/Parquet file of prompts, cached and resumable."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from lidr_data.commands.options import add_executor_options, executor_loader
from lidr_data.commands.render import generation_bar, make_console
from lidr_data.errors import LidrError
from lidr_data.extras import quiet_transformers, require_generation
from lidr_data.generation import BACKENDS, SamplingParams, load_generator, parse_backend_options
from lidr_data.generation.cache import RequestCache
from lidr_data.generation.jobs import read_requests, write_completions


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "generate",
        help="batch-generate completions for a file of prompts (cached, resumable)",
        description="Generate one completion per prompt. Input: JSONL/JSON/Parquet with an `id` and either "
        "`messages` (a list of {role, content}) or `prompt` (a string). Output: Parquet with id, text, "
        "finish_reason, n_tokens, model, model_revision, request_key, error. Finished requests are kept in a "
        "request cache, so a rerun after a crash only generates what is missing. Exit code 1 when some requests "
        "failed (finish_reason = error; they are not cached, so a rerun retries them).",
    )
    p.add_argument("--model", required=True, help="model folder, Hub id, or the endpoint's model name")
    p.add_argument("--backend", default="transformers", choices=BACKENDS)
    p.add_argument("--revision", default=None, help="model revision (Hub commit, tag or branch)")
    p.add_argument("--input", required=True,
                   help="prompts file (.jsonl, .json or .parquet; lidr:assets/... names a file shipped with lidr, "
                   "e.g. lidr:assets/demo-prompts/en.jsonl)")
    p.add_argument("--output", required=True, type=Path, help="completions Parquet file to write")
    p.add_argument("--cache", type=Path, default=None,
                   help="request cache folder (default: .lidr-cache/ beside the output)")
    p.add_argument("--batch-size", type=int, default=None, help="requests per backend call (not part of the cache key)")
    p.add_argument("--max-new-tokens", type=int, default=SamplingParams.max_new_tokens)
    p.add_argument("--temperature", type=float, default=SamplingParams.temperature, help="0 = greedy")
    p.add_argument("--top-p", type=float, default=SamplingParams.top_p)
    p.add_argument("--repetition-penalty", type=float, default=SamplingParams.repetition_penalty)
    p.add_argument("--seed", type=int, default=SamplingParams.seed)
    p.add_argument("--system-prompt", default=None)
    p.add_argument("-O", "--backend-option", action="append", default=[], metavar="KEY=VALUE",
                   help="extra backend option, e.g. -O base_url=http://localhost:8000/v1 -O concurrency=16 "
                   "-O tensor_parallel_size=2")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_executor_options(p)
    p.set_defaults(func=run)


def check_output_file(path: Path, option: str = "--output") -> None:
    """The output file can be written: its folder exists or can be made, and it is not a folder itself (checked
    before a model loads; the file itself is written atomically at the end)."""
    if path.is_dir():
        raise LidrError(f"{option} {path}: is a folder; name the file to write")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise LidrError(f"{option} {path}: cannot create its folder ({e.strerror or e})") from None
    if not os.access(path.parent, os.W_OK | os.X_OK):
        raise LidrError(f"{option} {path}: its folder {path.parent} is not writable")


def run(args: argparse.Namespace) -> int:
    options = parse_backend_options(args.backend_option)
    if args.batch_size is not None:
        options["batch_size"] = args.batch_size
    if args.revision is not None:
        options["revision"] = args.revision
    # Everything that can be checked is, before a model loads: the extras, every input row, the output's folder.
    load = executor_loader(args) or load_generator
    require_generation(args.backend, args.executor)
    if args.backend != "openai":
        quiet_transformers(all_bars=args.no_progress)
    sampling = dict(max_new_tokens=args.max_new_tokens, temperature=args.temperature, top_p=args.top_p,
                    repetition_penalty=args.repetition_penalty, seed=args.seed)
    ids, requests = read_requests(args.input, sampling, args.system_prompt)
    check_output_file(args.output)
    cache = RequestCache(args.cache or args.output.parent / ".lidr-cache")
    try:
        generator = load(args.backend, args.model, **options)
        try:
            stats = write_completions(generator, ids, requests, args.output, cache,
                                      progress=None if args.no_progress else generation_bar)
        finally:
            generator.close()
    finally:
        cache.close()
    console = make_console()
    console.print(
        f"wrote [bold]{args.output}[/]: {stats.requests} rows · generated {stats.generated} · "
        f"cache hits {stats.cache_hits} · errors {stats.errors} · {stats.seconds:.1f}s"
    )
    if stats.errors:
        console.print(f"[yellow]{stats.errors} request(s) failed (finish_reason = error); rerun to retry them[/]")
    return 1 if stats.errors else 0
