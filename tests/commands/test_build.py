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

    from lidr_data.dataset.store import content_id, read_manifest

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
