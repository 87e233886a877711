"""Synthetic run folders in the published schema (pairs.parquet, dropped.parquet, recipe.yaml, stats.json).

For tests and benchmarks of the dataset commands without running a model: both LIDR directions, several
languages, language-ID tags (some deliberately disagreeing), and drops from several stages with named reasons.
Texts come from a small built-in sample, or from caller-supplied texts per language (e.g. real prompts and
answers from shared/data in the benchmark). Test support, not part of the package: tests import it as
`synthetic` (tests/ is on their path), benchmarks run with `PYTHONPATH=tests`.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Mapping, Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from lidr_data.build.recipe import Recipe, from_dict
from lidr_data.schema import DROP_COLUMNS, PAIR_COLUMNS, TAG_COLUMNS

PAIRS_SCHEMA = pa.schema(list(PAIR_COLUMNS) + list(TAG_COLUMNS))
DROPPED_SCHEMA = pa.schema(list(PAIRS_SCHEMA) + list(DROP_COLUMNS))

SAMPLE_TEXTS: dict[str, dict[str, list[str]]] = {
    "en": {
        "prompt": ["Give three tips for staying healthy.", "How can we reduce air pollution?",
                   "Explain why the sky is blue.", "Write a short poem about the sea."],
        "answer": ["Drink enough water, sleep at least seven hours and take a walk every day.",
                   "Use public transport, plant trees and replace coal power with wind and solar energy.",
                   "Sunlight is scattered by the molecules of the air, and blue light is scattered the most.",
                   "The sea is wide and grey, it sings all night and sleeps all day."],
    },
    "de": {
        "prompt": ["Geben Sie drei Tipps, um gesund zu bleiben.", "Wie können wir die Luftverschmutzung reduzieren?",
                   "Erklären Sie, warum der Himmel blau ist.", "Schreiben Sie ein kurzes Gedicht über das Meer."],
        "answer": ["Trinken Sie genug Wasser, schlafen Sie mindestens sieben Stunden und gehen Sie jeden Tag spazieren.",
                   "Nutzen Sie öffentliche Verkehrsmittel, pflanzen Sie Bäume und ersetzen Sie Kohlestrom durch Wind.",
                   "Das Sonnenlicht wird von den Molekülen der Luft gestreut, und blaues Licht wird am stärksten gestreut.",
                   "Das Meer ist weit und grau, es singt die ganze Nacht und schläft den ganzen Tag."],
    },
    "fr": {
        "prompt": ["Donnez trois conseils pour rester en bonne santé.", "Comment pouvons-nous réduire la pollution de l'air ?",
                   "Expliquez pourquoi le ciel est bleu.", "Écrivez un court poème sur la mer."],
        "answer": ["Buvez assez d'eau, dormez au moins sept heures et marchez tous les jours.",
                   "Prenez les transports en commun, plantez des arbres et remplacez le charbon par l'éolien.",
                   "La lumière du soleil est diffusée par les molécules de l'air, et la lumière bleue l'est davantage.",
                   "La mer est large et grise, elle chante toute la nuit et dort toute la journée."],
    },
    "es": {
        "prompt": ["Da tres consejos para mantenerse sano.", "¿Cómo podemos reducir la contaminación del aire?",
                   "Explica por qué el cielo es azul.", "Escribe un poema corto sobre el mar."],
        "answer": ["Bebe suficiente agua, duerme al menos siete horas y camina todos los días.",
                   "Usa el transporte público, planta árboles y sustituye el carbón por energía eólica.",
                   "La luz del sol se dispersa en las moléculas del aire, y la luz azul es la que más se dispersa.",
                   "El mar es ancho y gris, canta toda la noche y duerme todo el día."],
    },
}


def _msgs(role: str, text: str) -> list[dict]:
    return [{"role": role, "content": text}]


def _h(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:16]


def make_run(
    folder: str | Path,
    n_prompts: int = 8,
    langs: Sequence[str] = ("de", "fr", "es"),
    iteration: int = 1,
    name: str = "demo-lidr",
    texts: Mapping[str, Mapping[str, Sequence[str]]] | None = None,
    model: str = "org/tiny-chat",
    revision: str = "0123abcd",
    license: str = "cc-by-nc-4.0",
    seed: int = 0,
    batch_rows: int = 50_000,
) -> Path:
    """Write a run folder `folder` with pairs for `n_prompts` prompts in `langs` (+ English) and drops.

    Per prompt and language L: one `from_dominant` pair (lang L) and one `to_dominant` pair (lang en, pivot L).
    About 1 in 7 pairs gets a side in the wrong language, lengths vary, and a share is moved to `dropped` with
    reasons from the translate, filter and dedup stages. Streams in batches, so millions of pairs fit in memory.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    texts = texts or SAMPLE_TEXTS
    rng = random.Random(seed)
    dom = "en"
    stats = {s: {"stage": s, "rows_in": 0, "kept": 0, "dropped": {}} for s in ("translate", "filter", "dedup")}
    pw = pq.ParquetWriter(folder / "pairs.parquet", PAIRS_SCHEMA, compression="zstd")
    dw = pq.ParquetWriter(folder / "dropped.parquet", DROPPED_SCHEMA, compression="zstd")
    kept: list[dict] = []
    dropped: list[dict] = []
    last_kept_id: str | None = None

    def flush(force: bool = False) -> None:
        if kept and (force or len(kept) >= batch_rows):
            pw.write_table(pa.Table.from_pylist(kept, schema=PAIRS_SCHEMA))
            kept.clear()
        if dropped and (force or len(dropped) >= batch_rows):
            dw.write_table(pa.Table.from_pylist(dropped, schema=DROPPED_SCHEMA))
            dropped.clear()

    def pick(lang: str, kind: str, i: int) -> str:
        pool = texts[lang][kind]
        return pool[i % len(pool)]

    for i in range(n_prompts):
        pid = f"p-{i}"
        for L in langs:
            for direction in ("from_dominant", "to_dominant"):
                lang = L if direction == "from_dominant" else dom
                other = dom if direction == "from_dominant" else L
                prompt = pick(lang, "prompt", i)
                # from_dominant: chosen = en answer translated into L; to_dominant: chosen = the en answer.
                chosen = pick(lang, "answer", i)
                rejected = pick(lang, "answer", i + 1 + rng.randrange(3))
                if len(texts[lang]["answer"]) > 1 and rejected == chosen:
                    rejected = pick(lang, "answer", i + 1)
                suffix = f" ({pid}/{L}/{direction})"
                chosen, rejected = chosen + suffix, rejected + suffix
                chosen_lang, rejected_lang = lang, lang
                roll = rng.random()
                if roll < 0.08:
                    rejected_lang = other  # the answer in the other language: the shortcut DPO loves
                    rejected = pick(other, "answer", i) + suffix
                elif roll < 0.14:
                    chosen_lang = "unknown"
                elif roll < 0.18:  # a truncated or partial side: an extreme length ratio
                    rejected = rejected[: max(12, len(rejected) // 5)]
                elif roll < 0.21:
                    chosen = " ".join([chosen] * 4)
                row = {
                    "prompt": _msgs("user", prompt), "chosen": _msgs("assistant", chosen),
                    "rejected": _msgs("assistant", rejected),
                    "pair_id": _h(prompt, chosen, rejected), "prompt_id": pid, "lang": lang,
                    "direction": direction, "pivot_lang": other, "iteration": iteration,
                    "generator_model": model, "generator_revision": revision,
                    "is_translation_task": False, "translation_ok": True,
                    "chosen_finish_reason": "stop", "rejected_finish_reason": "stop",
                    "prompt_lang": lang, "prompt_lang_score": round(0.9 + 0.1 * rng.random(), 3),
                    "chosen_lang": chosen_lang,
                    "chosen_lang_score": round(0.3 if chosen_lang == "unknown" else 0.7 + 0.3 * rng.random(), 3),
                    "rejected_lang": rejected_lang, "rejected_lang_score": round(0.6 + 0.4 * rng.random(), 3),
                    "chosen_chars": len(chosen), "rejected_chars": len(rejected),
                    "content_hash": _h("c", prompt, chosen, rejected),
                }
                # Drops, in stage order: translate, filter, dedup.
                stats["translate"]["rows_in"] += 1
                r = rng.random()
                if r < 0.05:
                    row.update(translation_ok=False, chosen=None, chosen_chars=None, chosen_lang=None,
                               chosen_lang_score=None)
                    _drop(dropped, stats, row, "translate", "translation_failed")
                    flush()
                    continue
                stats["translate"]["kept"] += 1
                stats["filter"]["rows_in"] += 1
                if rejected_lang != lang or chosen_lang != lang:
                    if r < 0.12:  # most mismatches are filtered, a few stay in (so inspect has something to show)
                        _drop(dropped, stats, row, "filter", "wrong_language")
                        flush()
                        continue
                elif r < 0.09:
                    row["rejected_finish_reason"] = "length"
                    _drop(dropped, stats, row, "filter", "truncated")
                    flush()
                    continue
                stats["filter"]["kept"] += 1
                stats["dedup"]["rows_in"] += 1
                if last_kept_id is not None and r > 0.97:
                    _drop(dropped, stats, dict(row), "dedup", "exact_duplicate", duplicate_of=last_kept_id)
                    flush()
                    continue
                stats["dedup"]["kept"] += 1
                kept.append(row)
                last_kept_id = row["pair_id"]
                flush()
    flush(force=True)
    pw.close()
    dw.close()
    # Written through the real Recipe type, as a build writes it: the run folder holds only what a build can make.
    recipe = from_dict(Recipe, {
        "name": name, "model": model, "revision": revision, "backend": "transformers", "dominant_lang": dom,
        "languages": list(langs), "iteration": iteration, "license": license,
        "prompts": {"source": "synthetic", "limit": n_prompts},
        "generation": {"temperature": 0.0, "repetition_penalty": 1.1, "max_new_tokens": 512},
    }, "synthetic recipe")
    (folder / "recipe.yaml").write_text(recipe.to_yaml(), encoding="utf-8")
    (folder / "stats.json").write_text(json.dumps(list(stats.values()), indent=2), encoding="utf-8")
    return folder


def _drop(dropped: list[dict], stats: dict, row: dict, stage: str, reason: str, duplicate_of: str | None = None) -> None:
    dropped.append({**row, "stage": stage, "reason": reason, "duplicate_of": duplicate_of})
    stats[stage]["dropped"][reason] = stats[stage]["dropped"].get(reason, 0) + 1
