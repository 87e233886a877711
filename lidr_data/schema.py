"""The column contract between the build's stages and every reader of a version (DESIGN.md section 2).

Stage tables live as Parquet files in the run folder. `pairs_raw` carries flat text columns next to the
conversational ones because per-text work (language ID, MinHash, lengths) reads them; the published `pairs`
table keeps only the conversational columns (the `lidr sql` views re-derive flat text for users).
"""

from __future__ import annotations

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
