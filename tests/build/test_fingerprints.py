"""Stage fingerprints are recorded in every run folder's state.json: a change to how a stage's settings are
listed (their order, a section added) would rerun every existing build. These are the fingerprints of the
shipped recipes as the pipeline computed them before the stages declared their own entries (issue 21)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from lidr_data.build import pipeline
from lidr_data.build.recipe import ResponsesImport, TranslationsImport, load_recipe

ROOT = Path(__file__).resolve().parents[2]

RECORDED = {
    "demo.yaml": {"prompts": "44f93471cbbbaeb8", "respond": "ac1ae701f44df799", "translate": "a668e1b8849e6549",
                  "pairs": "64497fd841659734", "tag": "732658e8db2b711c", "filter": "ad18959547b04500",
                  "dedup": "2f17aba94a3a32cc"},
    "paper-llama3-8b.yaml": {"prompts": "636cc6c46b3721a7", "respond": "70f2e05622ca74ee",
                             "translate": "a60aba0ab558b68b", "pairs": "1e34756ee08cdb46", "tag": "b67aa514b68d6d4f",
                             "filter": "e962280297881eb8", "dedup": "ab3991abce028e30"},
    "quickstart.yaml": {"prompts": "fd2e904315914262", "respond": "575bfc86ecac7c54",
                        "translate": "1a2d0ab1359e793f", "pairs": "452af198da8b0e05", "tag": "d0bee57fd8ebc974",
                        "filter": "966ee220a40bc6ce", "dedup": "a3ee8f75ea759f04"},
    "smol.yaml": {"prompts": "9e9731eba908693f", "respond": "9749029f1067c874", "translate": "e7092874a465d0e2",
                  "pairs": "377ccdc100700758", "tag": "f022978527d0135f", "filter": "9cd36be53a10bea9",
                  "dedup": "ca7d4a800b66704e"},
}
WITH_IMPORTS = {"prompts": "44f93471cbbbaeb8", "respond": "4f6144defea39d40", "translate": "571785a697194ccc",
                "pairs": "cb605b122451477b", "tag": "f367e47e09895400", "filter": "2edecc0d0af2299b",
                "dedup": "a3a62df317d52aea"}


def fingerprints(recipe) -> dict[str, str]:
    """Each stage's fingerprint, chained as `Build.run` chains them."""
    fingerprint, out = "", {}
    for name, settings in pipeline.stage_settings(recipe).items():
        fingerprint = pipeline._hash([fingerprint, settings])
        out[name] = fingerprint
    return out


@pytest.mark.parametrize("name", sorted(RECORDED))
def test_shipped_recipes_keep_their_fingerprints(name):
    recipe = dataclasses.replace(load_recipe(ROOT / "recipes" / name), workdir="w")
    assert fingerprints(recipe) == RECORDED[name]


def test_imports_keep_their_fingerprints():
    recipe = load_recipe("lidr:assets/demo.yaml")
    imports = dataclasses.replace(recipe.imports, responses=[ResponsesImport(path="a.jsonl", lang="en")],
                                  translations=[TranslationsImport(path="t.jsonl")])
    assert fingerprints(dataclasses.replace(recipe, imports=imports)) == WITH_IMPORTS
