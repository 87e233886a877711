"""The stage machinery: what a stage declares (`Stage`, its entry in the build), what it reports (`StageStats`)
and what it may use of the running build (`RunningBuild`). The ordered list of entries is `order.py`."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import pyarrow as pa

from lidr_data.generation.base import Generator
from lidr_data.generation.cache import RequestCache
from lidr_data.progress import Progress


@dataclass
class StageStats:
    """Rows in, kept and dropped by reason for one stage. Invariant: rows_in == kept + sum(dropped)."""

    stage: str
    rows_in: int = 0
    kept: int = 0
    dropped: dict[str, int] = field(default_factory=dict)

    def check(self) -> StageStats:
        total = self.kept + sum(self.dropped.values())
        if total != self.rows_in:
            raise AssertionError(f"stage {self.stage}: {self.rows_in} rows in but {total} kept + dropped")
        return self


class StageEvents(Protocol):
    """How a stage reports while it runs (plain text; the command renders it)."""

    @property
    def notify(self) -> Callable[[str], None]: ...

    @property
    def warn(self) -> Callable[[str], None]: ...


class RunFiles(Protocol):
    """The run folder's files a stage writes besides its tables."""

    @property
    def exclusions(self) -> Path: ...


class RunningBuild(Protocol):
    """What a stage's `run` may use of the running build (`lidr_data.build.pipeline.Build`): the build sits above
    the stages, so they see it through this interface only."""

    @property
    def recipe(self) -> Any: ...  # read duck-typed: each stage reads the recipe sections it names

    @property
    def progress(self) -> Progress | None: ...

    @property
    def events(self) -> StageEvents: ...

    @property
    def paths(self) -> RunFiles: ...

    @property
    def cache(self) -> RequestCache: ...

    def generator(self) -> Generator: ...  # created on the first call: only a stage with work to do loads a model

    def table(self, stage: str) -> pa.Table: ...  # a finished stage's output

    def out(self, stage: str) -> Path: ...  # a stage's output table in the run folder

    def drops(self, stage: str) -> Path: ...  # its dropped rows, dropped/<stage>.parquet

    def save(self, stage: str, kept: pa.Table, drops: pa.Table, stats: StageStats) -> StageStats: ...


@dataclass(frozen=True, kw_only=True)
class Stage:
    """One stage's entry in the build, declared at the end of its module: its files in the run folder, the recipe
    settings its output depends on, and the function that runs it."""

    name: str
    output: str  # its table, in the run folder
    inputs: tuple[str, ...] = ()  # the stages whose tables it reads
    rows_from: str | None = None  # its rows in are exactly that stage's kept rows (translate and pairs fan out)
    drops: bool = True  # it writes dropped/<name>.parquet (tagging drops nothing)
    generates: bool = False  # it may call the generator (and draws its own progress)
    # recipe -> the settings its output depends on (a change reruns it and every stage after it); JSON-able, and
    # part of the fingerprints recorded in every run folder: never reorder or reshape a stage's list
    settings: Callable[[Any], object]
    run: Callable[[RunningBuild], StageStats]  # reads its inputs, writes its outputs (atomically), returns its stats


def section(recipe: Any, name: str) -> dict:
    """A recipe section as plain data (the form stage settings take)."""
    return dataclasses.asdict(getattr(recipe, name))
