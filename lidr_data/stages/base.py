"""The stage machinery: what a stage reports (`StageStats`) and what it declares (`StageFiles`)."""

from __future__ import annotations

from dataclasses import dataclass, field


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


@dataclass(frozen=True)
class StageFiles:
    """What one stage reads and writes in the run folder."""

    name: str
    output: str  # its table, in the run folder
    inputs: tuple[str, ...] = ()  # the stages whose tables it reads
    rows_from: str | None = None  # its rows in are exactly that stage's kept rows (translate and pairs fan out)
    drops: bool = True  # it writes dropped/<name>.parquet (tagging drops nothing)
    generates: bool = False  # it may call the generator (and draws its own progress)


# In build order: the pipeline walks this list.
STAGE_FILES: tuple[StageFiles, ...] = (
    StageFiles("prompts", "prompts.parquet"),
    StageFiles("respond", "responses.parquet", ("prompts",), rows_from="prompts", generates=True),
    StageFiles("translate", "translations.parquet", ("prompts", "respond"), generates=True),
    StageFiles("pairs", "pairs_raw.parquet", ("prompts", "respond", "translate")),
    StageFiles("tag", "pairs_tagged.parquet", ("pairs",), rows_from="pairs", drops=False),
    StageFiles("filter", "pairs_filtered.parquet", ("pairs", "tag"), rows_from="tag"),
    StageFiles("dedup", "pairs.parquet", ("pairs", "tag", "filter"), rows_from="filter"),
)
STAGES = tuple(s.name for s in STAGE_FILES)
