"""The column contract between stages and consumers (DESIGN.md section 2) and the per-stage statistics.

Stage tables live as Parquet files in the run folder. `pairs_raw` carries flat text columns next to the
conversational ones because per-text work (language ID, MinHash, lengths) reads them; the published `pairs`
table keeps only the conversational columns (the `lidr sql` views re-derive flat text for users).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pyarrow as pa

MESSAGE = pa.struct([("role", pa.string()), ("content", pa.string())])
MESSAGES = pa.list_(MESSAGE)


PROMPTS = pa.schema([
    ("prompt_id", pa.string()),
    ("lang", pa.string()),
    ("text", pa.string()),
    ("source", pa.string()),
    ("is_translation_task", pa.bool_()),
])

RESPONSES = pa.schema([
    ("prompt_id", pa.string()),
    ("lang", pa.string()),
    ("text", pa.string()),
    ("finish_reason", pa.string()),  # stop | length | error
    ("model", pa.string()),
    ("model_revision", pa.string()),
    ("request_key", pa.string()),
    ("n_tokens", pa.int64()),
])

TRANSLATIONS = pa.schema([
    ("prompt_id", pa.string()),
    ("src_lang", pa.string()),
    ("tgt_lang", pa.string()),
    ("source_text", pa.string()),
    ("text", pa.string()),  # null when extraction failed; never a placeholder string
    ("ok", pa.bool_()),
    ("finish_reason", pa.string()),
    ("request_key", pa.string()),
])

# Columns of the published pairs table (and of pairs_raw, which adds the flat text columns below).
PAIR_COLUMNS = pa.schema([
    ("prompt", MESSAGES),
    ("chosen", MESSAGES),
    ("rejected", MESSAGES),
    ("pair_id", pa.string()),  # stable hash of prompt, chosen and rejected content
    ("prompt_id", pa.string()),
    ("lang", pa.string()),  # language of the prompt
    ("direction", pa.string()),  # to_dominant: the English pair; from_dominant: the pair in L
    ("pivot_lang", pa.string()),  # the other language used
    ("iteration", pa.int64()),
    ("generator_model", pa.string()),
    ("generator_revision", pa.string()),
    ("is_translation_task", pa.bool_()),
    ("translation_ok", pa.bool_()),  # the translated side was extracted
    ("chosen_finish_reason", pa.string()),
    ("rejected_finish_reason", pa.string()),
])

FLAT_TEXT = pa.schema([("prompt_text", pa.string()), ("chosen_text", pa.string()), ("rejected_text", pa.string())])

# Added by the tag stage.
TAG_COLUMNS = pa.schema([
    ("prompt_lang", pa.string()),
    ("prompt_lang_score", pa.float64()),
    ("chosen_lang", pa.string()),
    ("chosen_lang_score", pa.float64()),
    ("rejected_lang", pa.string()),
    ("rejected_lang_score", pa.float64()),
    ("chosen_chars", pa.int64()),
    ("rejected_chars", pa.int64()),
    ("content_hash", pa.string()),
])

# dropped = the columns the row had at its stage + these.
DROP_COLUMNS = pa.schema([("stage", pa.string()), ("reason", pa.string()), ("duplicate_of", pa.string())])


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
