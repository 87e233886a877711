"""The dataset card: README.md of a version, rendered from the Jinja templates in `datacards/`.

The card opens with the Hub's YAML metadata (license, languages, task categories, size category and the `configs`
that `datasets.load_dataset` reads), then says what the data is, how it was made, what is in it and how to use it.
The usage snippets are rendered from the version's real config names and location (a local folder, or the Hub id
and revision once published) and are executed by the tests.
"""

from __future__ import annotations

import json
import re
from importlib import resources
from pathlib import Path

import jinja2
import yaml

from lidr_data.errors import LidrError

TEMPLATE = "README.md.j2"


def check_license(license: str) -> str:
    """A license id as the Hub's card metadata takes it (cc-by-4.0, apache-2.0, other, ...)."""
    if not re.fullmatch(r"[\w.+-]+", str(license)):
        raise LidrError(f"license: a license id such as cc-by-4.0 or apache-2.0, got {license!r}")
    return str(license)


def _template_dir() -> Path:
    # Installed: the `lidr_data.datacards` package (mapped to datacards/ by pyproject). From a source tree whose
    # editable install predates that mapping: the datacards/ folder beside the package.
    try:
        return Path(str(resources.files("lidr_data.datacards")))
    except ModuleNotFoundError:
        return Path(__file__).resolve().parents[2] / "datacards"


def size_category(n: int) -> str:
    """The Hub's `size_categories` bucket for n rows."""
    bounds = [(1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M"),
              (10_000_000, "1M<n<10M"), (100_000_000, "10M<n<100M"), (1_000_000_000, "100M<n<1B")]
    for bound, label in bounds:
        if n < bound:
            return label
    return "n>1B"


def config_rows(manifest: dict, name: str) -> int:
    counts = manifest["counts"]
    if name == "all":
        return counts.get("pairs", 0)
    if name == "dropped":
        return counts.get("dropped", 0)
    return counts.get("by_language", {}).get(name, 0)


def hub_metadata(manifest: dict) -> str:
    """The YAML front matter (between --- lines) the Hub and `datasets` read.

    Only configs with rows are listed: `datasets` cannot load an empty split ("Instruction "train" corresponds
    to no data"), so an empty `dropped` (or, with --allow-empty, `all`) stays in the manifest and on disk for
    `lidr sql`, and out of the card's configs."""
    langs = sorted(c for c in manifest["configs"] if c not in ("all", "dropped"))
    configs = []
    for name in ["all", *langs, "dropped"]:
        if name not in manifest["configs"] or not config_rows(manifest, name):
            continue
        entry = {"config_name": name, "data_files": [{"split": "train", "path": f"data/{name}/*.parquet"}]}
        if name == "all":
            entry["default"] = True
        configs.append(entry)
    meta = {
        "license": manifest.get("license") or "unknown",
        "language": langs or _recipe_languages(manifest),
        "multilinguality": "multilingual" if len(langs) > 1 else "monolingual",
        "task_categories": ["text-generation"],
        "tags": ["dpo", "preference", "synthetic", "lidr", "multilingual"],
        "size_categories": [size_category(manifest["counts"].get("pairs", 0))],
        "pretty_name": f"{manifest['name']} ({manifest['version']})",
        "configs": configs,
    }
    return yaml.safe_dump(meta, sort_keys=False, allow_unicode=True).strip()


def _recipe_languages(manifest: dict) -> list[str]:
    """The languages a version was built for (its pair configs name none when it holds no pairs)."""
    recipe = manifest.get("recipe") or {}
    langs = [manifest.get("dominant_lang"), *(recipe.get("languages") or [])]
    return sorted({c for c in langs if isinstance(c, str) and c})


def render_card(manifest: dict, location: str, revision: str | None = None,
                parent_reference: str | None = None) -> str:
    """Render README.md for a version. `location`: a local folder path or a Hub repo id (then `revision`).
    `parent_reference`: how to name the parent where it differs from the manifest's record (its Hub reference
    once it is published beside this version; the manifest, which is hashed, keeps what the build recorded)."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(_template_dir()),
        undefined=jinja2.StrictUndefined,  # a typo in a template fails the tests instead of printing nothing
        keep_trailing_newline=True,
        autoescape=False,
    )
    langs = sorted(c for c in manifest["configs"] if c not in ("all", "dropped"))
    example = "de" if "de" in langs else next((x for x in langs if x != manifest.get("dominant_lang")), "all")
    is_hub = revision is not None
    reference = f"{location}@{revision}" if is_hub else location  # what `lidr train`/`load_version` take
    recipe_yaml = yaml.safe_dump(manifest.get("recipe") or {}, sort_keys=False, allow_unicode=True).strip()
    return env.get_template(TEMPLATE).render(
        m=manifest,
        metadata=hub_metadata(manifest),
        langs=langs,
        example_config=example,
        location=location,
        revision=revision,
        is_hub=is_hub,
        repo_arg=json.dumps(location),
        rev_kw=f", revision={json.dumps(revision)}" if is_hub else "",
        reference=reference,
        parent_reference=parent_reference,
        ref_arg=json.dumps(reference),
        parquet_glob=lambda config: json.dumps(f"{location}/data/{config}/*.parquet"),
        duckdb_path=(f"hf://datasets/{location}@{revision}" if is_hub else location),
        recipe_yaml=recipe_yaml,
        config_rows=lambda name: config_rows(manifest, name),
        fmt_pct=lambda x: "n/a" if x is None else f"{100 * x:.1f}%",
        fmt_num=lambda x: "n/a" if x is None else f"{x:,.0f}",
        fmt_ratio=lambda x: "n/a" if x is None else f"{x:.2f}",
    )
