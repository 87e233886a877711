"""Build a tiny random chat model offline, in about a second.

It exists so tests, the demo and benchmarks run with no network, and so users can smoke-test an install.
Its output is noise: a random 2-layer Llama behind a byte-level BPE tokenizer trained on a few sentences in
many languages. head_dim is 64 because vLLM rejects smaller heads.
"""

from __future__ import annotations

from pathlib import Path

from lidr_data.extras import require

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


def build_tiny_model(out_dir: str | Path, hidden_size: int = 128, num_layers: int = 2, vocab_size: int = 600,
                     seed: int = 0) -> Path:
    """Write tokenizer + random LlamaForCausalLM to `out_dir`; load it with the Auto classes."""
    require("torch", "tokenizers", "transformers", purpose="building the tiny model")
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)

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
    return out
