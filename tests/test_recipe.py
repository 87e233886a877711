"""Recipes: every shipped recipe loads; bad recipes give one LidrError naming the file and the field."""

import typing
from pathlib import Path

import pytest
import yaml

from lidr_data.errors import LidrError
from lidr_data.recipe import ASSETS, load_recipe, parse_recipe, with_overrides
from lidr_data.stages.filter import FilterConfig

ROOT = Path(__file__).resolve().parents[1]
# Build recipes; `train-*.yaml` are `lidr train --config` files (tested in tests/train/).
SHIPPED = sorted(p for p in (ROOT / "recipes").glob("*.yaml") if not p.name.startswith("train-"))

MINIMAL = {"name": "t", "model": "m", "languages": ["es"], "prompts": {"source": "p"}}


def test_shipped_recipes_are_the_three_expected():
    assert {p.name for p in SHIPPED} >= {"quickstart.yaml", "paper-llama3-8b.yaml", "demo.yaml"}


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_every_shipped_recipe_loads_and_round_trips(path):
    recipe = load_recipe(path)
    assert recipe.name == path.stem
    assert recipe.dominant_lang == "en" and recipe.languages
    assert parse_recipe(yaml.safe_load(recipe.to_yaml())) == recipe  # the resolved recipe reloads identically


def test_paper_recipe_has_the_paper_settings():
    r = load_recipe(ROOT / "recipes" / "paper-llama3-8b.yaml")
    assert r.model == "meta-llama/Meta-Llama-3-8B-Instruct" and r.backend == "vllm"
    assert r.languages == ["es", "ru", "de", "fr"] and r.prompts.limit == 1000
    s = r.generation.sampling()
    assert (s.temperature, s.repetition_penalty, s.max_new_tokens) == (0.0, 1.1, 2400)
    assert r.generation.system_prompt == "You are a helpful assistant."
    assert r.translation.max_new_tokens == 4096 and r.translation.require_closing_tag
    # The authors' code drops only failed translations: no other rule, no dedup.
    assert r.filters.translation_failed and not (r.filters.wrong_language or r.filters.length_ratio)
    assert not (r.dedup.exact or r.dedup.near)


def test_demo_recipe_ships_in_the_package_identical_to_recipes_folder():
    assert (ASSETS / "demo.yaml").read_bytes() == (ROOT / "recipes" / "demo.yaml").read_bytes()
    demo = load_recipe("lidr:assets/demo.yaml")
    assert not demo.translation.require_closing_tag and not demo.filters.wrong_language
    assert demo.filters.translation_failed and demo.filters.empty_side  # only text-judging checks relaxed


def write(tmp_path, data) -> Path:
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(data) if not isinstance(data, str) else data)
    return path


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"modle": "x"}, "modle: unknown key"),
        ({"filters": {"max_length_ratioo": 3}}, "filters.max_length_ratioo: unknown key"),
        ({"prompts": {"source": "p", "idfield": "x"}}, "prompts.idfield: unknown key"),
        ({"filters": {"max_length_ratio": 0.1}}, "filters.max_length_ratio must be > filters.min_length_ratio"),
        ({"filters": {"min_length_ratio": "big"}}, "filters.min_length_ratio: expected a number"),
        ({"dedup": {"threshold": 1.5}}, "dedup.threshold must be a number in (0, 1]"),
        ({"translation": {"max_new_tokens": 0}}, "translation.max_new_tokens: must be >= 1"),
        ({"translation": {"template": "no placeholder"}}, "translation.template: must contain the {text}"),
        ({"generation": {"temperature": -1}}, "generation.temperature must be >= 0"),
        ({"generation": {"max_new_tokens": True}}, "generation.max_new_tokens: expected an integer"),
        ({"languages": ["es", "xx"]}, "languages[1]: unknown language code 'xx'"),
        ({"languages": "es"}, "languages: expected a list"),
        ({"dominant_lang": "EN"}, "dominant_lang: unknown language code 'EN'"),
        ({"imports": {"translations": [{"path": "f", "src_lang": "qq"}]}},
         "imports.translations[0].src_lang: unknown language code 'qq'"),
        ({"prompts": {"source": "p", "limit": 0}}, "prompts.limit: must be >= 1"),
        ({"prompts": {"source": "p", "translation_task_pattern": "(("}}, "prompts.translation_task_pattern"),
        ({"backend": "tgi"}, "backend: must be one of"),
        ({"name": "a/b"}, "name: required; letters, digits"),
        ({"iteration": 0}, "iteration: must be >= 1"),
    ],
)
def test_bad_recipe_names_file_and_field(tmp_path, change, message):
    path = write(tmp_path, {**MINIMAL, **change})
    with pytest.raises(LidrError) as err:
        load_recipe(path)
    assert str(err.value).startswith(f"{path}: ") and message in str(err.value)


def test_missing_required_fields(tmp_path):
    for key in ("name", "model", "prompts"):
        data = {k: v for k, v in MINIMAL.items() if k != key}
        with pytest.raises(LidrError, match=rf"r.yaml: {key}: required"):
            load_recipe(write(tmp_path, data))
    with pytest.raises(LidrError, match=r"prompts.source: required"):
        load_recipe(write(tmp_path, {**MINIMAL, "prompts": {"id_field": "id"}}))


def test_malformed_yaml_names_the_line(tmp_path):
    path = write(tmp_path, "name: t\nmodel: m\nlanguages: [es\nprompts: {source: p}\n")
    with pytest.raises(LidrError, match=r"r.yaml:\d+: malformed YAML"):
        load_recipe(path)
    with pytest.raises(LidrError, match="a recipe is a YAML mapping"):
        load_recipe(write(tmp_path, "- just a list\n"))
    with pytest.raises(LidrError, match="recipe file not found"):
        load_recipe(tmp_path / "missing.yaml")


def test_sections_are_the_stage_dataclasses_and_keep_defaults():
    r = parse_recipe({**MINIMAL, "filters": {"truncated": False, "max_length_ratio": 4}})
    assert isinstance(r.filters, FilterConfig)
    assert r.filters.truncated is False and r.filters.max_length_ratio == 4.0 and r.filters.empty_side is True
    assert r.generation.sampling().repetition_penalty == 1.1 and r.generation.temperature == 0.0


def test_dominant_language_listed_among_languages_is_not_a_target():
    r = parse_recipe({**MINIMAL, "languages": ["en", "es", "de", "es"]})
    assert r.languages == ["es", "de"] and r.all_languages == ["en", "es", "de"]
    with pytest.raises(LidrError, match="languages: needs a language other than dominant_lang"):
        parse_recipe({**MINIMAL, "languages": ["en"]})


def test_overrides_are_validated():
    r = parse_recipe(MINIMAL)
    o = with_overrides(r, model="other", iteration=2, limit=5, languages=["de", "fr"], workdir="/w")
    assert (o.model, o.iteration, o.prompts.limit, o.languages, o.workdir) == ("other", 2, 5, ["de", "fr"], "/w")
    assert r.model == "m"  # the original is unchanged
    with pytest.raises(LidrError, match=r"command-line override: languages\[0\]: unknown language code 'zz'"):
        with_overrides(r, languages=["zz"])
    with pytest.raises(LidrError, match=r"command-line override: limit: must be >= 1"):
        with_overrides(r, limit=0)


def test_translation_template_fills_names_and_leaves_other_braces():
    r = parse_recipe({**MINIMAL, "translation": {"template": "From {source_lang} to {target_lang} {json}: "
                                                             "<{tag}>{text}</{tag}>", "tag": "out"}})
    from lidr_data.stages.translate import translation_request

    got = translation_request(r.translation, "hola {x}", "es", "de")
    assert got == "From Spanish to German {json}: <out>hola {x}</out>"


def test_redact_secrets_by_name_parts_and_in_urls():
    from lidr_data.recipe import redact_secrets

    got = redact_secrets({
        "api_key": "sk-1", "apiKey": "sk-2", "hf_token": "hf_3", "password": "p", "client_secret": "s",
        "nested": [{"access_token": "t"}], "api_key_env": "OPENAI_API_KEY", "token_env": "sk-not-a-name",
        "max_new_tokens": 512, "author": "me", "base_url": "https://user:pw@host/v1", "empty_token": None,
    })
    assert got == {
        "api_key": "<redacted>", "apiKey": "<redacted>", "hf_token": "<redacted>", "password": "<redacted>",
        "client_secret": "<redacted>", "nested": [{"access_token": "<redacted>"}], "api_key_env": "OPENAI_API_KEY",
        "token_env": "<redacted>", "max_new_tokens": 512, "author": "me", "base_url": "https://user:<redacted>@host/v1",
        "empty_token": None,
    }


def test_recipe_file_encoding_errors_name_line_and_byte_and_bom_crlf_load(tmp_path):
    from lidr_data.recipe import load_recipe

    path = tmp_path / "r.yaml"
    path.write_bytes(b"name: x\nmodel: m\nlanguages: [es]\nprompts: {source: caf\xe9}\n")
    with pytest.raises(LidrError) as err:
        load_recipe(path)
    assert str(err.value) == f"{path}:4: not valid UTF-8 (byte 0xe9 at column 22)"
    path.write_bytes(b"\xef\xbb\xbfname: x\r\nmodel: m\r\nlanguages: [es]\r\nprompts: {source: p}\r\n")
    assert load_recipe(path).name == "x"


def test_license_is_a_recipe_field(tmp_path):
    base = "name: x\nmodel: m\nlanguages: [es]\nprompts: {source: p}\n"
    path = tmp_path / "r.yaml"
    path.write_text(base + "license: cc-by-nc-4.0\n")
    recipe = load_recipe(path)
    assert recipe.license == "cc-by-nc-4.0" and "license: cc-by-nc-4.0" in recipe.to_yaml()
    path.write_text(base)
    assert load_recipe(path).license is None
    path.write_text(base + "license: CC BY NC\n")
    with pytest.raises(LidrError, match="license: a license id such as cc-by-4.0"):
        load_recipe(path)


def test_stages_own_their_settings_and_do_not_import_the_recipe():
    """The recipe composes the stage configs; a stage (or the prompt source, or the shared helpers) never
    imports the recipe or the pipeline, and every section's dataclass is defined beside its stage."""
    import ast

    import lidr_data
    from lidr_data import recipe
    from lidr_data.stages import dedup, filter, respond, tag, translate

    root = Path(lidr_data.__file__).parent
    below = [*sorted((root / "stages").glob("*.py")), root / "sources.py", root / "config.py", root / "files.py"]
    for path in below:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            assert not [n for n in names if n in ("lidr_data.recipe", "lidr_data.pipeline")], path
    owners = {"generation": respond, "translation": translate, "tag": tag, "filters": filter, "dedup": dedup}
    hints = typing.get_type_hints(recipe.Recipe)
    for section, module in owners.items():
        assert hints[section].__module__ == module.__name__, section
    for cls in (recipe.ResponsesImport, recipe.TranslationsImport):
        assert cls.__module__ in (respond.__name__, translate.__name__)
    # One place per sampling default: the recipe's generation section takes the backends' defaults.
    from lidr_data.generation.base import SamplingParams

    assert recipe.GenerationConfig().sampling() == SamplingParams()


def test_demo_recipe_says_what_it_sets():
    """Issue 20: the demo recipe's comment spoke of three MGSM problems while its eval: section set `limit: 2`.
    The comment names the limit it sets and the number of problems shipped per language, and both are true."""
    import re

    text = (ROOT / "recipes" / "demo.yaml").read_text(encoding="utf-8")
    comment = " ".join(line.lstrip("# ") for line in text.splitlines() if line.startswith("#"))
    said = re.search(r"MGSM on the first (\w+) \(limit: (\d+)\) of the (\w+) problems per language shipped in "
                     r"(lidr:assets/[\w-]+)", comment)
    assert said, comment
    words = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5}
    mgsm = yaml.safe_load(text)["eval"]["mgsm"]
    assert words[said[1]] == int(said[2]) == mgsm["limit"] and said[4] == mgsm["data"]
    folder = ASSETS / said[4].removeprefix("lidr:assets/")
    for lang in mgsm["langs"]:
        lines = (folder / f"mgsm_{lang}.jsonl").read_text(encoding="utf-8").splitlines()
        assert len([line for line in lines if line.strip()]) == words[said[3]], lang
