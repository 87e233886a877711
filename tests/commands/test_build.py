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
    assert main(["demo", "--workdir", str(tmp_path), "--no-progress"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "random tiny model" in out and "require_closing_tag: false" in out
    run_dir = tmp_path / "runs" / "demo" / "iter-1"
    assert (tmp_path / "tiny-model" / "config.json").is_file()
    pairs = pl.read_parquet(run_dir / "pairs.parquet")
    assert pairs.height > 0 and set(pairs["direction"]) == {"to_dominant", "from_dominant"}
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


def test_run_folder_recipe_has_no_secret_values(tmp_path, monkeypatch):
    # Accepted options whose values are secrets (a password in the endpoint URL) or names of the variable
    # holding one: the first is redacted in the run folder's recipe.yaml, the second (not a secret) is kept.
    import yaml

    from lidr_data.pipeline import build
    from lidr_data.recipe import load_recipe

    prompts = tmp_path / "p"
    shutil.copytree(ROOT / "lidr_data" / "assets" / "demo-prompts", prompts)
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"name: x\nmodel: m\nbackend: openai\nlanguages: [de]\nprompts: {{source: {prompts}}}\n"
                      "backend_options: {base_url: 'http://me:pw-SECRET-77@127.0.0.1:9/v1', api_key_env: MY_KEY}\n")

    def stop(*a, **k):  # no endpoint is needed: the recipe is written before the first model call
        raise RuntimeError("stop here")

    monkeypatch.setattr(generation, "load_generator", stop)
    with pytest.raises(RuntimeError, match="stop here"):
        build(load_recipe(recipe), workdir=tmp_path / "w", progress=False)
    written = yaml.safe_load((tmp_path / "w" / "runs" / "x" / "iter-1" / "recipe.yaml").read_text())
    assert written["backend_options"] == {"base_url": "http://me:<redacted>@127.0.0.1:9/v1", "api_key_env": "MY_KEY"}
    assert _files_holding(tmp_path / "w", "SECRET") == []


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
