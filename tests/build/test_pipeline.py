"""The whole build on the tiny model: run folder, rows identity at every stage, resume, imports, failures."""

import dataclasses
import json
import shutil

import polars as pl
import pyarrow.parquet as pq
import pytest
from counting import CountingGenerator

import lidr_data.generation as generation
from lidr_data.build.pipeline import FEEDS, OUTPUTS, build, read_stats
from lidr_data.build.recipe import TranslationsImport, load_recipe
from lidr_data.errors import LidrError
from lidr_data.schema import PAIR_COLUMNS, TAG_COLUMNS
from lidr_data.stages.order import STAGE_NAMES as STAGES

pytestmark = pytest.mark.slow  # builds on the tiny model: about 45 s for the module on 2 busy cores


class Loads(list):
    """A generator loader for `build(load_generator=...)`: every generator it creates is a real one wrapped to
    count the requests that reach the model, kept in this list."""

    wrapper = CountingGenerator

    def __call__(self, *args, **kwargs):
        self.append(self.wrapper(generation.load_generator(*args, **kwargs)))
        return self[-1]


@pytest.fixture
def loads():
    return Loads()


def demo_recipe(tiny_model_dir, **changes):
    recipe = load_recipe("lidr:assets/demo.yaml")
    return dataclasses.replace(recipe, model=str(tiny_model_dir), **changes)


@pytest.fixture(scope="module")
def first_run(tiny_model_dir, tmp_path_factory):
    """The demo recipe on three items in en + es, de, built once."""
    workdir = tmp_path_factory.mktemp("work")
    run_dir = build(demo_recipe(tiny_model_dir), workdir=workdir, limit=3, langs=["es", "de"], progress=False)
    return workdir, run_dir


def copy_run(first_run, tmp_path):
    workdir, run_dir = first_run
    shutil.copytree(workdir / "runs", tmp_path / "runs")
    return tmp_path, tmp_path / run_dir.relative_to(workdir)


def test_run_folder_tables_and_rows_identity(first_run):
    _, run_dir = first_run
    assert run_dir.parts[-3:] == ("runs", "demo", "iter-1")
    for name in [*OUTPUTS.values(), "dropped.parquet", "stats.json", "recipe.yaml", "cache/requests.sqlite"]:
        assert (run_dir / name).is_file(), name
    stats = {s.stage: s for s in read_stats(run_dir)}
    assert list(stats) == list(STAGES)
    for s in stats.values():
        assert s.rows_in == s.kept + sum(s.dropped.values())
        assert pq.ParquetFile(run_dir / OUTPUTS[s.stage]).metadata.num_rows == s.kept
    for stage, before in FEEDS.items():
        assert stats[stage].rows_in == stats[before].kept
    assert stats["prompts"].kept == 9 and stats["respond"].kept == 9
    assert stats["translate"].rows_in == 3 * 2 + 3 * 2  # 3 items: en -> 2 languages, 2 languages -> en
    assert stats["pairs"].rows_in == 3 * 2 * 2
    # Every drop of every stage is in dropped.parquet with its stage and a reason, matching the stats.
    dropped = pl.read_parquet(run_dir / "dropped.parquet")
    assert dropped.filter(pl.col("reason").is_null() | (pl.col("reason") == "")).height == 0
    counts = {(r["stage"], r["reason"]): r["len"] for r in dropped.group_by("stage", "reason").len().to_dicts()}
    assert counts == {(s.stage, reason): n for s in stats.values() for reason, n in s.dropped.items() if n}
    # The published table: PAIR_COLUMNS + TAG_COLUMNS, no flat text.
    pairs = pl.read_parquet(run_dir / "pairs.parquet")
    assert pairs.columns == PAIR_COLUMNS.names + TAG_COLUMNS.names
    assert pairs.height + dropped.filter(pl.col("stage").is_in(["tag", "filter", "dedup"])).height \
        == stats["pairs"].kept
    assert set(pairs["direction"]) <= {"to_dominant", "from_dominant"}
    resolved = load_recipe(run_dir / "recipe.yaml")  # the resolved recipe, overrides included
    assert resolved.prompts.limit == 3 and resolved.languages == ["es", "de"]


def test_rerun_after_deleting_the_final_table_calls_no_model(first_run, tmp_path, tiny_model_dir, loads):
    workdir, run_dir = copy_run(first_run, tmp_path)
    before = pl.read_parquet(run_dir / "pairs.parquet")
    (run_dir / "pairs.parquet").unlink()
    build(demo_recipe(tiny_model_dir), workdir=workdir, limit=3, langs=["es", "de"], progress=False, load_generator=loads)
    assert loads == []  # respond and translate were finished: no model even loaded
    assert pl.read_parquet(run_dir / "pairs.parquet").equals(before)


def test_rerun_of_a_generation_stage_is_served_by_the_cache(first_run, tmp_path, tiny_model_dir, loads):
    workdir, run_dir = copy_run(first_run, tmp_path)
    raw, pairs = pl.read_parquet(run_dir / "pairs_raw.parquet"), pl.read_parquet(run_dir / "pairs.parquet")
    (run_dir / "translations.parquet").unlink()
    build(demo_recipe(tiny_model_dir), workdir=workdir, limit=3, langs=["es", "de"], progress=False, load_generator=loads)
    assert len(loads) == 1 and loads[0].calls == 0  # every translation request was a cache hit
    assert pl.read_parquet(run_dir / "pairs_raw.parquet").equals(raw)
    # (language-ID scores of a rerun may differ in the last bit, so the final table is compared by pair)
    assert pl.read_parquet(run_dir / "pairs.parquet")["pair_id"].to_list() == pairs["pair_id"].to_list()


def test_changed_filter_setting_reruns_only_what_depends_on_it(first_run, tmp_path, tiny_model_dir, loads):
    workdir, run_dir = copy_run(first_run, tmp_path)
    mtimes = {s: (run_dir / OUTPUTS[s]).stat().st_mtime_ns for s in STAGES}
    recipe = demo_recipe(tiny_model_dir)
    recipe = dataclasses.replace(recipe, filters=dataclasses.replace(recipe.filters, identical_sides=False))
    build(recipe, workdir=workdir, limit=3, langs=["es", "de"], progress=False, load_generator=loads)
    assert loads == []
    after = {s: (run_dir / OUTPUTS[s]).stat().st_mtime_ns for s in STAGES}
    assert [s for s in STAGES if after[s] != mtimes[s]] == ["filter", "dedup"]


def test_failure_midway_leaves_finished_stages_and_no_partial_table(first_run, tmp_path, tiny_model_dir, loads):
    workdir = tmp_path / "w"
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt_id": "demo-0", "text": "x"}\n')  # no languages: an error at the translate stage
    recipe = demo_recipe(tiny_model_dir)
    recipe = dataclasses.replace(recipe, imports=dataclasses.replace(
        recipe.imports, translations=[TranslationsImport(path=str(bad))]))
    with pytest.raises(LidrError, match=r"bad.jsonl:1: no 'src_lang'/'tgt_lang'"):
        build(recipe, workdir=workdir, limit=2, langs=["es"], progress=False, load_generator=loads)
    run_dir = workdir / "runs" / "demo" / "iter-1"
    state = json.loads((run_dir / "state.json").read_text())
    assert list(state) == ["prompts", "respond"] and not (run_dir / "translations.parquet").exists()
    assert not [p for p in run_dir.rglob(".*") if p.is_file() and p.name != ".lock"]  # no temporary files left
    responded = loads[0].calls
    bad.write_text('{"prompt_id": "demo-0", "src_lang": "es", "tgt_lang": "en", "text": "Imported."}\n')
    build(recipe, workdir=workdir, limit=2, langs=["es"], progress=False, load_generator=loads)
    # respond was not redone; of the 4 translations (2 items, en->es and es->en) one came imported
    assert responded == 4 and loads[1].calls == 3
    t = pl.read_parquet(run_dir / "translations.parquet")
    assert t.filter((pl.col("prompt_id") == "demo-0") & (pl.col("src_lang") == "es"))["text"].to_list() == [
        "Imported."]


def test_interrupted_generation_resumes_from_the_last_committed_batch(tiny_model_dir, tmp_path):
    class Interrupting(CountingGenerator):
        def generate(self, requests):
            if len(loaded) == 1 and self.calls >= 4 + 2:  # respond (4) + one translate batch (2), then ^C
                raise KeyboardInterrupt
            return super().generate(requests)

    loaded = Loads()
    loaded.wrapper = Interrupting
    # 2 items in en + es: 4 answers, 4 translations, in batches of 2 (each batch is committed to the cache).
    recipe = demo_recipe(tiny_model_dir, backend_options={"batch_size": 2})
    with pytest.raises(KeyboardInterrupt):
        build(recipe, workdir=tmp_path, limit=2, langs=["es"], progress=False, load_generator=loaded)
    run_dir = tmp_path / "runs" / "demo" / "iter-1"
    assert not (run_dir / "translations.parquet").exists() and loaded[0].calls == 6
    build(recipe, workdir=tmp_path, limit=2, langs=["es"], progress=False, load_generator=loaded)
    assert loaded[1].calls == 2  # only the translations of the interrupted batch
    assert read_stats(run_dir)[2].kept == 4


def test_generations_of_another_run_are_imported_not_regenerated(first_run, tmp_path, tiny_model_dir, loads):
    _, run_dir = first_run
    recipe = dataclasses.replace(demo_recipe(tiny_model_dir), name="imported")
    new_dir = build(recipe, workdir=tmp_path, limit=3, langs=["es", "de"], responses=[run_dir / "responses.parquet"],
                    translations=[run_dir / "translations.parquet"], progress=False, load_generator=loads)
    assert loads == []
    old, new = pl.read_parquet(run_dir / "pairs.parquet"), pl.read_parquet(new_dir / "pairs.parquet")
    assert new["pair_id"].to_list() == old["pair_id"].to_list()


def test_every_request_failing_still_completes_with_reasons(tiny_model_dir, tmp_path, loads):
    recipe = demo_recipe(tiny_model_dir)
    recipe = dataclasses.replace(recipe, generation=dataclasses.replace(recipe.generation, max_new_tokens=4096))
    run_dir = build(recipe, workdir=tmp_path, limit=2, langs=["de"], progress=False, load_generator=loads)
    stats = {s.stage: s for s in read_stats(run_dir)}
    assert stats["respond"].dropped == {"generation_error": 4} and stats["dedup"].kept == 0
    assert stats["pairs"].dropped == {"missing_response": 4}
    assert pl.read_parquet(run_dir / "pairs.parquet").height == 0
    dropped = pl.read_parquet(run_dir / "dropped.parquet")
    assert dropped.filter(pl.col("stage") == "respond")["error"].str.contains("exceeds the model context").all()
    build(recipe, workdir=tmp_path, limit=2, langs=["de"], progress=False, load_generator=loads)
    assert loads[1].calls == 4  # failed requests are not cached: a rerun retries them


def _dead_pid() -> int:
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_stage_start_removes_temporary_tables_of_a_killed_run(first_run, tmp_path, tiny_model_dir, loads):
    # What `kill -9` during tag (and filter) leaves: temporary tables named after the dead process.
    import os

    workdir, run_dir = copy_run(first_run, tmp_path)
    dead, live = _dead_pid(), os.getppid()
    stale = [run_dir / f".pairs_tagged.parquet.part-{dead}", run_dir / "dropped" / f".filter.parquet.part-{dead}",
             run_dir / f".stats.json.tmp-{dead}"]
    for p in [*stale, run_dir / f".pairs_tagged.parquet.part-{live}"]:
        p.write_bytes(b"PAR1 half a table")
    (run_dir / "pairs_tagged.parquet").unlink()  # the killed tag never finished
    build(demo_recipe(tiny_model_dir), workdir=workdir, limit=3, langs=["es", "de"], progress=False, load_generator=loads)
    assert not any(p.exists() for p in stale)
    assert loads == []  # tag reran from the tables on disk: no model call
    assert (run_dir / f".pairs_tagged.parquet.part-{live}").exists()  # a live writer's file stays


def test_build_reports_through_its_callbacks_and_prints_nothing(tiny_model_dir, tmp_path, capfd, loads):
    from contextlib import contextmanager

    from transformers.utils import logging as hf_logging

    from lidr_data.build.pipeline import BuildEvents

    seen: list[tuple] = []

    @contextmanager
    def progress(description, total):
        seen.append(("bar", description, total))
        yield lambda n: seen.append(("advance", description, n))

    @contextmanager
    def status(stage):
        seen.append(("status", stage))
        yield

    events = BuildEvents(notify=lambda m: seen.append(("notify", m)), warn=lambda m: seen.append(("warn", m)),
                         stage_done=lambda stats, seconds: seen.append(("done", stats.stage, seconds is None)),
                         status=status)
    recipe = demo_recipe(tiny_model_dir)
    hf_logging.disable_progress_bar()  # transformers' own "Loading weights" bar is not the build's output
    try:
        build(recipe, workdir=tmp_path, limit=2, langs=["es"], progress=progress, events=events,
              load_generator=loads)
    finally:
        hf_logging.enable_progress_bar()
    assert capfd.readouterr() == ("", "")
    assert [e[1] for e in seen if e[0] == "done"] == list(STAGES) and not any(e[2] for e in seen if e[0] == "done")
    assert [e[1] for e in seen if e[0] == "status"] == ["prompts", "pairs", "tag", "filter", "dedup"]
    assert ("notify", f"loading transformers model {tiny_model_dir}") in seen
    # The generating stages draw through `progress`: each bar is advanced to its total.
    bars = {e[1]: e[2] for e in seen if e[0] == "bar"}
    assert set(bars) == {"respond", "translate"}
    for description, total in bars.items():
        assert sum(e[2] for e in seen if e[0] == "advance" and e[1] == description) == total
    seen.clear()
    build(recipe, workdir=tmp_path, limit=2, langs=["es"], progress=progress, events=events, load_generator=loads)
    assert seen == [("done", stage, True) for stage in STAGES] and capfd.readouterr() == ("", "")
