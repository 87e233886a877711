"""`lidr demo`: the whole LIDR flow offline in a minute, on a random tiny model and shipped prompts."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.panel import Panel

from lidr_data.commands.build import (
    add_build_options,
    build_events,
    materialize_and_report,
    quiet_transformers,
    report,
)
from lidr_data.commands.render import generation_bar, messages_to_stderr, output_consoles

DEMO_RECIPE = "lidr:assets/demo.yaml"

NOTICE = (
    "The model is [bold]a random tiny model[/] built on the spot (`lidr tiny-model`): its answers and "
    "translations are noise. The demo shows the machinery (prompts, respond, translate, pairs, tag, filter, "
    "dedup, the run folder, resuming), not data quality. So the checks that judge text are relaxed in its "
    "recipe (recipes/demo.yaml): a translation without its closing tag is accepted "
    "(translation.require_closing_tag: false), and the wrong-language, truncation and length-ratio filters "
    "are off. A real instruct model with every check on: recipes/quickstart.yaml."
)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="run the whole flow offline on a random tiny model (about a minute on a laptop)",
        description="Build LIDR pairs from ten shipped prompts in en/es/de/fr with a random tiny model, offline. "
        "The recipe is recipes/demo.yaml (also shipped in the package); a second run resumes and generates "
        "nothing.",
    )
    add_build_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import dataclasses
    import os

    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the demo never needs the network; say so to the Hub client
    from lidr_data.pipeline import build
    from lidr_data.recipe import load_recipe

    quiet_transformers()  # a tiny model loads in no time; its bars would only clutter the demo's output
    out, console = output_consoles(args.format)
    console.print(Panel(NOTICE, title="lidr demo", border_style="yellow"))
    recipe = load_recipe(DEMO_RECIPE)
    # prompts.limit is `lidr iterate`'s slice size; the demo builds on every shipped item
    recipe = dataclasses.replace(recipe, prompts=dataclasses.replace(recipe.prompts, limit=None))
    with messages_to_stderr(args.format):
        run_dir = build(recipe, workdir=args.workdir, progress=None if args.no_progress else generation_bar,
                        events=build_events(console))
        report(run_dir, console, args.format, out)
        materialize_and_report(run_dir, args, console)
    console.print(f"[yellow]Reminder:[/] the model was random; the recipe relaxed the text checks. Next: "
                  f"`lidr build recipes/quickstart.yaml` with a real model, or "
                  f"`lidr build {Path('recipes/demo.yaml')}` to run this recipe yourself.", soft_wrap=True)
    return 0
