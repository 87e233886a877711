"""Prompt sources: parallel prompts (one text per language per item id) from a folder of per-language files
or a Hub dataset, aligned by id, with translation-task flags.

Bad files are errors naming the file, row and field (a malformed line, a missing field, a duplicate id); items
that are incomplete (an id missing, or empty, in some language) are dropped with a reason at stage `prompts`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa

from lidr_data.errors import LidrError
from lidr_data.readers import SUFFIXES, read_records, row_location
from lidr_data.recipe import PromptsConfig, resolve_path
from lidr_data.stages.schema import PROMPTS, StageStats
from lidr_data.stages.tables import drop_table

STAGE = "prompts"


def _language_file(folder: Path, lang: str) -> Path:
    found = [folder / f"{lang}{suffix}" for suffix in SUFFIXES if (folder / f"{lang}{suffix}").is_file()]
    if not found:
        raise LidrError(f"{folder}: no prompt file for language {lang!r} "
                        f"(expected {', '.join(lang + s for s in SUFFIXES)})")
    if len(found) > 1:
        raise LidrError(f"{folder}: several prompt files for language {lang!r} ({', '.join(p.name for p in found)})")
    return found[0]


def _hub_rows(cfg: PromptsConfig, lang: str) -> tuple[list[dict], Callable[[int], str], str]:
    """Rows of one language from a Hub dataset (or a local folder in the Hub layout)."""
    try:
        import datasets
    except ImportError as e:  # pragma: no cover - datasets is a core dependency
        raise LidrError("reading a Hub prompt source needs the `datasets` package") from e
    name = cfg.hub_config.replace("{lang}", lang) if cfg.hub_config else None
    split = cfg.split.replace("{lang}", lang)
    label = f"{cfg.source}" + (f" ({name})" if name else "") + f"[{split}]"
    try:
        ds = datasets.load_dataset(cfg.source, name=name, split=split)
    except Exception as e:  # noqa: BLE001 - datasets raises many types; the user needs one line
        why = f"{type(e).__name__}: {(str(e).splitlines() or [''])[0]}"
        if cfg.format == "auto":
            raise LidrError(f"prompts.source {cfg.source!r} is no folder here, and loading it as a Hub dataset "
                            f"failed ({why})") from e
        raise LidrError(f"cannot load prompt dataset {label}: {why}") from e
    rows = ds.to_list()
    index = list(range(len(rows)))  # positions in the dataset, for error messages
    if cfg.lang_field:
        if rows and cfg.lang_field not in rows[0]:
            raise LidrError(f"{label}: no field {cfg.lang_field!r} (prompts.lang_field)")
        index = [i for i, r in enumerate(rows) if r.get(cfg.lang_field) == lang]
        rows = [rows[i] for i in index]
    return rows, lambda i: f"{label} row {index[i]}", label


def _read_language(cfg: PromptsConfig, lang: str) -> tuple[list[tuple[str, str]], str]:
    """[(id, text)] of one language in file order, and the source label."""
    source = resolve_path(cfg.source)
    use_files = cfg.format == "files" or (cfg.format == "auto" and source.is_dir())
    if use_files:
        if not source.is_dir():
            raise LidrError(f"{source}: prompt folder not found (prompts.source)")
        path = _language_file(source, lang)
        rows, where, label = read_records(path), (lambda i: row_location(path, i)), str(path)
    elif cfg.format == "auto" and (source.exists() or str(cfg.source).startswith((".", "/", "~", "lidr:"))):
        raise LidrError(f"{source}: prompt folder not found (prompts.source)")
    else:
        rows, where, label = _hub_rows(cfg, lang)
    items, seen = [], {}
    for i, row in enumerate(rows):
        if cfg.id_field not in row or row[cfg.id_field] is None:
            raise LidrError(f"{where(i)}: missing field {cfg.id_field!r} (prompts.id_field)")
        if cfg.text_field not in row:
            raise LidrError(f"{where(i)}: missing field {cfg.text_field!r} (prompts.text_field)")
        pid, text = row[cfg.id_field], row[cfg.text_field]
        if not isinstance(pid, (str, int)) or isinstance(pid, bool):
            raise LidrError(f"{where(i)}: field {cfg.id_field!r} must be a string or an integer, got {pid!r}")
        if text is not None and not isinstance(text, str):
            raise LidrError(f"{where(i)}: field {cfg.text_field!r} must be a string, got {type(text).__name__}")
        pid = str(pid)
        if pid in seen:
            raise LidrError(f"{where(i)}: duplicate id {pid!r} (first seen at {seen[pid]})")
        seen[pid] = where(i)
        items.append((pid, text or ""))
    return items, label


def translation_task_ids(cfg: PromptsConfig) -> set[str]:
    """Ids listed in `prompts.translation_task_ids` (empty when unset)."""
    if not cfg.translation_task_ids:
        return set()
    path = resolve_path(cfg.translation_task_ids)
    ids = set()
    for i, row in enumerate(read_records(path)):
        value = row.get(cfg.translation_task_id_field)
        if value is None:
            raise LidrError(f"{row_location(path, i)}: missing field {cfg.translation_task_id_field!r} "
                            "(prompts.translation_task_id_field)")
        ids.add(str(value))
    return ids


def load_prompts(cfg: PromptsConfig, languages: list[str]) -> tuple[pa.Table, pa.Table, StageStats]:
    """(prompts, dropped, stats) for `languages` (the dominant one first: its file order orders the items)."""
    per_lang = {lang: _read_language(cfg, lang) for lang in languages}

    order = list(dict.fromkeys(pid for lang in languages for pid, _ in per_lang[lang][0]))
    selected = order[cfg.offset:]
    if cfg.limit is not None:
        selected = selected[: cfg.limit]
    position = {pid: i for i, pid in enumerate(selected)}
    texts = {lang: {pid: t for pid, t in per_lang[lang][0] if pid in position} for lang in languages}

    dominant = languages[0]
    flagged = translation_task_ids(cfg)
    pattern = re.compile(cfg.translation_task_pattern) if cfg.translation_task_pattern else None

    kept, dropped, reasons = [], [], []
    for pid in selected:
        present = [lang for lang in languages if texts[lang].get(pid, "").strip()]
        missing = [lang for lang in languages if lang not in present]
        is_task = pid in flagged or bool(
            pattern and pattern.search(texts[dominant].get(pid, "")))
        for lang in languages:
            if pid not in texts[lang]:
                continue
            row = {"prompt_id": pid, "lang": lang, "text": texts[lang][pid], "source": per_lang[lang][1],
                   "is_translation_task": is_task}
            if not missing:
                kept.append(row)
            else:
                dropped.append(row)
                reasons.append("empty_text" if lang not in present else f"missing_in:{','.join(missing)}")
    prompts = pa.Table.from_pylist(kept, schema=PROMPTS)
    drops = drop_table(pa.Table.from_pylist(dropped, schema=PROMPTS), STAGE, reasons)
    stats = StageStats(STAGE, rows_in=len(kept) + len(dropped), kept=len(kept))
    for r in reasons:
        stats.dropped[r] = stats.dropped.get(r, 0) + 1
    return prompts, drops, stats.check()
