"""Build a tiny random chat model offline, in about a second.

It exists so tests, the demo and benchmarks run with no network, and so users can smoke-test an install.
Its output is noise: a random 2-layer Llama behind a byte-level BPE tokenizer trained on a few sentences in
many languages. head_dim is 64 because vLLM rejects smaller heads.

The folder is built beside its destination under a temporary name and renamed into place when complete, so a
full disk or a kill during creation leaves no half model where a later build would load it; `ensure_tiny_model`
also rebuilds a half folder that earlier versions (which wrote in place) may have left.
"""

from __future__ import annotations

import json
import os
import re
import uuid
from pathlib import Path

from lidr_data.errors import LidrError
from lidr_data.extras import require
from lidr_data.files import disk_full, no_space_error, remove_tree, swap_into_place

# What a complete folder holds (the model's files, then the tokenizer's, written last).
_JSON_FILES = ("config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json")
_WEIGHTS = "model.safetensors"

CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "<|{{ message['role'] }}|>\n{{ message['content'] }}<|end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)

_SPECIAL = ["<|pad|>", "<|begin|>", "<|end|>", "<|system|>", "<|user|>", "<|assistant|>"]

# A few sentences per language so the BPE merges cover common scripts.
_CORPUS = [
    "The quick brown fox jumps over the lazy dog. What is the capital of France? The answer is 42.",
    "El rápido zorro marrón salta sobre el perro perezoso. ¿Cuál es la capital de Francia? La respuesta es 42.",
    "Le renard brun rapide saute par-dessus le chien paresseux. Quelle est la capitale de la France ?",
    "Der schnelle braune Fuchs springt über den faulen Hund. Was ist die Hauptstadt von Frankreich?",
    "Быстрая коричневая лиса прыгает через ленивую собаку. Какая столица Франции? Ответ 42.",
    "敏捷的棕色狐狸跳过了懒狗。法国的首都是哪里？答案是42。",
    "素早い茶色の狐が怠け者の犬を飛び越える。フランスの首都はどこですか？答えは42です。",
    "สุนัขจิ้งจอกสีน้ำตาลกระโดดข้ามสุนัขขี้เกียจ คำตอบคือ 42",
    "দ্রুত বাদামী শিয়াল অলস কুকুরের উপর দিয়ে লাফ দেয়। উত্তর হল ৪২।",
    "Mbweha mwepesi wa kahawia anaruka juu ya mbwa mvivu. Jibu ni 42.",
    "Translate the following text into French. <translation>Bonjour le monde</translation>",
    "You are a helpful assistant. Answer the question step by step. 1234567890 + - * / = ( ) [ ] { }",
]


def is_complete(folder: str | Path) -> bool:
    """Whether `folder` holds a whole tiny model: every file there and readable (a folder cut short by a full
    disk or a kill, as earlier versions could leave, lacks a file or holds a truncated one)."""
    folder = Path(folder)
    try:
        texts = {name: json.loads((folder / name).read_text(encoding="utf-8")) for name in _JSON_FILES}
        if not ((folder / "chat_template.jinja").is_file() or texts["tokenizer_config.json"].get("chat_template")):
            return False
        from safetensors import safe_open

        with safe_open(str(folder / _WEIGHTS), framework="np") as f:  # checks the header against the file size
            f.keys()
    except Exception:  # noqa: BLE001 (missing, truncated or unparseable: not complete)
        return False
    return True


def _temp_dirs(out: Path) -> list[tuple[Path, int]]:
    pattern = re.compile(rf"^\.{re.escape(out.name)}\.tmp-(\d+)-[0-9a-f]+$")
    if not out.parent.is_dir():
        return []
    return [(p, int(m.group(1))) for p in out.parent.iterdir() if (m := pattern.match(p.name)) and p.is_dir()]


def _remove_stale_temp_dirs(out: Path) -> None:
    """The temporary folders of killed builds of `out` (their pid is gone)."""
    for path, pid in _temp_dirs(out):
        if pid != os.getpid():
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                remove_tree(path)
            except PermissionError:
                pass


def ensure_tiny_model(folder: str | Path) -> Path:
    """The random tiny test model (`model: lidr:tiny-model`), built once per work folder; a half folder (from a
    full disk or a kill while an earlier version wrote it in place) is rebuilt."""
    folder = Path(folder)
    if not is_complete(folder):
        build_tiny_model(folder)
    return folder


def build_tiny_model(out_dir: str | Path, hidden_size: int = 128, num_layers: int = 2, vocab_size: int = 600,
                     seed: int = 0) -> Path:
    """Write tokenizer + random LlamaForCausalLM to `out_dir`; load it with the Auto classes.

    Written to a temporary folder beside `out_dir`, then renamed into place: `out_dir` is absent or whole. An
    existing model folder there (it has a config.json) is replaced; a folder holding anything else is refused
    rather than deleted."""
    out = Path(out_dir)
    if out.is_file() or (out.is_dir() and any(out.iterdir()) and not (out / "config.json").is_file()):
        raise LidrError(f"{out}: exists and is not a model folder; choose a new or empty folder for the tiny model")
    out.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temp_dirs(out)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        _write(tmp, hidden_size, num_layers, vocab_size, seed)
        if out.is_dir() and not any(out.iterdir()):
            out.rmdir()  # an empty folder the user made for it
        if out.exists():
            swap_into_place(tmp, out)  # one step on Linux: a reader sees the old folder or the new one
        else:
            tmp.rename(out)
    except Exception as e:
        if not isinstance(e, LidrError) and disk_full(e):
            raise no_space_error(out, f"tiny model {out}") from e
        raise
    finally:
        remove_tree(tmp)
    return out


def _write(out: Path, hidden_size: int, num_layers: int, vocab_size: int, seed: int) -> None:
    require("torch", "tokenizers", "transformers", purpose="building the tiny model")
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    out.mkdir(parents=True)

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=_SPECIAL,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),  # all 256 bytes: any text encodes
        show_progress=False,
    )
    bpe.train_from_iterator(_CORPUS * 4, trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        bos_token="<|begin|>",
        eos_token="<|end|>",
        pad_token="<|pad|>",
        padding_side="left",
        model_max_length=2048,
    )
    tokenizer.chat_template = CHAT_TEMPLATE

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 2,
        num_hidden_layers=num_layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=64,
        max_position_embeddings=2048,
        tie_word_embeddings=True,
        # Wider than the usual 0.02 so the random model emits varied tokens (and sometimes eos), not one token.
        initializer_range=0.4,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    model = LlamaForCausalLM(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
