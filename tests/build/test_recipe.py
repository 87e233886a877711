"""Recipes: every shipped recipe loads; bad recipes give one LidrError naming the file and the field."""

import typing
from pathlib import Path

import pytest
import yaml

from lidr_data.build.recipe import load_recipe, parse_recipe, with_overrides
from lidr_data.config import ASSETS
from lidr_data.errors import LidrError
from lidr_data.stages.filter import FilterConfig

ROOT = Path(__file__).resolve().parents[2]
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
    from lidr_data.redact import redact_secrets

    got = redact_secrets({
        "api_key": "sk-1", "apiKey": "sk-2", "hf_token": "hf_3", "password": "p", "client_secret": "s",
        "nested": [{"access_token": "t"}], "api_key_env": "OPENAI_API_KEY", "token_env": "sk-not-a-name",
        "max_new_tokens": 512, "author": "me", "base_url": "https://user:pw@host/v1", "empty_token": None,
    })
    assert got == {
        "api_key": "<redacted>", "apiKey": "<redacted>", "hf_token": "<redacted>", "password": "<redacted>",
        "client_secret": "<redacted>", "nested": [{"access_token": "<redacted>"}], "api_key_env": "OPENAI_API_KEY",
        "token_env": "<redacted>", "max_new_tokens": 512, "author": "me", "base_url": "https://<redacted>@host/v1",
        "empty_token": None,
    }


# Secret-looking names however they are written (compound words, case, dashes), and names that are not secrets.
SECRET_NAMES = ["hubtoken", "accesstoken", "hf_read", "HubToken", "hub-token", "HUB_TOKEN", "API_KEY", "apikey",
                "access_key", "aws_secret_access_key", "Credentials", "creds", "auth", "authToken", "passwd",
                "db_password", "oauth", "Authorization", "private_key", "key", "cookie"]
HARMLESS_NAMES = ["max_tokens", "max_new_tokens", "top_logprobs", "tokenizer", "tokenizer_name", "pad_token",
                  "eos_token", "token_type_ids", "key_field", "sort_key", "author", "authors", "hf_home",
                  "id_field", "keyword", "monkey", "tokens_per_second", "temperature"]


@pytest.mark.parametrize("name", SECRET_NAMES)
def test_secret_names_are_redacted_however_written(name):
    from lidr_data.redact import redact_secrets

    assert redact_secrets({"train": {name: "plain-value-1"}}) == {"train": {name: "<redacted>"}}


@pytest.mark.parametrize("name", HARMLESS_NAMES)
def test_harmless_names_are_kept(name):
    from lidr_data.redact import redact_secrets

    assert redact_secrets({"train": {name: "plain-value-1"}}) == {"train": {name: "plain-value-1"}}


# (value, what stays): secrets by the shape of the value, under any name and inside longer texts.
SECRET_VALUES = [
    ("Authorization: Bearer sk-SECRETsecret0123456789", "Authorization: <redacted>"),
    ("Bearer sk-SECRETsecret0123456789", "Bearer <redacted>"),
    ("Basic dXNlcjpTRUNSRVQ=", "Basic <redacted>"),
    ("https://hf_SECRET@hub.example/x", "https://<redacted>@hub.example/x"),
    ("https://u:pa/ss-SECRET@host:8000/v1", "https://<redacted>@host:8000/v1"),
    ("https://u:p@ss-SECRET@host/v1", "https://<redacted>@host/v1"),
    ("see http://me:SECRET@127.0.0.1:9/v1 and more", "see http://<redacted>@127.0.0.1:9/v1 and more"),
    ("hf_SECRETabcdefghijklmnopqrstuvwxyz1234", "<redacted>"),
    ("sk-proj-SECRETabcdefghijklmnop", "<redacted>"),
    ("ghp_SECRETabcdefghijklmnopqrstuvwxyz", "<redacted>"),
    ("-O api_key=SECRET", "-O api_key=<redacted>"),
    ("https://host/v1?token=SECRET&x=1", "https://host/v1?token=<redacted>&x=1"),
]


@pytest.mark.parametrize(("value", "shown"), SECRET_VALUES)
def test_secret_values_are_redacted_by_shape_in_every_section(value, shown):
    from lidr_data.redact import redact_secrets, redact_text

    for section in ("train", "eval", "generation", "backend_options", "prompts", "imports"):
        data = {section: {"setting": value, "items": [{"x": value}]}}
        assert redact_secrets(data) == {section: {"setting": shown, "items": [{"x": shown}]}}
    assert redact_text(shown) == shown  # idempotent: a redacted record stays as it is


@pytest.mark.parametrize("text", [
    "http://localhost:8000/v1", "https://huggingface.co/datasets/org/x", "Basic arithmetic word problems",
    "You are a helpful assistant.", "hf_transfer", "task-0001", "max_tokens=512", "user@example.com",
    "meta-llama/Meta-Llama-3-8B-Instruct", "C:/Users/me@home/x", "'lang' is not KEY=VALUE",
])
def test_ordinary_texts_are_not_redacted(text):
    from lidr_data.redact import redact_text

    assert redact_text(text) == text


def test_error_messages_never_hold_a_secret():
    # Every LidrError message is redacted where it is made, whatever quoted the secret.
    err = LidrError("cannot reach https://u:pa/ss-SECRET@host/v1 (Authorization: Bearer sk-SECRET0123456789abcd)")
    assert "SECRET" not in str(err) and "https://<redacted>@host/v1" in str(err)


BOMB = "".join(f"  {c}: &{c} [{', '.join([f'*{p}'] * 9) if p else ', '.join(['lol'] * 9)}]\n"
               for p, c in zip(["", *"abcdefgh"], "abcdefghi"))


@pytest.mark.parametrize("where", ["train", "eval", "generation"])
def test_yaml_alias_bomb_is_refused_without_expanding(tmp_path, where):
    """A "billion laughs" file (9 levels of 9 aliases: 490 million values) is refused from its node graph alone; before,
    one under train: made Recipe.to_dict expand it until memory ran out."""
    path = write(tmp_path, "name: t\nmodel: m\nlanguages: [es]\nprompts: {source: p}\n" + f"{where}:\n" + BOMB)
    with pytest.raises(LidrError) as err:
        load_recipe(path)
    message = str(err.value)
    assert message.startswith(f"{path}:13: {where}.i[0]: YAML aliases expand the file to 490,329,077 values")
    assert "at most 10,000 more" in message and "\n" not in message


def test_yaml_anchors_for_reuse_are_accepted(tmp_path):
    path = write(tmp_path, "name: t\nmodel: m\nlanguages: [es]\nprompts: {source: p}\n"
                 "eval:\n  mgsm: &common {limit: 4, langs: [en, es]}\n  winrate:\n    <<: *common\n    limit: 8\n")
    assert load_recipe(path).eval == {"mgsm": {"limit": 4, "langs": ["en", "es"]},
                                      "winrate": {"limit": 8, "langs": ["en", "es"]}}


@pytest.mark.parametrize(("text", "message"), [
    ("generation:\n  temperature: .nan\n", ":6: generation.temperature: .nan is not a finite number"),
    ("generation:\n  temperature: -.inf\n", ":6: generation.temperature: -.inf is not a finite number"),
    ("train:\n  beta: 1.0e+999\n", ":6: train.beta: 1.0e+999 is not a finite number"),
    ("generation:\n  temperature: 0.5\n  temperature: 0.7\n",
     ":7: generation.temperature: duplicate key (first at line 6)"),
    ("name: u\n", ":5: name: duplicate key (first at line 1)"),
    ("eval: {mgsm: {limit: 1, limit: 2}}\n", ":5: eval.mgsm.limit: duplicate key (first at line 5)"),
    ("generation:\n  system_prompt: '" + "x" * 70_000 + "'\n",
     ":6: generation.system_prompt: a text of 70,000 characters; at most 65,536 are accepted"),
    ("a: &a [*a]\n", ":5: a YAML alias refers to a block that contains it"),
])
def test_yaml_checks_name_file_line_and_field(tmp_path, text, message):
    path = write(tmp_path, "name: t\nmodel: m\nlanguages: [es]\nprompts: {source: p}\n" + text)
    with pytest.raises(LidrError) as err:
        load_recipe(path)
    assert str(err.value).startswith(f"{path}{message}"), str(err.value)[:300]


def test_non_finite_and_over_long_values_set_in_code_are_refused():
    with pytest.raises(LidrError, match=r"generation.temperature: nan is not a finite number"):
        parse_recipe({**MINIMAL, "generation": {"temperature": float("nan")}})
    with pytest.raises(LidrError, match=r"generation.system_prompt: a text of 70,000 characters"):
        parse_recipe({**MINIMAL, "generation": {"system_prompt": "x" * 70_000}})


def test_json_writers_refuse_nan(tmp_path):
    from lidr_data.dataset.layout import write_manifest
    from lidr_data.files import write_json_atomic

    with pytest.raises(ValueError, match="NaN or infinity"):
        write_json_atomic(tmp_path / "state.json", {"x": float("nan")})
    assert not (tmp_path / "state.json").exists()
    (tmp_path / "v").mkdir()
    with pytest.raises(ValueError):
        write_manifest(tmp_path / "v", {"recipe": {"temperature": float("inf")}})


@pytest.mark.parametrize("name", ["données-ü", ".hidden", "-x", "a..b", "x" * 97, "a b", "ü"])
def test_recipe_name_follows_the_dataset_name_rule(tmp_path, name):
    """One rule: a name the recipe accepts is one materialize accepts (it was refused only after the build)."""
    from lidr_data.dataset.layout import check_name

    with pytest.raises(LidrError):
        check_name(name)
    path = write(tmp_path, {**MINIMAL, "name": name})
    with pytest.raises(LidrError, match=r"r.yaml: name: required; letters, digits"):
        load_recipe(path)
    for ok in ("demo", "x" * 96, "a.b_c-1"):
        assert parse_recipe({**MINIMAL, "name": ok}).name == check_name(ok)


def test_every_yaml_reader_applies_the_same_checks(tmp_path):
    """Recipes, imports files, run folders' recipe.yaml, training configs, iterate's train: file and option values
    all go through readers.parse_yaml: a duplicate key is refused with the file and line everywhere."""
    from lidr_data.build.recipe import import_specs, read_imports_file
    from lidr_data.build.run_folder import RunPaths
    from lidr_data.commands.iterate import check_train
    from lidr_data.generation import parse_backend_options
    from lidr_data.train.dpo import parse_args

    bad = tmp_path / "bad.yaml"
    bad.write_text("responses: []\nresponses: []\n")
    run = tmp_path / "run"
    run.mkdir()
    (run / "recipe.yaml").write_text(bad.read_text())
    for call in (lambda: read_imports_file(bad), lambda: RunPaths(run).read_recipe_data(),
                 lambda: parse_args(["v", "--model", "m", "--output", "o", "--config", str(bad)]),
                 lambda: check_train(str(bad), "r.yaml")):
        with pytest.raises(LidrError, match=r"bad.yaml:2: responses: duplicate key|recipe.yaml:2: responses: dup"):
            call()
    with pytest.raises(LidrError, match=r"backend option x:1: a: duplicate key"):
        parse_backend_options(["x={a: 1, a: 2}"])
    with pytest.raises(LidrError, match=r"--responses f.jsonl: failure_markers:1: \[0\].a: duplicate key"):
        import_specs("responses", [["f.jsonl", "failure_markers=[{a: 1, a: 2}]"]])


def test_no_yaml_is_read_around_the_one_loader():
    """`yaml.safe_load`/`yaml.load` appear nowhere but in readers.py: every YAML goes through parse_yaml."""
    import re

    for folder in ("lidr_data", "train", "eval", "datacards"):
        for path in (ROOT / folder).rglob("*.py"):
            if path.name != "readers.py":
                assert not re.search(r"yaml\.(safe_)?load\b|yaml\.(full_|unsafe_)?load\(", path.read_text()), path


def test_recipe_file_encoding_errors_name_line_and_byte_and_bom_crlf_load(tmp_path):
    from lidr_data.build.recipe import load_recipe

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
    """The recipe composes the stage configs; a stage (the prompts stage included) or a shared helper never
    imports the build (recipe, pipeline, run folder: it sits above the stages), and every section's dataclass is
    defined beside its stage."""
    import ast

    import lidr_data
    from lidr_data.build import recipe
    from lidr_data.stages import dedup, filter, respond, tag, translate

    root = Path(lidr_data.__file__).parent
    below = [*sorted((root / "stages").glob("*.py")), root / "config.py", root / "files.py"]
    for path in below:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            assert not [n for n in names if n == "lidr_data.build" or n.startswith("lidr_data.build.")], path
    assert root / "stages" / "prompts.py" in below
    owners = {"generation": respond, "translation": translate, "tag": tag, "filters": filter, "dedup": dedup}
    hints = typing.get_type_hints(recipe.Recipe)
    for section, module in owners.items():
        assert hints[section].__module__ == module.__name__, section
    for cls in (recipe.ResponsesImport, recipe.TranslationsImport):
        assert cls.__module__ in (respond.__name__, translate.__name__)
    # One place per sampling default: the recipe's generation section takes the backends' defaults.
    from lidr_data.generation.base import SamplingParams

    assert recipe.GenerationConfig().sampling() == SamplingParams()


def test_the_real_model_recipes_agree_and_iterate_accepts_smol():
    """`lidr demo --real` (lidr_data/assets/smol-demo.yaml) runs the measured settings of recipes/smol.yaml on the
    shipped prompts: every generation, translation and filter setting must be the same."""
    from lidr_data.commands.iterate import check_eval, check_train

    smol, demo = load_recipe(ROOT / "recipes" / "smol.yaml"), load_recipe("lidr:assets/smol-demo.yaml")
    for section in ("model", "backend", "backend_options", "dominant_lang", "languages", "generation", "translation",
                    "tag", "filters", "dedup"):
        assert getattr(smol, section) == getattr(demo, section), section
    assert smol.translation.stray_closing_tag and smol.translation.require_closing_tag
    assert smol.filters.truncated and smol.filters.wrong_language and smol.filters.length_ratio
    assert smol.prompts.limit and smol.prompts.source == "../shared/data/prompts/alpagasus-0-1000"
    check_train(smol.train, "smol.yaml")
    assert "--data" in check_eval(smol.eval, "smol.yaml")["mgsm"]


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
