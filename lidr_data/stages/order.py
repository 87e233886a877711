"""The build's stages, in order: the one list that the build walks (`lidr_data.build.pipeline`) and that the run
folder's layout reads (`lidr_data.build.run_folder`).

A new stage is one new file and one line here. The file, `stages/<name>.py`, ends with its entry:

    def _run(run: RunningBuild) -> StageStats:           # what it may use of the build: `base.RunningBuild`
        kept, drops, stats = my_stage(run.table("pairs"), run.recipe.my_section)
        return run.save("<name>", kept, drops, stats)    # its table and dropped/<name>.parquet, atomically

    ENTRY = Stage(name="<name>", output="<table>.parquet", inputs=("pairs",), rows_from="pairs",
                  settings=lambda r: [section(r, "my_section")], run=_run)

and its `ENTRY` goes in `STAGES` below, after the stages it reads (its settings, when it has a section of its
own, are a dataclass beside it that the recipe composes). Nothing else changes: the pipeline runs, resumes and
fingerprints whatever this list holds, the run folder finds its table here, and `lidr build` reports it.

Separate from `stages/__init__.py` on purpose: importing one stage module (or `base.StageStats`, as the CLI does
at start-up) must not import every stage.
"""

from __future__ import annotations

from lidr_data.stages import dedup, filter, pairs, prompts, respond, tag, translate
from lidr_data.stages.base import Stage

STAGES: tuple[Stage, ...] = (
    prompts.ENTRY,
    respond.ENTRY,
    translate.ENTRY,
    pairs.ENTRY,
    tag.ENTRY,
    filter.ENTRY,
    dedup.ENTRY,
)
STAGE_NAMES = tuple(s.name for s in STAGES)
BY_NAME = {s.name: s for s in STAGES}
