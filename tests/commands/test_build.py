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
    assert main([*base, "--workdir", str(tmp_path / "b"), "--imports", str(imports),
                 "--translations", str(to_es), "src_lang=en", "tgt_lang=es", "id_field=id", "text_field=en2es",
                 "failure_markers=<<failed>>"]) == 0
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
