"""Filter stage: named SQL rules over the tagged pairs; every dropped row carries the name of the rule it failed.

The rules, in the order they are checked (a row failing several gets the first):

1. `translation_failed`: the translated side was not extracted (`translation_ok` is not true), or a side is
   exactly a failure marker (`failure_markers`, e.g. the LIDR authors' "Translation Error"), wherever the text
   came from (generated, imported answers, imported translations).
2. `empty_side`: chosen or rejected is empty or only whitespace (any Unicode space, and zero-width characters).
3. `truncated`: either side stopped at the token limit (`finish_reason = 'length'`).
4. `wrong_language`: chosen or rejected is not in the pair's language: the prompt's language (`lang`), or the
   dominant language for `direction = 'to_dominant'`. Language tags scoring below `min_language_score` count as
   "unknown"; `unknown_language` says whether an unknown side is dropped or kept. Translation-task prompts are
   exempt by default (their chosen side is the untranslated English answer, as in the paper).
5. `length_ratio`: chosen_chars / rejected_chars outside [min_length_ratio, max_length_ratio].
6. `identical_sides`: chosen and rejected are the same text (ignoring surrounding whitespace).
7. Pair-filter files (`exclude_pairs`, written by `lidr audit --write-filter`): a pair whose `pair_id` a file lists
   is dropped with that file's reason (`judge_reversed`). A file is JSON: `{"kind": "lidr-pair-filter", "reason":
   ..., "audit": {...}, "pair_ids": [...]}`; listed ids that match no pair are counted, not an error.

Each rule is one SQL predicate evaluated by DuckDB on each streamed batch of pairs_raw beside its tags (no join,
no sort), so memory stays flat. The kept table is narrow: the row numbers and pair ids of the kept pairs in
pairs_raw (the dedup stage writes the published table from pairs_raw); dropped rows keep all their columns.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lidr_data.config import option, require
from lidr_data.errors import LidrError
from lidr_data.files import atomic_paths, sha256_file, sql_literal, write_json_atomic
from lidr_data.readers import read_json
from lidr_data.schema import DROP_COLUMNS, FLAT_TEXT, PAIR_COLUMNS, TAG_COLUMNS
from lidr_data.stages.base import RunningBuild, Stage, StageStats, section
from lidr_data.stages.tables import (
    count_reasons,
    open_table,
    parquet_writer,
    read_ahead,
    with_drop_columns,
    with_tags,
)
from lidr_data.stages.tag import load_tags, tags_of

BATCH_ROWS = 10_000  # rows per streamed batch: bounds memory whatever the table size
FILTERED = pa.schema([("row", pa.int64()), ("pair_id", pa.string())])  # row: the pair's row number in pairs_raw
DEFAULT_FAILURE_MARKERS = ("Translation Error",)  # what the LIDR authors' code writes for a failed extraction
RULES = ("translation_failed", "empty_side", "truncated", "wrong_language", "length_ratio", "identical_sides")


@dataclass
class FilterConfig:
    """Filter rules (recipe section `filters:`): each can be switched off; thresholds below."""

    translation_failed: bool = option(True, "Drop pairs whose translated side was not extracted.")
    empty_side: bool = option(True, "Drop pairs with an empty (or whitespace-only) chosen or rejected side.")
    truncated: bool = option(True, "Drop pairs where either side hit the token limit (finish_reason = length).")
    wrong_language: bool = option(True, "Drop pairs whose chosen or rejected side is not in the pair's language.")
    length_ratio: bool = option(True, "Drop pairs whose chosen/rejected length ratio is outside the bounds below.")
    identical_sides: bool = option(True, "Drop pairs whose chosen and rejected texts are identical.")
    failure_markers: list[str] = field(default_factory=lambda: list(DEFAULT_FAILURE_MARKERS), metadata={"help": (
        "Texts that mean 'generation or translation failed' (compared after trimming whitespace): a side "
        "equal to one is dropped as translation_failed. Default: the LIDR authors' 'Translation Error'; [] turns it off.")})
    min_length_ratio: float = option(0.2, "Lowest accepted chosen_chars / rejected_chars (> 0).")
    max_length_ratio: float = option(5.0, "Highest accepted chosen_chars / rejected_chars.")
    min_language_score: float = option(0.0, "Language tags scoring below this (0..1) count as 'unknown'.")
    unknown_language: Literal["keep", "drop"] = option(
        "keep", "What wrong_language does with a side whose language is 'unknown' (short or mixed text): "
        "'keep' (only a confident other language is dropped) or 'drop'.")
    exempt_translation_tasks: bool = option(
        True, "Skip the language rule for prompts that are translation tasks (their answers mix languages).")
    exclude_pairs: list[str] = option(
        help="Pair-filter files (JSON, written by `lidr audit --write-filter`): the pairs whose pair_id a file "
        "lists are dropped with the file's reason (judge_reversed); the version's manifest records each file's "
        "sha256, its audit, and how many ids it listed and dropped.", factory=list)

    def __post_init__(self) -> None:
        def check(ok: bool, name: str, message: str) -> None:  # this section's messages read "filters.x must ..."
            require(ok, f"filters.{name}", message, sep=" ")

        markers = self.failure_markers
        check(isinstance(markers, (list, tuple)) and all(isinstance(m, str) and m.strip() for m in markers),
              "failure_markers", f"must be a list of non-empty texts, got {markers!r}")
        self.failure_markers = list(dict.fromkeys(m.strip() for m in markers))
        for name in RULES + ("exempt_translation_tasks",):
            value = getattr(self, name)
            check(isinstance(value, bool), name, f"must be true or false, got {value!r}")
        for name in ("min_length_ratio", "max_length_ratio", "min_language_score"):
            value = getattr(self, name)
            check(isinstance(value, (int, float)) and not isinstance(value, bool), name,
                  f"must be a number, got {value!r}")
        check(self.min_length_ratio > 0, "min_length_ratio", f"must be > 0, got {self.min_length_ratio}")
        check(self.max_length_ratio > self.min_length_ratio, "max_length_ratio",
              f"must be > filters.min_length_ratio (got {self.max_length_ratio} <= {self.min_length_ratio})")
        check(0.0 <= self.min_language_score <= 1.0, "min_language_score",
              f"must be between 0 and 1, got {self.min_language_score}")
        check(self.unknown_language in ("keep", "drop"), "unknown_language",
              f"must be 'keep' or 'drop', got {self.unknown_language!r}")
        pairs = self.exclude_pairs
        check(isinstance(pairs, list) and all(isinstance(p, str) and p.strip() for p in pairs), "exclude_pairs",
              f"must be a list of file paths, got {pairs!r}")


PAIR_FILTER_KIND = "lidr-pair-filter"
_REASON = re.compile(r"[a-z][a-z0-9_]*")


@dataclass(frozen=True)
class PairFilter:
    """A validated pair-filter file: the pair ids it lists (each once, in file order) and the reason to drop them."""

    path: Path
    sha256: str
    reason: str
    pair_ids: list[str]
    audit: dict | None


def read_pair_filter(path: str | Path) -> PairFilter:
    """Read and check a pair-filter file; any problem is a LidrError naming the file and the field."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise LidrError(f"{path}: pair filter file not found")
    data = read_json(path)
    if not isinstance(data, dict):
        raise LidrError(f"{path}: expected a JSON object with kind, reason and pair_ids, got {type(data).__name__}")
    if data.get("kind") != PAIR_FILTER_KIND:
        raise LidrError(f"{path}: field `kind`: expected {PAIR_FILTER_KIND!r}, got {data.get('kind')!r}")
    reason = data.get("reason")
    if not isinstance(reason, str) or not _REASON.fullmatch(reason):
        raise LidrError(f"{path}: field `reason`: expected a drop reason name (lowercase letters, digits, '_'), "
                        f"got {reason!r}")
    if reason in RULES:
        raise LidrError(f"{path}: field `reason`: {reason!r} is a built-in filter rule; name the audit's own reason")
    ids = data.get("pair_ids")
    if not isinstance(ids, list):
        raise LidrError(f"{path}: field `pair_ids`: expected a list of pair ids, got {type(ids).__name__}")
    for i, pid in enumerate(ids):
        if not isinstance(pid, str) or not pid:
            raise LidrError(f"{path}: field `pair_ids[{i}]`: expected a pair id (a non-empty string), got {pid!r}")
    audit = data.get("audit")
    if audit is not None and not isinstance(audit, dict):
        raise LidrError(f"{path}: field `audit`: expected an object, got {type(audit).__name__}")
    return PairFilter(path, sha256_file(path), reason, list(dict.fromkeys(ids)), audit)


def _excluded_table(exclusions: Sequence[PairFilter]) -> pa.Table:
    """(pair_id, reason, file): each id once, attributed to the first file that lists it."""
    seen: dict[str, tuple[str, int]] = {}
    for i, f in enumerate(exclusions):
        for pid in f.pair_ids:
            seen.setdefault(pid, (f.reason, i))
    return pa.table({"pair_id": pa.array(list(seen), pa.string()),
                     "reason": pa.array([r for r, _ in seen.values()], pa.string()),
                     "file": pa.array([i for _, i in seen.values()], pa.int64())})


def exclusion_report(exclusions: Sequence[PairFilter], dropped: Path) -> list[dict]:
    """What each pair-filter file did in a finished filter stage: {path, sha256, reason, audit, listed, dropped}
    (`dropped` counts the rows of `dropped` that the file removed; ids matching no pair are only `listed`)."""
    if not exclusions:
        return []
    con = duckdb.connect()
    try:
        con.register("excluded", _excluded_table(exclusions))
        found = dict(con.execute(
            f"SELECT e.file, count(*) FROM read_parquet({sql_literal(dropped)}) d JOIN excluded e USING (pair_id) "
            "WHERE d.stage = 'filter' AND d.reason = e.reason GROUP BY e.file").fetchall())
    finally:
        con.close()
    return [{"path": str(f.path.resolve()), "sha256": f.sha256, "reason": f.reason, "audit": f.audit,
             "listed": len(f.pair_ids), "dropped": int(found.get(i, 0))} for i, f in enumerate(exclusions)]


# Every character Python's str.isspace() accepts, plus zero-width ones: RE2's \s is ASCII-only (U+3000, U+00A0,
# U+2003 ... would otherwise make a side look non-empty).
SPACE_CLASS = r"[\s\x{0B}\x{1C}-\x{1F}\x{85}\p{Z}\x{200B}-\x{200D}\x{2060}\x{FEFF}]"


def _re2_escape(text: str) -> str:
    return re.sub(r"([\\.^$|?*+()\[\]{}])", r"\\\1", text)


def rule_predicates(config: FilterConfig, dominant_lang: str) -> list[tuple[str, str]]:
    """(rule name, SQL predicate that is true when the row must be dropped) for the rules switched on, in order."""
    expected = f"(CASE WHEN direction = 'to_dominant' THEN {sql_literal(dominant_lang)} ELSE lang END)"

    def off_language(side: str) -> str:
        lang = (f"(CASE WHEN coalesce({side}_lang_score, 0) < {float(config.min_language_score)} "
                f"THEN 'unknown' ELSE coalesce({side}_lang, 'unknown') END)")
        unknown = "true" if config.unknown_language == "drop" else "false"
        return f"(CASE WHEN {lang} = 'unknown' THEN {unknown} ELSE {lang} <> {expected} END)"

    language = f"({off_language('chosen')} OR {off_language('rejected')})"
    if config.exempt_translation_tasks:
        language = f"(NOT coalesce(is_translation_task, false) AND {language})"
    ratio = "chosen_chars::DOUBLE / nullif(rejected_chars, 0)"
    failed = "translation_ok IS NOT TRUE"
    if config.failure_markers:
        # Anchored: RE2 gives up on a long answer after its first characters. The length guard skips most rows.
        marker = sql_literal("^" + SPACE_CLASS + "*(?:" + "|".join(_re2_escape(m) for m in config.failure_markers) + ")"
                        + SPACE_CLASS + "*$")
        longest = max(len(m) for m in config.failure_markers) + 256
        failed += "".join(f" OR coalesce({side}_chars <= {longest} AND regexp_matches({side}_text, {marker}), false)"
                          for side in ("chosen", "rejected"))
    not_blank = sql_literal("[^" + SPACE_CLASS[1:])
    strip = sql_literal(f"^{SPACE_CLASS}+|{SPACE_CLASS}+$")
    rules = {
        "translation_failed": failed,
        "empty_side": f"NOT regexp_matches(coalesce(chosen_text, ''), {not_blank}) OR "
                      f"NOT regexp_matches(coalesce(rejected_text, ''), {not_blank})",
        "truncated": "coalesce(chosen_finish_reason = 'length', false) OR "
                     "coalesce(rejected_finish_reason = 'length', false)",
        "wrong_language": language,
        "length_ratio": f"coalesce({ratio} < {float(config.min_length_ratio)} OR "
                        f"{ratio} > {float(config.max_length_ratio)}, false)",
        # Trimming is slow in DuckDB (it copies both texts): only rows of near-equal length get that far.
        "identical_sides": f"CASE WHEN abs(chosen_chars - rejected_chars) <= 16 THEN "
                           f"coalesce(regexp_replace(chosen_text, {strip}, '', 'g') = "
                           f"regexp_replace(rejected_text, {strip}, '', 'g'), false) ELSE false END",
    }
    return [(name, rules[name]) for name in RULES if getattr(config, name)]


def reason_sql(config: FilterConfig, dominant_lang: str, table: str = "batch",
               excluded_reasons: Sequence[str] = ()) -> str:
    """One query: the first failed rule's name per row (NULL = kept). `excluded_reasons`: the reasons of the
    pair-filter files, checked after the rules against a table `excluded(pair_id, reason)`."""
    rules = rule_predicates(config, dominant_lang) + [
        (reason, f"pair_id IN (SELECT pair_id FROM excluded WHERE reason = {sql_literal(reason)})")
        for reason in dict.fromkeys(excluded_reasons)]
    whens = " ".join(f"WHEN {pred} THEN {sql_literal(name)}" for name, pred in rules)
    return f"SELECT CASE {whens} ELSE NULL END AS reason FROM {table}" if whens else \
        f"SELECT NULL::VARCHAR AS reason FROM {table}"


# Columns the rules read (text included: empty/identical checks); the rest of a row never enters DuckDB.
_RULE_COLUMNS = ("pair_id", "translation_ok", "direction", "lang", "is_translation_task", "chosen_finish_reason",
                 "rejected_finish_reason", "chosen_text", "rejected_text", "chosen_lang", "chosen_lang_score",
                 "rejected_lang", "rejected_lang_score", "chosen_chars", "rejected_chars")


def filter_pairs(raw: Path, tagged: Path, kept_dst: Path, dropped_dst: Path, config: FilterConfig,
                 dominant_lang: str, exclusions: Sequence[PairFilter] = ()) -> StageStats:
    """pairs_raw + pairs_tagged -> the kept pairs (FILTERED: row number and pair_id) and the dropped rows
    (pairs_raw and tag columns + stage, reason, duplicate_of). `exclusions`: pair-filter files (read_pair_filter)
    whose listed pairs are dropped with their reason."""
    raw, kept_dst, dropped_dst = Path(raw), Path(kept_dst), Path(dropped_dst)
    if not dominant_lang:
        raise LidrError("filter: the dominant language is empty")
    pf = open_table(raw, pa.schema([*PAIR_COLUMNS, *FLAT_TEXT]), "pairs_raw")
    tags = load_tags(tagged, pf)
    dropped_schema = pa.schema([*pf.schema_arrow, *TAG_COLUMNS, *DROP_COLUMNS])
    query = reason_sql(config, dominant_lang, excluded_reasons=[f.reason for f in exclusions])
    stats = StageStats("filter")
    con = duckdb.connect()
    try:
        if exclusions:
            con.register("excluded", _excluded_table(exclusions))
        # The kept table is renamed last: it marks the stage's output complete.
        with atomic_paths(dropped_dst, kept_dst) as tmps, parquet_writer(tmps[1], FILTERED) as kept_w, \
                parquet_writer(tmps[0], dropped_schema, final=True) as dropped_w:
            for batch in read_ahead(pf.iter_batches(batch_size=BATCH_ROWS)):
                part = tags_of(tags, stats.rows_in, batch)
                con.register("batch", pa.table({n: batch.column(n) if n in batch.schema.names else part.column(n)
                                                for n in _RULE_COLUMNS}))
                reasons = con.sql(query).to_arrow_table().column("reason").combine_chunks()
                con.unregister("batch")
                dropped_mask = pc.is_valid(reasons)
                kept_mask = pc.invert(dropped_mask)
                rows = pa.array(np.arange(stats.rows_in, stats.rows_in + batch.num_rows, dtype=np.int64))
                kept = pa.RecordBatch.from_arrays([rows.filter(kept_mask), batch.column("pair_id").filter(kept_mask)],
                                                  schema=FILTERED)
                if kept.num_rows:
                    kept_w.write_batch(kept)
                stats.rows_in += batch.num_rows
                stats.kept += kept.num_rows
                if kept.num_rows < batch.num_rows:
                    dropped_reasons = reasons.filter(dropped_mask)
                    dropped_w.write_table(with_drop_columns(with_tags(batch, part).filter(dropped_mask), "filter",
                                                            dropped_reasons))
                    count_reasons(stats, dropped_reasons)
    finally:
        con.close()
    return stats.check()


# -- this stage in the build (the list: order.py); it streams file to file and writes its outputs atomically

def _pair_filters(recipe) -> list[PairFilter]:
    """The recipe's pair-filter files, read and checked (`filters.exclude_pairs`)."""
    out = []
    for i, path in enumerate(recipe.filters.exclude_pairs):
        try:
            out.append(read_pair_filter(path))
        except LidrError as e:
            raise LidrError(f"filters.exclude_pairs[{i}]: {e}") from None
    return out


def _settings(recipe) -> list:
    settings = section(recipe, "filters")
    if not recipe.filters.exclude_pairs:  # run folders from before pair-filter files keep their fingerprint
        settings.pop("exclude_pairs")
        return [settings]
    # The content of every pair-filter file is a setting of the filter stage: a changed file reruns it (and a
    # bad one fails when the build computes its fingerprints, before any generation).
    return [settings, [f.sha256 for f in _pair_filters(recipe)]]


def _run(run: RunningBuild) -> StageStats:
    recipe = run.recipe
    # A side equal to any import's failure marker is a failed generation, whichever file it came from.
    filters = dataclasses.replace(recipe.filters, failure_markers=list(dict.fromkeys(
        [*recipe.filters.failure_markers, *recipe.imports.failure_markers])))
    exclusions = _pair_filters(recipe)
    stats = filter_pairs(run.out("pairs"), run.out("tag"), run.out("filter"), run.drops("filter"), filters,
                         recipe.dominant_lang, exclusions)
    write_json_atomic(run.paths.exclusions, exclusion_report(exclusions, run.drops("filter")))
    return stats


ENTRY = Stage(name="filter", output="pairs_filtered.parquet", inputs=("pairs", "tag"), rows_from="tag",
              settings=_settings, run=_run)
