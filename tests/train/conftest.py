"""Fixtures for the trainer tests: a version made by `lidr build` (the demo recipe on the tiny model), once per
session, and a helper measuring the chosen-vs-rejected log-probability margin of a model on pairs."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def built_version(tiny_model_dir: Path, tmp_path_factory) -> Path:
    """`lidr build recipes/demo.yaml` with 4 prompts: 24 pairs in en/es/de/fr, both directions."""
    from lidr_data.cli import main

    work = tmp_path_factory.mktemp("build")
    assert main(["build", str(ROOT / "recipes" / "demo.yaml"), "--model", str(tiny_model_dir), "--workdir",
                 str(work), "--limit", "4", "--no-progress"]) == 0
    return work / "store" / "demo" / "iter-1"


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
