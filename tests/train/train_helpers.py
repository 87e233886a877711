"""Measure what DPO moves: log-probabilities of completions and the implicit reward margin, computed here
independently of TRL (a plain forward pass and log-softmax)."""

from __future__ import annotations


def completion_logps(model, tokenizer, rows: list[dict], side: str) -> list[float]:
    """Sum of log p(completion token | context) for each row: our own computation, independent of TRL's."""
    import torch

    out = []
    for row in rows:
        prompt = tokenizer.apply_chat_template(row["prompt"], tokenize=False, add_generation_prompt=True)
        full = tokenizer.apply_chat_template(row["prompt"] + row[side], tokenize=False)
        p_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        ids = tokenizer(full, add_special_tokens=False)["input_ids"]
        with torch.no_grad():
            logits = model(torch.tensor([ids])).logits[0, :-1].float()
        logps = torch.log_softmax(logits, -1).gather(1, torch.tensor(ids[1:])[:, None])[:, 0]
        out.append(logps[len(p_ids) - 1:].sum().item())
    return out


def mean_margin(model, ref, tokenizer, rows: list[dict]) -> float:
    """Mean implicit reward margin / beta: (log pi(c) - log ref(c)) - (log pi(r) - log ref(r)) over the pairs."""
    pc, pr = completion_logps(model, tokenizer, rows, "chosen"), completion_logps(model, tokenizer, rows, "rejected")
    rc, rr = completion_logps(ref, tokenizer, rows, "chosen"), completion_logps(ref, tokenizer, rows, "rejected")
    return sum((a - b) - (c - d) for a, c, b, d in zip(pc, pr, rc, rr)) / len(rows)
