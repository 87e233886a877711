"""`lidr train REF --model M --output DIR [DPOConfig/ModelConfig flags]`: DPO + NLL on a dataset version.

TRL's parser owns every flag of this command (all `DPOConfig` fields), so argparse passes the words through
untouched (`lidr_data.cli` puts a `--` after `train`); `lidr train --help` prints the full list.
"""

from __future__ import annotations

import argparse

from lidr_data.errors import LidrError
from lidr_data.extras import require
from lidr_data.train.dpo import make_parser, parse_args
from lidr_data.train.dpo import run as train


def add_parser(sub) -> None:
    p = sub.add_parser(
        "train", add_help=False,
        help="train a model on a dataset version: DPO + the paper's NLL (TRL), LoRA optional, any DPOConfig flag",
        description="lidr train REF --model M --output DIR [--subset all|LANG] [--beta B] [--nll-weight A] "
                    "[--nll-normalization sequence|token] [--eval-fraction F] [--use_peft] [--config train.yaml] "
                    "[any DPOConfig flag]",
    )
    p.add_argument("words", nargs=argparse.REMAINDER)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    require("trl", "peft", "accelerate", purpose="lidr train")  # trl first: it is what names the [train] extra
    words = [w for w in args.words]
    if words[:1] == ["--"]:
        words = words[1:]
    if any(w in ("-h", "--help") for w in words):
        make_parser().print_help()
        return 0
    try:
        targs, dpo_args, model_args = parse_args(words)
    except SystemExit as e:  # argparse already printed its one-line usage error
        raise LidrError("lidr train: bad arguments (see above; `lidr train --help` lists them)") from e
    train(targs, dpo_args, model_args)
    return 0
