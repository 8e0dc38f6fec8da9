"""The value head and where it reads: the last real token of each sequence.

The last real token is found from the attention mask, never from ``pad_token_id`` (pad often
equals eos, and a sequence that ends in eos would then be read one token early). It works for
left and right padding alike.
"""

from __future__ import annotations

import torch
from torch import nn


def last_token_index(attention_mask: torch.Tensor) -> torch.Tensor:
    """Index of the last position whose mask is 1, per row: shape (batch,).

    ``(mask * position).argmax`` picks the largest attended position, whichever side the padding
    is on. A row with no attended token gets index 0.
    """
    positions = torch.arange(attention_mask.shape[-1], device=attention_mask.device)
    return (attention_mask.long() * positions).argmax(dim=-1)


def gather_last(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """The hidden state at each row's last real token: (batch, seq, hidden) → (batch, hidden)."""
    index = last_token_index(attention_mask)
    return hidden[torch.arange(hidden.shape[0], device=hidden.device), index]


class ValueHead(nn.Module):
    """Dropout and a linear map from a hidden state to one scalar reward (Omni-Reward's head)."""

    def __init__(self, hidden_size: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.score = nn.Linear(hidden_size, 1, bias=True)
        nn.init.normal_(self.score.weight, std=1.0 / (hidden_size + 1) ** 0.5)
        nn.init.zeros_(self.score.bias)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        """(batch, hidden) → (batch,) rewards, computed in fp32 (also under bf16 autocast)."""
        with full_precision(hidden):
            features = self.dropout(hidden).to(self.score.weight.dtype)
            return self.score(features).squeeze(-1).float()


def full_precision(tensor: torch.Tensor) -> torch.autocast:
    """Autocast off on ``tensor``'s device: under bf16 mixed precision a reward read from a bf16
    linear layer has 8 bits of mantissa (steps of 1/128 near 1), too coarse for a margin."""
    return torch.autocast(tensor.device.type, enabled=False)
