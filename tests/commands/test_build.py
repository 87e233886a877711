"""`lidr build` and `lidr demo` through the CLI, on the tiny model."""

import shutil
from pathlib import Path

import polars as pl
import pytest

import lidr_data.generation as generation
from lidr_data.cli import main

ROOT = Path(__file__).resolve().parents[2]
DEMO = str(ROOT / "recipes" / "demo.yaml")


@pytest.mark.slow
def test_build_with_overrides_prints_a_table_per_stage_and_resumes(tiny_model_dir, tmp_path, capsys, monkeypatch):
    args = ["build", DEMO, "--model", str(tiny_model_dir), "--workdir", str(tmp_path), "--limit", "2",
            "--langs", "es", "de", "--iteration", "2", "--no-progress"]
    assert main(args) == 0
    out = capsys.readouterr().out
    run_dir = tmp_path / "runs" / "demo" / "iter-2"
    assert (run_dir / "pairs.parquet").is_file()
    for stage in ("prompts", "respond", "translate", "pairs", "tag", "filter", "dedup"):
        assert f"│ {stage}" in out
    assert "│ prompts   │       6 │    6 │       0 │" in out  # 2 items x (en, es, de)
    pairs = pl.read_parquet(run_dir / "pairs.parquet")
    assert set(pairs["iteration"]) <= {2} and set(pairs["lang"]) <= {"en", "es", "de"}

    def no_model(*a, **k):
        raise AssertionError("a finished build must not load a model")

    # The build ended by materializing an immutable version into WORKDIR/store/.
    version = tmp_path / "store" / "demo" / "iter-2"
    assert "dataset version:" in out and (version / "manifest.json").is_file()
    assert main(["verify", str(version)]) == 0
    capsys.readouterr()

    monkeypatch.setattr(generation, "load_generator", no_model)
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "respond: done earlier" in out
    assert "is up to date" in " ".join(out.split())

    # Other pairs under the same version name are refused, never silently overwritten.
    pl.read_parquet(run_dir / "pairs.parquet").head(1).write_parquet(run_dir / "pairs.parquet")
    assert main(["materialize", str(run_dir), "--workdir", str(tmp_path)]) == 2
    assert "already exists" in " ".join(capsys.readouterr().err.split())

    # The generations of this run, brought into another recipe name with --responses / --translations.
    other = tmp_path / "other.yaml"
    other.write_text(Path(DEMO).read_text().replace("name: demo", "name: imported"))
    assert main(["build", str(other), "--model", str(tiny_model_dir), "--workdir", str(tmp_path), "--limit", "2",
                 "--langs", "es,de", "--iteration", "2", "--responses", str(run_dir / "responses.parquet"),
                 "--translations", str(run_dir / "translations.parquet"), "--no-progress"]) == 0
    imported = pl.read_parquet(tmp_path / "runs" / "imported" / "iter-2" / "pairs.parquet")
    assert imported["pair_id"].to_list() == pairs["pair_id"].to_list()


@pytest.mark.parametrize(
    ("recipe_text", "extra", "message"),
    [
        ("name: x\nmodel: m\nlanguages: [es]\nprompts: {source: p}\nfilter: {}\n", [], "filter: unknown key"),
        ("name: x\nmodel: m\nlanguages: [es]\nprompts: {source: p}\nfilters: {min_length_ratio: -1}\n", [],
         "filters.min_length_ratio must be > 0"),
        ("name: x\nmodel: m\nlanguages: [es]\nprompts: {source: p}\n", ["--langs", "es", "xx"],
         "command-line override: languages[1]: unknown language code 'xx'"),
        ("name: x\nmodel: m\nlanguages: [es]\nprompts: {source: nowhere}\n", [],
         "prompts.source 'nowhere' is no folder here, and loading it as a Hub dataset failed"),
    ],
)
def test_bad_input_is_a_one_line_error(tmp_path, capsys, recipe_text, extra, message):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(recipe_text)
    monkey_dir = tmp_path / "w"
    code = main(["build", str(recipe), "--workdir", str(monkey_dir), "--no-progress", *extra])
    err = capsys.readouterr().err
    assert code == 2 and message in " ".join(err.split()) and "Traceback" not in err


def test_malformed_prompt_line_stops_before_any_generation(tmp_path, capsys):
    prompts = tmp_path / "p"
    shutil.copytree(ROOT / "lidr_data" / "assets" / "demo-prompts", prompts)
    with (prompts / "de.jsonl").open("a") as f:
        f.write('{"id": "demo-10", "instruction": "Hallo\n')
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"name: x\nmodel: /nonexistent-model\nlanguages: [de]\nprompts: {{source: {prompts}}}\n")
    assert main(["build", str(recipe), "--workdir", str(tmp_path / "w"), "--no-progress"]) == 2
    assert "de.jsonl:11: malformed JSON" in " ".join(capsys.readouterr().err.split())


@pytest.mark.slow
def test_demo_runs_offline_and_says_the_model_is_random(tmp_path, capsys):
    from transformers.utils import logging as hf_logging

    hf_logging.enable_progress_bar()  # as in a fresh process (another test may have switched them off)
    assert main(["demo", "--workdir", str(tmp_path)]) == 0
    captured = capsys.readouterr()
    out = " ".join(captured.out.split())
    assert "random tiny model" in out and "require_closing_tag: false" in out
    # transformers' own bars ("Writing model shards", "Loading weights") stay out of the demo's output
    assert "Loading weights" not in captured.err + captured.out and "model shards" not in captured.err
    run_dir = tmp_path / "runs" / "demo" / "iter-1"
    assert (tmp_path / "tiny-model" / "config.json").is_file()
    pairs = pl.read_parquet(run_dir / "pairs.parquet")
    assert pairs.height > 0 and set(pairs["direction"]) == {"to_dominant", "from_dominant"}
    assert "of the kept pairs" in out and "rejected:" in out  # it ends with a few pairs
    assert main(["demo", "--workdir", str(tmp_path), "--no-progress"]) == 0
    assert "dedup: done earlier" in capsys.readouterr().out


def _files_holding(folder: Path, needle: str) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file() and needle.encode() in p.read_bytes()]


def test_refused_recipe_writes_nothing_and_no_secret(tmp_path, capsys):
    # A key put where it does not belong: refused before the run folder (and its recipe.yaml) exists.
    prompts = tmp_path / "p"
    shutil.copytree(ROOT / "lidr_data" / "assets" / "demo-prompts", prompts)
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"name: x\nmodel: /nonexistent-model\nlanguages: [de]\nprompts: {{source: {prompts}}}\n"
                      "backend_options: {api_key: sk-SECRET-4242, batch_size: 2}\n")
    work = tmp_path / "w"
    assert main(["build", str(recipe), "--workdir", str(work), "--no-progress"]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "backend_options: unknown option(s) api_key for backend 'transformers'" in err
    assert "sk-SECRET-4242" not in err
    assert not work.exists()


def test_run_folder_recipe_has_no_secret_values(tmp_path):
    # Accepted options whose values are secrets (a password in the endpoint URL) or names of the variable
    # holding one: the first is redacted in the run folder's recipe.yaml, the second (not a secret) is kept.
    import yaml

    from lidr_data.build.pipeline import build
    from lidr_data.build.recipe import load_recipe

    prompts = tmp_path / "p"
    shutil.copytree(ROOT / "lidr_data" / "assets" / "demo-prompts", prompts)
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"name: x\nmodel: m\nbackend: openai\nlanguages: [de]\nprompts: {{source: {prompts}}}\n"
                      "backend_options: {base_url: 'http://me:pw-SECRET-77@127.0.0.1:9/v1', api_key_env: MY_KEY}\n")

    def stop(*a, **k):  # no endpoint is needed: the recipe is written before the first model call
        raise RuntimeError("stop here")

    with pytest.raises(RuntimeError, match="stop here"):
        build(load_recipe(recipe), workdir=tmp_path / "w", load_generator=stop)
    written = yaml.safe_load((tmp_path / "w" / "runs" / "x" / "iter-1" / "recipe.yaml").read_text())
    assert written["backend_options"] == {"base_url": "http://<redacted>@127.0.0.1:9/v1", "api_key_env": "MY_KEY"}
    assert _files_holding(tmp_path / "w", "SECRET") == []


# Every form a secret took on its way into recipe.yaml, manifest.json, the card and the Hub (issue 20): names
# detected only by their words (hubtoken, accesstoken, hf_read), values detected only by their shape (a Bearer
# header, a token as URL user, a password with a slash), under train:, eval: and other sections.
SECRET_TRAIN = {
    "hubtoken": "plainSECRETa1", "accesstoken": "plainSECRETa2", "hf_read": "plainSECRETa3",
    "Client-Secret": "plainSECRETa4", "apiKey": "plainSECRETa5", "HUB_TOKEN": "plainSECRETa6",
    "headers": "Authorization: Bearer sk-SECRETb1abcdefghijklmnop", "mirror": "https://hf_SECRETb2@hub.example/x",
    "endpoint": "https://u:pa/ssSECRETb3@host.example/v1", "note": "hf_SECRETb4abcdefghijklmnopqrstuvw",
    # not secrets: kept as they are
    "max_tokens": 5, "top_logprobs": 3, "tokenizer": "tok-name", "pad_token": "<pad>",
}
SECRET_EVAL = {"winrate": {"judge_base_url": "http://me:SECRETc1@127.0.0.1:9/v1",
                           "backend_option": ["api_key=SECRETc2", "base_url=https://SECRETc3@h.example/v1"]},
               "mgsm": {"token": "plainSECRETc4", "headers": ["Basic dXNlcjpTRUNSRVRjNQ=="], "limit": 2}}


def _secret_hits(where: str, data: bytes) -> list[str]:
    # "SECRET" is in every secret above; the Basic credential is base64 of "user:SECRETc5".
    return [where] if b"SECRET" in data or b"dXNlcjpTRUNSRVRjNQ" in data else []


@pytest.mark.slow
def test_secrets_in_every_form_reach_no_file_no_output_and_not_the_hub(tiny_model_dir, tmp_path, capsys):
    """build (tiny model) -> materialize -> publish to the loopback Hub: every file under the work folder (run
    folder, store, cache), everything the Hub received and everything printed is free of every secret."""
    import json
    import os
    import subprocess
    import sys

    import yaml
    from servers.hub_server import HubServer

    recipe = yaml.safe_load(Path(DEMO).read_text())
    recipe.update(train=SECRET_TRAIN, eval=SECRET_EVAL)
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(recipe))
    work = tmp_path / "w"
    assert main(["build", str(path), "--model", str(tiny_model_dir), "--workdir", str(work), "--limit", "2",
                 "--langs", "es", "--no-progress"]) == 0
    printed = capsys.readouterr()
    version = work / "store" / "demo" / "iter-1"
    manifest = json.loads((version / "manifest.json").read_text())
    # Redacted where they were, and nothing else changed.
    assert manifest["recipe"]["train"] == {
        "hubtoken": "<redacted>", "accesstoken": "<redacted>", "hf_read": "<redacted>", "Client-Secret": "<redacted>",
        "apiKey": "<redacted>", "HUB_TOKEN": "<redacted>", "headers": "Authorization: <redacted>",
        "mirror": "https://<redacted>@hub.example/x", "endpoint": "https://<redacted>@host.example/v1",
        "note": "<redacted>", "max_tokens": 5, "top_logprobs": 3, "tokenizer": "tok-name", "pad_token": "<pad>"}
    assert manifest["recipe"]["eval"]["winrate"]["backend_option"] == [
        "api_key=<redacted>", "base_url=https://<redacted>@h.example/v1"]
    assert main(["verify", str(version)]) == 0

    token = "hf_TestTokenDoNotLeak0123456789"
    with HubServer(token=token) as hub:
        env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")}
        env.update(HF_ENDPOINT=hub.url, HF_HOME=str(tmp_path / "hf-home"), HF_TOKEN=token, HF_HUB_DISABLE_XET="1")
        out = subprocess.run([sys.executable, "-m", "lidr_data.cli", "publish", str(version), "--to", "acme/x"],
                             capture_output=True, text=True, env=env, timeout=300)
        assert out.returncode == 0, out.stderr
        received = [(f"hub:{rel}", data) for commit in hub.repos["acme/x"].commits
                    for rel, data in commit["files"].items()]
        received += [(f"hub-lfs:{oid}", data) for oid, data in hub.lfs.items()]
        received += [("hub:validate-yaml", text.encode()) for text in hub.validated]
        received += [("hub:requests", repr(hub.requests).encode())]
    card = dict(received)["hub:README.md"].decode()
    assert "hubtoken: <redacted>" in card and "max_tokens: 5" in card  # the card shows the recipe, redacted
    written = [(str(p), p.read_bytes()) for p in work.rglob("*") if p.is_file()]
    outputs = [("build stdout", printed.out.encode()), ("build stderr", printed.err.encode()),
               ("publish output", (out.stdout + out.stderr).encode())]
    assert len(written) > 20  # the run folder, its cache and the version: all of it read
    leaks = [hit for where, data in [*written, *received, *outputs] for hit in _secret_hits(where, data)]
    assert leaks == []


@pytest.mark.parametrize(("option", "secret"), [
    ("backend: openai\nbackend_options: {base_url: 'http://me:pa/ssSECRETd1@127.0.0.1:9/v1'}\n", "ssSECRETd1"),
    ("backend: openai\nbackend_options: {base_url: 'http://hf_SECRETd2@127.0.0.1:9/v1'}\n", "SECRETd2"),
])
def test_endpoint_passwords_are_not_echoed_or_written(tmp_path, capsys, option, secret):
    prompts = tmp_path / "p"
    shutil.copytree(ROOT / "lidr_data" / "assets" / "demo-prompts", prompts)
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"name: x\nmodel: m\nlanguages: [de]\nprompts: {{source: {prompts}}}\n{option}")
    work = tmp_path / "w"
    assert main(["build", str(recipe), "--workdir", str(work), "--no-progress"]) == 2
    printed = capsys.readouterr()
    err = " ".join(printed.err.split())
    assert "cannot reach the OpenAI-compatible endpoint http://<redacted>@127.0.0.1:9/v1" in err
    assert secret not in printed.out + printed.err and _files_holding(work, "SECRET") == []


def test_a_prompt_source_password_is_not_echoed(tmp_path, capsys):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("name: x\nmodel: m\nlanguages: [de]\n"
                      "prompts: {source: 'https://me:pa/ssSECRETe1@127.0.0.1:9/prompts'}\n")
    assert main(["build", str(recipe), "--workdir", str(tmp_path / "w"), "--no-progress"]) == 2
    printed = capsys.readouterr()
    assert "prompts.source 'https://<redacted>@127.0.0.1:9/prompts' is no folder here" in " ".join(printed.err.split())
    assert "SECRET" not in printed.out + printed.err
    assert not (tmp_path / "w").exists() or _files_holding(tmp_path / "w", "SECRET") == []


BASE_RECIPE = "name: x\nmodel: /nonexistent-model\nlanguages: [de]\nprompts: {source: lidr:assets/demo-prompts}\n"


@pytest.mark.parametrize(("text", "message"), [
    (BASE_RECIPE + "generation: {temperature: .nan}\n",
     "r.yaml:5: generation.temperature: .nan is not a finite number"),
    (BASE_RECIPE + "generation:\n  temperature: 0.1\n  max_new_tokens: 8\n  temperature: 0.2\n",
     "r.yaml:8: generation.temperature: duplicate key (first at line 6)"),
    (BASE_RECIPE.replace("name: x", "name: données-ü"), "r.yaml: name: required; letters, digits"),
    (BASE_RECIPE + "generation:\n  system_prompt: " + "x" * 10 * 2**20 + "\n",
     "r.yaml:6: generation.system_prompt: a text of 10,485,760 characters; at most 65,536 are accepted"),
])
def test_recipe_refusals_are_one_line_before_any_model_load(tmp_path, capsys, monkeypatch, text, message):
    def no_model(*a, **k):
        raise AssertionError("a refused recipe must not load a model")

    monkeypatch.setattr(generation, "load_generator", no_model)
    recipe = tmp_path / "r.yaml"
    recipe.write_text(text, encoding="utf-8")
    work = tmp_path / "w"
    assert main(["build", str(recipe), "--workdir", str(work), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert message in err and str(recipe) in err
    assert not work.exists()


def test_yaml_alias_bomb_under_train_is_refused_at_once(tmp_path):
    """Before: `lidr build` grew by 22 MB/s in Recipe.to_dict. Run in a child process so that a regression fails
    this test by its timeout instead of taking the suite's memory."""
    import subprocess
    import sys

    levels = "".join(f"  {c}: &{c} [{', '.join([f'*{p}'] * 9) if p else ', '.join(['lol'] * 9)}]\n"
                     for p, c in zip(["", *"abcdefgh"], "abcdefghi"))
    recipe = tmp_path / "r.yaml"
    recipe.write_text(BASE_RECIPE + "train:\n" + levels)
    out = subprocess.run([sys.executable, "-m", "lidr_data.cli", "build", str(recipe), "--workdir",
                          str(tmp_path / "w"), "--no-progress"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2, out.stderr[-2000:]
    assert " ".join(out.stderr.split()).startswith(f"error: {recipe}:13: train.i[0]: YAML aliases expand the file")
    assert not (tmp_path / "w").exists()


@pytest.mark.slow
def test_build_that_keeps_no_pair_writes_no_version_unless_allowed(tiny_model_dir, tmp_path, capsys):
    import yaml

    recipe = yaml.safe_load(Path(DEMO).read_text())
    recipe["filters"] = {"truncated": False, "wrong_language": False, "length_ratio": True,
                         "min_length_ratio": 1000.0, "max_length_ratio": 1001.0}  # no pair passes
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(recipe))
    args = ["build", str(path), "--model", str(tiny_model_dir), "--workdir", str(tmp_path / "w"), "--limit", "2",
            "--langs", "es", "--no-progress"]
    assert main(args) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "no pairs to materialize (every row was dropped: filter/length_ratio" in err and "--allow-empty" in err
    assert not (tmp_path / "w" / "store" / "demo" / "iter-1").exists()
    assert main([*args, "--allow-empty"]) == 0
    assert main(["verify", str(tmp_path / "w" / "store" / "demo" / "iter-1")]) == 0


def readme_commands(section: str) -> list[list[str]]:
    """The `lidr ...` lines of the README's code blocks under `section` (comments and [optional] parts removed)."""
    import re
    import shlex

    text = (ROOT / "README.md").read_text(encoding="utf-8")
    body = text.split(section, 1)[1].split("\n### ", 1)[0]
    lines = []
    for block in re.findall(r"```bash\n(.*?)```", body, flags=re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = re.sub(r"\s+#\s.*$", "", re.sub(r"\[[^\]\"]*\]", "", line)).strip()
            for part in line.split("&&"):
                if part.strip().startswith("lidr "):
                    lines.append(shlex.split(part)[1:])
    return lines


@pytest.mark.slow
def test_readme_build_lines_for_the_demo_recipe_run_in_order(tmp_path, capsys, monkeypatch):
    """Issue 20: `lidr build recipes/demo.yaml` then the README's next line (`--limit 4 --langs es,de`) failed
    ("version ... exists and was built from other pairs"). The README's demo-recipe build lines run in the order
    written, each making its own version."""
    lines = [c for c in readme_commands("### Building a dataset") if c[:2] == ["build", "recipes/demo.yaml"]
             and "--executor" not in c]
    assert len(lines) >= 2 and lines[0] == ["build", "recipes/demo.yaml"]
    monkeypatch.chdir(tmp_path)
    (tmp_path / "recipes").symlink_to(ROOT / "recipes")
    for args in lines:
        capsys.readouterr()
        assert main([*args, "--no-progress"]) == 0, (args, capsys.readouterr().err)
        assert "dataset version:" in " ".join(capsys.readouterr().out.split()), args
    store = tmp_path / "lidr-demo" / "store" / "demo"
    assert sorted(p.name for p in store.iterdir() if p.is_dir()) == ["es-de-4", "iter-1"]


@pytest.mark.slow
def test_readme_usage_lines_run_in_order(tmp_path, capsys, monkeypatch):
    """The README's first example: a tiny model, then `lidr generate` on a prompts file lidr ships."""
    usage = [c for c in readme_commands("## Usage") if c[0] in ("tiny-model", "generate")]
    assert [c[0] for c in usage] == ["tiny-model", "generate"]
    monkeypatch.chdir(tmp_path)
    for args in usage:
        assert main([*args, *(["--no-progress", "--max-new-tokens", "4"] if args[0] == "generate" else [])]) == 0
    assert pl.read_parquet(tmp_path / "completions.parquet").height == 4


@pytest.mark.slow
def test_readme_examples_run_on_the_version_the_demo_makes(tmp_path, capsys, monkeypatch):
    setup = [c for c in readme_commands("## Set-up") if c[0] == "demo"]
    assert setup == [["demo", "--real", "--workdir", "demo-run"]]
    # The set-up command as written, with the tiny model and its recipe (under the real demo's name) in place of
    # SmolLM2: this test is about the README's examples on the version at the path that command makes (the real
    # model runs end to end in tests/test_real_model_e2e.py).
    import yaml

    from lidr_data.commands import demo

    recipe = yaml.safe_load((ROOT / "recipes" / "demo.yaml").read_text())
    recipe["name"] = yaml.safe_load((ROOT / "lidr_data" / "assets" / "smol-demo.yaml").read_text())["name"]
    (tmp_path / "tiny-demo.yaml").write_text(yaml.safe_dump(recipe))
    monkeypatch.setattr(demo, "REAL_RECIPE", str(tmp_path / "tiny-demo.yaml"))
    monkeypatch.setattr(demo, "real_model", lambda folder, console, show_progress: "lidr:tiny-model")
    monkeypatch.chdir(tmp_path)
    assert main([*setup[0], "--no-progress"]) == 0
    examples = readme_commands("### Versions, the Hub, SQL")
    local = [c for c in examples if not any("my-org/" in a for a in c)]
    assert len(local) >= 5 and all(any(a.startswith("demo-run/store/smol-demo") for a in c) for c in local)
    for args in local:
        capsys.readouterr()
        assert main(args) == 0, args
        assert "Traceback" not in capsys.readouterr().err
    assert (tmp_path / "report.html").is_file()
    # git ignores what the demo wrote in a checkout
    import subprocess

    ignored = subprocess.run(["git", "-C", str(ROOT), "check-ignore", "demo-run/store", "lidr-demo/runs",
                              "lidr-work/store", "eval-results/x", "x/.lidr-cache/requests.sqlite",
                              "models/smollm2-135m-instruct", "smol-work/runs", "smol-loop/store"],
                             capture_output=True, text=True).stdout.split()
    assert len(ignored) == 8, ignored


def test_help_lists_only_commands_that_exist(capsys):
    from lidr_data.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    with pytest.raises(SystemExit):
        main(["--help"])
    listed = [line.split()[0] for line in capsys.readouterr().out.splitlines()
              if line.startswith("    ") and not line.startswith("     ")]
    assert listed and set(listed) == set(sub.choices)
    for name in listed:  # argparse exits after --help; `lidr train` prints TRL's parser's help and returns
        try:
            code = main([name, "--help"])
        except SystemExit as exit_:
            code = exit_.code
        assert code == 0, name
    # Every `lidr X` the README shows is a command.
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    import re

    mentioned = set(re.findall(r"`lidr ([a-z][a-z-]*)", text)) | set(re.findall(r"(?m)^lidr ([a-z][a-z-]*)", text))
    assert mentioned and mentioned <= set(sub.choices), mentioned - set(sub.choices)


def _jsonl(path: Path, rows: list[dict]) -> Path:
    import json

    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def test_import_flags_map_fields_set_markers_and_attribute_answers(tiny_model_dir, tmp_path, capsys):
    """A converted authors' file keeps their "Translation Error": it must never be published as an answer."""
    answers = _jsonl(tmp_path / "answers.jsonl", [
        {"id": "demo-0", "response": "Sleep at regular hours, keep the room dark and avoid late coffee."},
        {"id": "demo-1", "response": "Air scatters blue light more than red light. So the sky looks blue."}])
    to_es = _jsonl(tmp_path / "to_es.jsonl", [
        {"id": "demo-0", "en2es": "Translation Error"},
        {"id": "demo-1", "en2es": "El aire dispersa más la luz azul que la roja. Por eso el cielo se ve azul."}])
    base = ["build", DEMO, "--model", str(tiny_model_dir), "--limit", "2", "--langs", "es", "--no-progress"]
    assert main([*base, "--workdir", str(tmp_path / "a"),
                 "--responses", str(answers), "lang=en", "id_field=id", "text_field=response",
                 "model=meta-llama/Meta-Llama-3-8B-Instruct",
                 "--translations", str(to_es), "src_lang=en", "tgt_lang=es", "id_field=id", "text_field=en2es"]) == 0
    run_dir = tmp_path / "a" / "runs" / "demo" / "iter-1"
    pairs, dropped = pl.read_parquet(run_dir / "pairs.parquet"), pl.read_parquet(run_dir / "dropped.parquet")
    chosen = [c[0]["content"] for c in pairs["chosen"].to_list()]
    sides = chosen + [r[0]["content"] for r in pairs["rejected"].to_list()]
    assert "Translation Error" not in sides
    failed = dropped.filter(pl.col("reason") == "translation_failed")
    assert failed.select("prompt_id", "direction").rows() == [("demo-0", "from_dominant")]
    assert "El aire dispersa" in " ".join(chosen)
    # The imported English answers are chosen sides: attributed to the model named on the command line.
    assert set(pairs["generator_model"]) == {"meta-llama/Meta-Llama-3-8B-Instruct"}
    assert set(pairs["generator_revision"]) == {"imported"}
    capsys.readouterr()

    # A marker of one's own; answers with no model named are attributed to their file, not to the recipe's model.
    _jsonl(to_es, [{"id": "demo-0", "en2es": "<<failed>>"}, {"id": "demo-1", "en2es": "Hola."}])
    imports = tmp_path / "imports.yaml"
    imports.write_text(f"imports:\n  responses:\n    - {{path: {answers}, lang: en, id_field: id, "
                       f"text_field: response}}\n")
    base = [a for a in base if a != "--no-progress"]  # progress on: stdout must still hold only the JSON table
    assert main([*base, "--workdir", str(tmp_path / "b"), "--imports", str(imports),
                 "--translations", str(to_es), "src_lang=en", "tgt_lang=es", "id_field=id", "text_field=en2es",
                 "failure_markers=<<failed>>", "--format", "json"]) == 0
    import json

    stages = json.loads(capsys.readouterr().out)
    assert [s["stage"] for s in stages] == ["prompts", "respond", "translate", "pairs", "tag", "filter", "dedup"]
    assert stages[-2]["dropped_by_reason"] == "translation_failed 1"
    run_dir = tmp_path / "b" / "runs" / "demo" / "iter-1"
    translations = pl.read_parquet(run_dir / "translations.parquet").filter(pl.col("src_lang") == "en")
    assert translations.sort("prompt_id")["ok"].to_list() == [False, True]
    assert set(pl.read_parquet(run_dir / "pairs.parquet")["generator_model"]) == {"imported:answers.jsonl"}
    manifest = (tmp_path / "b" / "store" / "demo" / "iter-1" / "manifest.json").read_text()
    assert '"model": "imported:answers.jsonl"' in manifest
    assert '"license": "apache-2.0"' in manifest  # the recipe's `license:` reaches the card and manifest


@pytest.mark.parametrize(("extra", "message"), [
    (["--responses", "a.jsonl", "lang"], "--responses a.jsonl: 'lang' is not KEY=VALUE"),
    (["--responses", "a.jsonl", "colour=red"], "--responses a.jsonl.colour: unknown key"),
    (["--translations", "t.jsonl", "src_lang=xx"], "src_lang: unknown language code 'xx'"),
    (["--imports", "nowhere.yaml"], "--imports nowhere.yaml: file not found"),
])
def test_bad_import_flags_are_one_line_errors(tmp_path, capsys, monkeypatch, extra, message):
    monkeypatch.chdir(tmp_path)
    assert main(["build", DEMO, "--workdir", str(tmp_path / "w"), "--no-progress", *extra]) == 2
    err = capsys.readouterr().err
    assert message in " ".join(err.split()) and "Traceback" not in err


def test_import_flag_values_are_read_like_the_recipe():
    from lidr_data.build.recipe import import_specs

    (spec,) = import_specs("translations", [["t.jsonl", "src_lang=no", "tgt_lang=en", "text-field=out",
                                             "failure_markers=[Translation Error, '<none>']"]])
    assert (spec.src_lang, spec.tgt_lang, spec.text_field) == ("no", "en", "out")  # Norwegian, not false
    assert spec.failure_markers == ["Translation Error", "<none>"]
    (spec,) = import_specs("responses", [["a.jsonl", "failure_markers=Error: no output"]])
    assert spec.failure_markers == ["Error: no output"] and spec.model is None


def test_a_build_while_another_holds_the_run_folder_exits_at_once(tiny_model_dir, tmp_path, capsys):
    from test_locks import start_holder

    run_dir = tmp_path / "runs" / "demo" / "iter-1"
    holder = start_holder(run_dir, 60)
    try:
        code = main(["build", DEMO, "--model", str(tiny_model_dir), "--workdir", str(tmp_path), "--limit", "2",
                     "--langs", "es", "--no-progress"])
        err = " ".join(capsys.readouterr().err.split())
    finally:
        holder.kill()
        holder.wait()
    assert code == 2 and f"another build (pid {holder.pid}) holds {run_dir}" in err
    assert sorted(p.name for p in run_dir.iterdir()) == [".lock"]  # nothing generated, nothing written


@pytest.mark.slow
def test_two_concurrent_builds_of_one_recipe_and_workdir(tiny_model_dir, tmp_path, capsys):
    """Issue 10: both used to generate everything, then one failed or silently replaced the other's version."""
    import subprocess
    import sys

    from lidr_data.dataset.layout import content_id, read_manifest

    args = [sys.executable, "-m", "lidr_data.cli", "build", DEMO, "--model", str(tiny_model_dir), "--workdir",
            str(tmp_path), "--limit", "2", "--langs", "es", "--no-progress"]
    procs = [subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [(p.wait(timeout=600), p.stdout.read(), p.stderr.read()) for p in procs]
    codes = sorted(code for code, _, _ in results)
    assert codes in ([0, 0], [0, 2]), results
    # [0, 2]: they overlapped and the second stopped at once; [0, 0]: the second started after the first had
    # finished and found the version up to date. Never both generating, never a replaced version.
    for code, _, err in results:
        if code == 2:
            assert "another build (pid" in " ".join(err.split()) and "Traceback" not in err
    version = tmp_path / "store" / "demo" / "iter-1"
    assert main(["verify", str(version)]) == 0
    index = (tmp_path / "store" / "demo" / "index.jsonl").read_text().splitlines()
    assert len(index) == 1 and content_id(read_manifest(version)) in index[0]  # made once, never replaced
    capsys.readouterr()
    assert main(["build", DEMO, "--model", str(tiny_model_dir), "--workdir", str(tmp_path), "--limit", "2",
                 "--langs", "es", "--no-progress"]) == 0  # no --force needed afterwards
    assert "is up to date" in " ".join(capsys.readouterr().out.split())
