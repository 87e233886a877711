"""Prompt sources: parallel prompts (one text per language per item id) from a folder of per-language files
or a Hub dataset, aligned by id, with translation-task flags.

Bad files are errors naming the file, row and field (a malformed line, bytes that are not UTF-8, a missing field,
a duplicate id, an empty file). Rows that cannot be used are dropped with a reason at stage `prompts`:
`null_text`, `empty_text`, `prompt_wrong_language` (identified as another of the recipe's languages, see
`PromptsConfig.check_language`), and `missing_in:<langs>` for the other languages of such an item, or of an item
whose id some language lacks.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pyarrow as pa

from lidr_data.config import option, require, resolve_path
from lidr_data.errors import LidrError
from lidr_data.langid import UNKNOWN, detect_languages
from lidr_data.readers import SUFFIXES, iter_records
from lidr_data.redact import redact_text
from lidr_data.schema import PROMPTS
from lidr_data.stages.base import RunningBuild, Stage, StageStats, section
from lidr_data.stages.tables import drop_table


@dataclass
class PromptsConfig:
    """Where the prompts come from and how their fields are named."""

    source: str = option(help="A folder of per-language files ({lang}.jsonl / .json / .parquet), or a Hub dataset id.")
    format: Literal["auto", "files", "hub"] = option(
        "auto", help="'files' (a folder), 'hub' (datasets.load_dataset), or 'auto': a folder if it exists.")
    id_field: str = option("id", help="Field holding the item id; ids align the languages of one item.")
    text_field: str = option("instruction", help="Field holding the prompt text.")
    split: str = option("train", help="Hub dataset split ('{lang}' is replaced by the language code).")
    hub_config: str | None = option(
        None, help="Hub dataset config name; '{lang}' is replaced by the language code (one config per language).")
    lang_field: str | None = option(
        None, help="For a Hub dataset holding all languages in one table: the field with the language code.")
    offset: int = option(0, help="Skip this many items first (iteration 2 of the paper uses the next 1,000).")
    limit: int | None = option(None, help="Use at most this many items (ordered as in the dominant language).")
    translation_task_ids: str | None = option(
        None, help="File (.jsonl/.json/.parquet) listing the ids of prompts that are translation tasks.")
    translation_task_id_field: str = option("id", help="Id field in the translation_task_ids file.")
    translation_task_pattern: str | None = option(
        None, help="Regular expression: dominant-language prompts that match it are translation tasks.")
    check_language: bool = option(
        True, help="Identify each prompt's language (langid.py) and drop rows confidently in another of the "
        "recipe's languages as `prompt_wrong_language` (e.g. a de.jsonl holding English), with a warning per file.")
    language_min_score: float = option(
        0.95, help="Confidence at or above which a prompt identified as another language is dropped on its own.")
    language_file_share: float = option(
        0.05, help="When at least this share of a file's judged prompts (and 3 or more) is identified as one "
        "other language, every prompt identified as it is dropped, confident or not: the file is partly or "
        "wholly in the wrong language. Short prompts get low confidences even when identified right.")
    language_min_chars: int = option(
        20, help="Shorter prompts are not judged: language ID is unreliable on a few words.")

    def __post_init__(self) -> None:
        require(bool(self.source), "source", "required (a folder of {lang}.jsonl files or a Hub dataset id)")
        require(0.0 <= self.language_min_score <= 1.0, "language_min_score",
                 f"must be in [0, 1], got {self.language_min_score}")
        require(0.0 <= self.language_file_share <= 1.0, "language_file_share",
                 f"must be in [0, 1], got {self.language_file_share}")
        require(self.language_min_chars >= 0, "language_min_chars", f"must be >= 0, got {self.language_min_chars}")
        require(self.offset >= 0, "offset", f"must be >= 0, got {self.offset}")
        require(self.limit is None or self.limit >= 1, "limit", f"must be >= 1, got {self.limit}")
        if self.translation_task_pattern is not None:
            try:
                re.compile(self.translation_task_pattern)
            except re.error as e:
                raise LidrError(f"translation_task_pattern: not a valid regular expression ({e})") from None


STAGE = "prompts"


def _language_file(folder: Path, lang: str) -> Path:
    found = [folder / f"{lang}{suffix}" for suffix in SUFFIXES if (folder / f"{lang}{suffix}").is_file()]
    if not found:
        raise LidrError(f"{folder}: no prompt file for language {lang!r} "
                        f"(expected {', '.join(lang + s for s in SUFFIXES)})")
    if len(found) > 1:
        raise LidrError(f"{folder}: several prompt files for language {lang!r} ({', '.join(p.name for p in found)})")
    return found[0]


def _hub_rows(cfg: PromptsConfig, lang: str) -> tuple[Iterator[tuple[str, dict]], str]:
    """(location, row) of one language from a Hub dataset (or a local folder in the Hub layout), read lazily."""
    try:
        import datasets
    except ImportError as e:  # pragma: no cover - datasets is a core dependency
        raise LidrError("reading a Hub prompt source needs the `datasets` package") from e
    name = cfg.hub_config.replace("{lang}", lang) if cfg.hub_config else None
    split = cfg.split.replace("{lang}", lang)
    # The label names rows in messages and fills the published `source` column: never a password of the source.
    shown = redact_text(str(cfg.source))
    label = shown + (f" ({name})" if name else "") + f"[{split}]"
    try:
        ds = datasets.load_dataset(cfg.source, name=name, split=split)
    except Exception as e:  # noqa: BLE001 - datasets raises many types; the user needs one line
        why = f"{type(e).__name__}: {(str(e).splitlines() or [''])[0]}"
        if cfg.format == "auto":
            raise LidrError(f"prompts.source {shown!r} is no folder here, and loading it as a Hub dataset "
                            f"failed ({why})") from e
        raise LidrError(f"cannot load prompt dataset {label}: {why}") from e
    if cfg.lang_field and ds.num_rows and cfg.lang_field not in ds.column_names:
        raise LidrError(f"{label}: no field {cfg.lang_field!r} (prompts.lang_field)")

    def rows() -> Iterator[tuple[str, dict]]:
        # Row by row from the memory-mapped table: a --limit run holds only what it selects.
        for i, row in enumerate(ds):
            if not cfg.lang_field or row.get(cfg.lang_field) == lang:
                yield f"{label} row {i}", row

    return rows(), label


def _source_label(label: str) -> str:
    """The `source` column: a prompt file as `<folder>/<file>` (never an absolute local path: the column is
    published in the `dropped` config), a Hub dataset as its id."""
    path = Path(label)
    return f"{path.parent.name}/{path.name}" if path.is_absolute() or path.exists() else label


@dataclass
class _Language:
    """What was read of one language: texts of the wanted ids, the file's label, and rows with a null text."""

    label: str
    texts: dict[str, str | None] = field(default_factory=dict)
    rows: int = 0
    null_at: list[str] = field(default_factory=list)


def _open_language(cfg: PromptsConfig, lang: str) -> tuple[Iterator[tuple[str, dict]], str]:
    source = resolve_path(cfg.source)
    use_files = cfg.format == "files" or (cfg.format == "auto" and source.is_dir())
    if use_files:
        if not source.is_dir():
            raise LidrError(f"{source}: prompt folder not found (prompts.source)")
        path = _language_file(source, lang)
        return iter_records(path, columns=[cfg.id_field, cfg.text_field]), str(path)
    if cfg.format == "auto" and (source.exists() or str(cfg.source).startswith((".", "/", "~", "lidr:"))):
        raise LidrError(f"{source}: prompt folder not found (prompts.source)")
    return _hub_rows(cfg, lang)


def _read_language(cfg: PromptsConfig, lang: str, order: dict[str, int], need: int | None) -> _Language:
    """Read one language, adding ids to `order` (the union of ids, dominant language first) while it holds
    fewer than `need` (None: all), and keeping the texts of the ids in `order` from position `cfg.offset` on.

    With a limit, reading stops once every wanted id was found, so memory (and most of the time) follows the
    selection, not the file; duplicate ids are then checked among the wanted ids only."""
    rows, label = _open_language(cfg, lang)
    out = _Language(label)
    seen: dict[str, str] = {}
    found = 0
    for where, row in rows:
        out.rows += 1
        if cfg.id_field not in row or row[cfg.id_field] is None:
            raise LidrError(f"{where}: missing field {cfg.id_field!r} (prompts.id_field)")
        if cfg.text_field not in row:
            raise LidrError(f"{where}: missing field {cfg.text_field!r} (prompts.text_field)")
        pid, text = row[cfg.id_field], row[cfg.text_field]
        if not isinstance(pid, (str, int)) or isinstance(pid, bool):
            raise LidrError(f"{where}: field {cfg.id_field!r} must be a string or an integer, got {pid!r}")
        if text is not None and not isinstance(text, str):
            raise LidrError(f"{where}: field {cfg.text_field!r} must be a string, got {type(text).__name__}")
        pid = str(pid)
        if need is None or pid in seen or pid in order or len(order) < need:
            if pid in seen:
                raise LidrError(f"{where}: duplicate id {pid!r} (first seen at {seen[pid]})")
            seen[pid] = where
            position = order.setdefault(pid, len(order))
            if position >= cfg.offset:
                out.texts[pid] = text
                found += 1
                if text is None:
                    out.null_at.append(where)
        if need is not None and len(order) >= need and found >= need - cfg.offset:
            break  # every wanted id is here: the rest of the file cannot change the selection
    if out.rows == 0:
        what = "no prompts in this file (it is empty)" if Path(label).is_file() else f"no rows for {lang!r}"
        raise LidrError(f"{label}: {what}; every item would miss {lang!r}")
    return out


def translation_task_ids(cfg: PromptsConfig) -> set[str]:
    """Ids listed in `prompts.translation_task_ids` (empty when unset)."""
    if not cfg.translation_task_ids:
        return set()
    path = resolve_path(cfg.translation_task_ids)
    ids = set()
    for where, row in iter_records(path):
        value = row.get(cfg.translation_task_id_field)
        if value is None:
            raise LidrError(f"{where}: missing field {cfg.translation_task_id_field!r} "
                            "(prompts.translation_task_id_field)")
        ids.add(str(value))
    return ids


def load_prompts(cfg: PromptsConfig, languages: list[str],
                 warn: Callable[[str], None] | None = None) -> tuple[pa.Table, pa.Table, StageStats]:
    """(prompts, dropped, stats) for `languages` (the dominant one first: its file order orders the items).

    An item is kept when its text is present in every language (and, with `cfg.check_language`, is not
    confidently identified as another of `languages`); the rows of other items are dropped with a reason.
    `warn` receives one line per finding a user should see (null texts, files in another language)."""
    need = cfg.offset + cfg.limit if cfg.limit is not None else None
    order: dict[str, int] = {}
    per_lang = {lang: _read_language(cfg, lang, order, need) for lang in languages}
    selected = list(order)[cfg.offset:need]
    texts = {lang: per_lang[lang].texts for lang in languages}
    notes = warn or (lambda _message: None)

    status: dict[tuple[str, str], str] = {}  # (id, lang) -> drop reason of that row itself
    for lang in languages:
        info = per_lang[lang]
        for pid, text in info.texts.items():
            if text is None:
                status[(pid, lang)] = "null_text"
            elif not text.strip():
                status[(pid, lang)] = "empty_text"
        if info.null_at:
            notes(f"{info.null_at[0]}: field {cfg.text_field!r} is null (prompts.text_field); "
                  f"{len(info.null_at)} row(s) of {info.label} like it dropped as null_text")
    if cfg.check_language:
        _check_languages(cfg, languages, per_lang, selected, status, notes)

    dominant = languages[0]
    flagged = translation_task_ids(cfg)
    pattern = re.compile(cfg.translation_task_pattern) if cfg.translation_task_pattern else None
    sources = {lang: _source_label(per_lang[lang].label) for lang in languages}

    kept, dropped, reasons = [], [], []
    for pid in selected:
        ok = [lang for lang in languages if pid in texts[lang] and (pid, lang) not in status]
        missing = [lang for lang in languages if lang not in ok]
        is_task = pid in flagged or bool(pattern and pattern.search(texts[dominant].get(pid) or ""))
        for lang in languages:
            if pid not in texts[lang]:
                continue
            row = {"prompt_id": pid, "lang": lang, "text": texts[lang][pid] or "", "source": sources[lang],
                   "is_translation_task": is_task}
            if not missing:
                kept.append(row)
            else:
                dropped.append(row)
                reasons.append(status.get((pid, lang)) or f"missing_in:{','.join(missing)}")
    prompts = pa.Table.from_pylist(kept, schema=PROMPTS)
    drops = drop_table(pa.Table.from_pylist(dropped, schema=PROMPTS), STAGE, reasons)
    stats = StageStats(STAGE, rows_in=len(kept) + len(dropped), kept=len(kept))
    for r in reasons:
        stats.dropped[r] = stats.dropped.get(r, 0) + 1
    return prompts, drops, stats.check()


def _check_languages(cfg: PromptsConfig, languages: list[str], per_lang: dict[str, _Language],
                     selected: list[str], status: dict[tuple[str, str], str],
                     notes: Callable[[str], None]) -> None:
    """Mark rows whose text is confidently another of `languages` as `prompt_wrong_language`, and say per file
    which share of its items that was (a `de.jsonl` holding English shows up as one line, not as bad pairs)."""
    keys = [(pid, lang) for lang in languages for pid in selected
            if pid in per_lang[lang].texts and (pid, lang) not in status
            and len(per_lang[lang].texts[pid].strip()) >= cfg.language_min_chars]
    if not keys:
        return
    found = detect_languages([per_lang[lang].texts[pid] for pid, lang in keys], languages)
    judged = Counter(lang for _, lang in keys)
    other = Counter((lang, code) for (_, lang), (code, _) in zip(keys, found) if code not in (lang, UNKNOWN))
    wrong: dict[str, Counter] = {}
    for (pid, lang), (code, score) in zip(keys, found):
        if code in (lang, UNKNOWN):
            continue
        # One prompt needs a confident answer (real files hold a few mixed ones, e.g. a Chinese question about
        # an English sentence); many prompts of a file read as the same other language settle it together.
        n = other[(lang, code)]
        if score >= cfg.language_min_score or (n >= 3 and n >= cfg.language_file_share * judged[lang]):
            status[(pid, lang)] = "prompt_wrong_language"
            wrong.setdefault(lang, Counter())[code] += 1
    for lang, codes in wrong.items():
        total = sum(1 for pid in selected if pid in per_lang[lang].texts)
        n = sum(codes.values())
        detected = ", ".join(f"{code} {k}" for code, k in codes.most_common())
        notes(f"{per_lang[lang].label}: {n} of {total} item(s) ({100 * n / total:.1f}%) are not in {lang!r} "
              f"(detected: {detected}); dropped as prompt_wrong_language (prompts.check_language)")


# -- this stage in the build (the list: order.py)

def _run(run: RunningBuild) -> StageStats:
    recipe = run.recipe
    prompts, drops, stats = load_prompts(recipe.prompts, recipe.all_languages,
                                         warn=lambda m: run.events.warn(f"prompts: {m}"))
    if stats.kept == 0:
        reasons = ", ".join(f"{r} {n}" for r, n in sorted(stats.dropped.items(), key=lambda kv: -kv[1]))
        raise LidrError(f"{recipe.prompts.source}: no complete prompt item in {', '.join(recipe.all_languages)}"
                        + (f" (dropped: {reasons})" if reasons else ""))
    for reason, n in stats.dropped.items():
        run.events.warn(f"prompts: {n} row(s) dropped: {reason}")
    return run.save(STAGE, prompts, drops, stats)


ENTRY = Stage(name=STAGE, output="prompts.parquet",
              settings=lambda r: [section(r, "prompts"), r.dominant_lang, r.languages], run=_run)
