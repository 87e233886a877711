"""The run folder: one definition of what a build writes, read by the pipeline and by materialize.

`WORKDIR/runs/<recipe name>/iter-<N>/` holds every stage's table (`stages.order.STAGES`), `dropped/<stage>.parquet`
(merged into `dropped.parquet`), the request cache `cache/requests.sqlite`, `stats.json` (StageStats per
stage), `recipe.yaml` (the resolved recipe, secrets redacted), `state.json` (a fingerprint per finished
stage), `lineage.json` (the parent version and the generator model, resolved when the build started) and
`exclude_pairs.json` (what each pair-filter file of `filters.exclude_pairs` dropped, written by the filter stage). The
published table is the last stage's output, `pairs.parquet`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from lidr_data.build.recipe import Recipe, parse_recipe
from lidr_data.errors import LidrError
from lidr_data.readers import read_json, read_yaml
from lidr_data.stages.base import StageStats
from lidr_data.stages.order import BY_NAME, STAGE_NAMES

RECIPE, STATS, STATE, DROPPED, DROPPED_DIR, CACHE, LINEAGE, EXCLUSIONS = (
    "recipe.yaml", "stats.json", "state.json", "dropped.parquet", "dropped", "cache/requests.sqlite", "lineage.json",
    "exclude_pairs.json")


def run_dir(workdir: str | Path, name: str, iteration: int) -> Path:
    return Path(workdir).expanduser() / "runs" / name / f"iter-{iteration}"


@dataclass(frozen=True)
class RunPaths:
    """The paths of one run folder."""

    path: Path

    def table(self, stage: str) -> Path:
        return self.path / BY_NAME[stage].output

    def drops(self, stage: str) -> Path:
        return self.path / DROPPED_DIR / f"{stage}.parquet"

    @property
    def pairs(self) -> Path:
        """The published table: the last stage's output."""
        return self.table(STAGE_NAMES[-1])

    @property
    def recipe(self) -> Path:
        return self.path / RECIPE

    @property
    def stats(self) -> Path:
        return self.path / STATS

    @property
    def state(self) -> Path:
        return self.path / STATE

    @property
    def dropped(self) -> Path:
        return self.path / DROPPED

    @property
    def cache(self) -> Path:
        return self.path / CACHE

    @property
    def lineage(self) -> Path:
        return self.path / LINEAGE

    @property
    def exclusions(self) -> Path:
        return self.path / EXCLUSIONS

    def read_lineage(self) -> dict | None:
        """lineage.json ({"parent": ..., "generator": ...}) as the build wrote it; None when absent."""
        if not self.lineage.is_file():
            return None
        data = read_json(self.lineage)
        if not isinstance(data, dict):
            raise LidrError(f"{self.lineage}: expected a JSON object")
        return data

    def read_recipe_data(self) -> dict | None:
        """recipe.yaml as written (None when absent); malformed YAML is a one-line LidrError."""
        if not self.recipe.is_file():
            return None
        data = read_yaml(self.recipe) or {}
        if not isinstance(data, dict):
            raise LidrError(f"{self.recipe}: expected a mapping at the top level")
        return data

    def read_recipe(self) -> Recipe | None:
        """recipe.yaml through the `Recipe` type (None when absent): errors name the file and the field."""
        data = self.read_recipe_data()
        return None if data is None else parse_recipe(data, str(self.recipe))

    def read_stats(self) -> list[StageStats]:
        if not self.stats.is_file():
            return []
        data = read_json(self.stats, "stage statistics")
        try:
            return [StageStats(**s) for s in data]
        except TypeError as e:
            raise LidrError(f"{self.stats}: malformed stage statistics ({e})") from None
