"""Options several commands share (not a command: a helper beside them, like render.py): the build's own options
(`lidr build`, `lidr demo`) and where generation runs (`lidr build`, `lidr generate`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from lidr_data.commands.render import add_format_argument
from lidr_data.errors import LidrError
from lidr_data.extras import require_generation
from lidr_data.generation.ray_executor import RayConfig, ray_loader


def add_build_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--workdir", type=Path, default=None, help="work folder (default: the recipe's `workdir`)")
    p.add_argument("--version", default=None,
                   help="name of the dataset version written to WORKDIR/store/ (default: iter-<N>)")
    p.add_argument("--force", action="store_true", help="replace an existing version of that name")
    p.add_argument("--no-materialize", action="store_true", help="stop at the run folder; write no version")
    p.add_argument("--allow-empty", action="store_true",
                   help="write the version even when every pair was dropped (refused otherwise, exit 2)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    add_format_argument(p, what="table of rows in, kept and dropped per stage (csv/json: on stdout, the rest on "
                        "stderr)")


def add_executor_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("executor", "where generation runs (the request cache stays on this machine)")
    g.add_argument("--executor", choices=("local", "ray"), default="local",
                   help="local: in this process (default); ray: Ray Data actors on a Ray cluster, each holding one "
                   "model (transformers or vllm backend; pip install 'lidr-data[ray]')")
    g.add_argument("--ray-address", default=None, metavar="ADDR",
                   help="the cluster: HOST:PORT printed by `ray start --head`, or auto (default: "
                   "RAY_ADDRESS, else a local Ray instance for this run)")
    g.add_argument("--ray-workers", type=int, default=None, metavar="N",
                   help="actors in the pool (default: as many as the cluster's GPUs, or CPUs, allow)")
    g.add_argument("--ray-gpus-per-worker", type=float, default=None, metavar="G",
                   help="GPUs per actor (default: vllm's tensor_parallel_size; transformers: 1 if the cluster has "
                   "GPUs, else 0)")


def executor_loader(args: argparse.Namespace):
    """The `load_generator` for `--executor` (None: the local default), refusing Ray options without Ray, and
    `--executor ray` without the `[ray]` extra at once (before any stage runs)."""
    ray_options = {"--ray-address": args.ray_address, "--ray-workers": args.ray_workers,
                   "--ray-gpus-per-worker": args.ray_gpus_per_worker}
    if args.executor == "local":
        given = [name for name, value in ray_options.items() if value is not None]
        if given:
            raise LidrError(f"{', '.join(given)} needs --executor ray")
        return None
    require_generation(None, executor="ray")
    return ray_loader(RayConfig(address=args.ray_address, workers=args.ray_workers,
                                num_gpus_per_worker=args.ray_gpus_per_worker))
