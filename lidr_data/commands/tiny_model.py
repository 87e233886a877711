"""`lidr tiny-model DIR`: build the tiny random offline chat model."""

from __future__ import annotations

import argparse

from lidr_data.commands.render import make_console
from lidr_data.extras import quiet_transformers, require
from lidr_data.tiny_model import build_tiny_model


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "tiny-model",
        help="build a tiny random chat model offline (for tests, the demo and smoke tests)",
        description="Build, in seconds and with no network, a tiny random Llama chat model with a byte-level BPE "
        "tokenizer and chat template. Its output is noise; use it to check that an install works.",
    )
    p.add_argument("dir", help="output folder (loadable with AutoTokenizer / AutoModelForCausalLM)")
    p.add_argument("--hidden-size", type=int, default=128)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    require("torch", "tokenizers", "transformers", purpose="building the tiny model")
    quiet_transformers()
    out = build_tiny_model(args.dir, hidden_size=args.hidden_size, num_layers=args.layers, seed=args.seed)
    make_console().print(f"tiny random chat model written to [bold]{out}[/] (its output is noise)")
    return 0
