"""DPO (sigmoid) plus the paper's NLL term on the chosen response.

LIDR trains with the Iterative RPO objective (the authors used LLaMA-Factory's `pref_ftx`):

    L = DPO_sigmoid(beta) + alpha * mean_over_pairs( -log p(chosen | prompt) / |chosen| )

i.e. the NLL is normalized per sequence, then averaged over pairs. TRL's own `sft` loss term is
`-mean(chosen token log-probs)` over all chosen tokens of the batch (a token mean), which weighs long chosen
answers more when lengths differ. `nll_normalization="token"` uses TRL's term unchanged
(`loss_type=["sigmoid", "sft"]`); `"sequence"` (the default) is this small override: TRL computes the DPO
term alone and `LidrDPOTrainer` adds the per-sequence NLL from the log-probs of the same forward pass.
Either way the NLL term is logged on its own as `nll` (and the DPO part as `dpo_loss`).
"""

from __future__ import annotations

import torch
from trl import DPOTrainer

NORMALIZATIONS = ("sequence", "token")


def sequence_nll(per_token_logps: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per-sequence NLL: `-sum(logp * mask) / sum(mask)` for each row (rows with no token give 0)."""
    mask = mask.to(per_token_logps.dtype)
    return -(per_token_logps * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)


def token_nll(per_token_logps: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """TRL's `sft` term: the mean NLL over every masked token of the batch."""
    return -per_token_logps[mask.bool()].mean()


class _FirstCall:
    """Calls the model and keeps the outputs of the first call (the policy forward of `_compute_loss`)."""

    def __init__(self, model):
        self.model, self.outputs = model, None

    def __call__(self, *args, **kwargs):
        out = self.model(*args, **kwargs)
        if self.outputs is None:
            self.outputs = out
        return out


class LidrDPOTrainer(DPOTrainer):
    """`DPOTrainer` with the NLL term of LIDR / Iterative RPO, normalized per sequence or per token.

    The constructor sets `args.loss_type`/`loss_weights` for the chosen normalization: `["sigmoid"]` plus our
    term for "sequence", TRL's `["sigmoid", "sft"]` with weights `[1, nll_weight]` for "token".
    """

    def __init__(self, *args, nll_weight: float = 1.0, nll_normalization: str = "sequence", **kwargs):
        if nll_normalization not in NORMALIZATIONS:
            raise ValueError(f"nll_normalization must be one of {NORMALIZATIONS}, got {nll_normalization!r}")
        train_args = kwargs.get("args")
        if train_args is not None:
            if nll_normalization == "token" and nll_weight:
                train_args.loss_type, train_args.loss_weights = ["sigmoid", "sft"], [1.0, float(nll_weight)]
            else:
                train_args.loss_type, train_args.loss_weights = ["sigmoid"], [1.0]
        self.nll_weight, self.nll_normalization = float(nll_weight), nll_normalization
        super().__init__(*args, **kwargs)

    def _compute_loss(self, model, inputs, return_outputs):
        recorder = _FirstCall(model)
        result = super()._compute_loss(recorder, inputs, return_outputs)
        loss, outputs = result if return_outputs else (result, None)
        mode = "train" if self.model.training else "eval"
        # The same slicing as TRL: per-token log-probs of the shifted sequence; the batch is [chosen; rejected].
        shift_mask = inputs["completion_mask"][..., 1:]
        per_token_logps = recorder.outputs.log_probs[:, -shift_mask.size(1):]
        chosen_logps, _ = per_token_logps.chunk(2, dim=0)
        chosen_mask, _ = shift_mask.chunk(2, dim=0)
        if self.nll_normalization == "sequence":
            nll = sequence_nll(chosen_logps, chosen_mask).mean()
            dpo_loss = loss.detach()
            if self.nll_weight:
                loss = loss + self.nll_weight * nll
        else:  # TRL already added weight * token_nll to the loss
            nll = token_nll(chosen_logps, chosen_mask)
            dpo_loss = loss.detach() - self.nll_weight * nll.detach()
        gather = self.accelerator.gather_for_metrics
        self._metrics[mode]["nll"].append(gather(nll.detach()).mean().item())
        self._metrics[mode]["dpo_loss"].append(gather(dpo_loss).mean().item())
        return (loss, outputs) if return_outputs else loss
