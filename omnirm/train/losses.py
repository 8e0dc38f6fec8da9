"""Pairwise reward-model losses, computed in fp32 whatever the model's dtype.

All take reward tensors of shape (P,) for P pairs and return a scalar mean loss.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def bradley_terry_loss(
    better: torch.Tensor, worse: torch.Tensor, margin: torch.Tensor | float | None = None
) -> torch.Tensor:
    """−log σ(r_better − r_worse − margin): the Bradley-Terry negative log-likelihood.

    ``margin`` (a per-pair tensor or a constant) asks the better response to win by at least
    that much, as in Llama 2's reward model.
    """
    diff = better.float() - worse.float()
    if margin is not None:
        diff = diff - (margin.float() if isinstance(margin, torch.Tensor) else float(margin))
    return -F.logsigmoid(diff).mean()


def centering_loss(*rewards: torch.Tensor) -> torch.Tensor:
    """Mean squared reward: a small multiple keeps rewards centred on zero (Eisenstein et al.)."""
    stacked = torch.cat([r.float().reshape(-1) for r in rewards])
    return (stacked**2).mean()


def davidson_loss(
    first: torch.Tensor, second: torch.Tensor, tie: torch.Tensor, log_nu: float = 0.0
) -> torch.Tensor:
    """Negative log-likelihood under Davidson's tie model (Davidson 1970).

    With d = r_first − r_second and ν = exp(log_nu):
    P(first wins) = 1 / D, P(tie) = ν e^{−d/2} / D, D = 1 + e^{−d} + ν e^{−d/2}.
    ``tie`` is a bool tensor; non-tie pairs must have the better response first. ν = 1 makes a
    tie most likely (1/3) when the rewards are equal.
    """
    d = first.float() - second.float()
    zero = torch.zeros_like(d)
    log_denominator = torch.logsumexp(torch.stack([zero, -d, log_nu - d / 2]), dim=0)
    log_win = -log_denominator
    log_tie = log_nu - d / 2 - log_denominator
    return -torch.where(tie, log_tie, log_win).mean()


def tie_probability(d: float, log_nu: float = 0.0) -> float:
    """P(tie) under the Davidson model for a reward difference ``d`` (for reporting)."""
    nu = math.exp(log_nu)
    return nu * math.exp(-d / 2) / (1 + math.exp(-d) + nu * math.exp(-d / 2))
