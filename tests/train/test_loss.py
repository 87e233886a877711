"""The paper's objective: DPO (sigmoid) + alpha * NLL of the chosen side, normalized per sequence.

Checked against a hand computation on a batch whose chosen sides have very different lengths (where the paper's
per-sequence mean and TRL's token mean differ), with the real DPOTrainer collator and forward pass on the tiny model.
"""

from __future__ import annotations

import math

import pytest
import torch
from datasets import Dataset
from train_helpers import completion_logps
from transformers import AutoTokenizer
from trl import DPOConfig

from lidr_data.train.loss import LidrDPOTrainer, sequence_nll, token_nll

PAIRS = [
    {"prompt": [{"role": "user", "content": "What is the capital of France?"}],
     "chosen": [{"role": "assistant", "content": "Paris."}],
     "rejected": [{"role": "assistant", "content": "Berlin, I think."}]},
    {"prompt": [{"role": "user", "content": "Give three tips for staying healthy."}],
     "chosen": [{"role": "assistant", "content": "Drink enough water, sleep at least seven hours every night, "
                                                 "and take a long walk outside every single day of the week."}],
     "rejected": [{"role": "assistant", "content": "Eat."}]},
]


def _counts(tokenizer, side: str) -> list[int]:
    n = []
    for row in PAIRS:
        p = tokenizer.apply_chat_template(row["prompt"], tokenize=False, add_generation_prompt=True)
        f = tokenizer.apply_chat_template(row["prompt"] + row[side], tokenize=False)
        n.append(len(tokenizer(f, add_special_tokens=False)["input_ids"]) -
                 len(tokenizer(p, add_special_tokens=False)["input_ids"]))
    return n


def test_nll_helpers_on_a_padded_batch():
    logps = torch.tensor([[-1.0, -3.0, 0.0, 0.0], [-2.0, -2.0, -2.0, -6.0]])
    mask = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1]])
    assert sequence_nll(logps, mask).tolist() == [2.0, 3.0]  # per sequence, then the caller averages: 2.5
    assert token_nll(logps, mask).item() == pytest.approx(16 / 6)  # TRL's token mean over the batch


@pytest.mark.parametrize("normalization", ["sequence", "token"])
def test_loss_matches_a_hand_computation(tiny_model_dir, tmp_path, normalization):
    alpha = 0.7
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    args = DPOConfig(output_dir=str(tmp_path / "o"), bf16=False, gradient_checkpointing=False, use_cpu=True,
                     per_device_train_batch_size=2, max_length=512, report_to=[], beta=0.1)
    trainer = LidrDPOTrainer(model=str(tiny_model_dir), args=args, train_dataset=Dataset.from_list(PAIRS),
                             processing_class=tokenizer, nll_weight=alpha, nll_normalization=normalization)
    assert args.loss_type == (["sigmoid"] if normalization == "sequence" else ["sigmoid", "sft"])
    batch = next(iter(trainer.get_train_dataloader()))
    trainer.model.train()  # as in a training step (TRL has switched dropout off)
    loss = trainer.compute_loss(trainer.model, batch).item()

    # By hand: before any step the policy is the reference, so the DPO term is -log sigmoid(0) = log 2.
    model = trainer.model.eval()
    sums = completion_logps(model, tokenizer, PAIRS, "chosen")
    counts = _counts(tokenizer, "chosen")
    assert counts[0] * 4 < counts[1]  # the chosen sides differ a lot in length
    per_sequence = sum(-s / n for s, n in zip(sums, counts)) / len(PAIRS)
    token_mean = -sum(sums) / sum(counts)
    expected = math.log(2) + alpha * (per_sequence if normalization == "sequence" else token_mean)
    other = math.log(2) + alpha * (token_mean if normalization == "sequence" else per_sequence)
    assert loss == pytest.approx(expected, rel=1e-4)
    assert abs(expected - other) > 50 * abs(loss - expected) + 1e-3  # the two normalizations are told apart
    # The NLL term is logged on its own, beside TRL's reward metrics.
    logged = trainer._metrics["train"]
    assert logged["nll"][-1] == pytest.approx(per_sequence if normalization == "sequence" else token_mean, rel=1e-4)
    assert logged["dpo_loss"][-1] == pytest.approx(math.log(2), rel=1e-4)
    assert "rewards/margins" in logged
