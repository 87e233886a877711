"""The run folder has one definition (`lidr_data.build.run_folder`), and materialize reads its recipe through the
Recipe type: a bad field is a one-line error naming the file and the field, never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from lidr_data.build.run_folder import RunPaths
from lidr_data.errors import LidrError
from lidr_data.stages.order import STAGE_NAMES, STAGES


def test_stage_files_are_one_consistent_list():
    assert STAGE_NAMES == ("prompts", "respond", "translate", "pairs", "tag", "filter", "dedup")
    seen: list[str] = []
    for stage in STAGES:
        assert set(stage.inputs) <= set(seen), stage  # a stage reads only what ran before it
        assert stage.rows_from is None or stage.rows_from in stage.inputs
        seen.append(stage.name)
    assert len({s.output for s in STAGES}) == len(STAGES)
    assert RunPaths(Path("r")).pairs == Path("r") / "pairs.parquet"


@pytest.mark.parametrize("field, value, message", [
    ("iteration", "two", r"recipe\.yaml: iteration: expected an integer, got 'two'"),
    ("license", "cc by", r"recipe\.yaml: license: a license id"),
    ("dominant_lang", 7, r"recipe\.yaml: dominant_lang: expected a string, got 7"),
])
def test_materialize_reads_the_recipe_through_its_type(tmp_path: Path, field, value, message):
    from synthetic import make_run

    from lidr_data.build.materialize import materialize

    run = make_run(tmp_path / "runs" / "x" / "iter-1", n_prompts=3, name="x")
    recipe = yaml.safe_load((run / "recipe.yaml").read_text())
    recipe[field] = value
    (run / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    store = tmp_path / "store"
    with pytest.raises(LidrError, match=message):
        materialize(run, store, progress=False)
    assert not store.exists()


def test_malformed_run_files_are_one_line_errors(tmp_path: Path):
    paths = RunPaths(tmp_path)
    paths.recipe.write_text("name: [unclosed\n")
    with pytest.raises(LidrError, match=r"recipe\.yaml:\d+: malformed YAML"):
        paths.read_recipe()
    paths.stats.write_text('[{"stage": "prompts", "kept": 1, "what": 2}]')
    with pytest.raises(LidrError, match=r"stats\.json: malformed stage statistics"):
        paths.read_stats()
