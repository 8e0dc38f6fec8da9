from __future__ import annotations

import torch

from omnirm.models.head import ValueHead, gather_last, last_token_index


def test_last_token_for_right_and_left_padding() -> None:
    right = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0]])
    left = torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1], [0, 0, 0, 0, 1]])
    assert last_token_index(right).tolist() == [2, 4, 0]
    assert last_token_index(left).tolist() == [4, 4, 4]


def test_gather_last_ignores_pad_token_values() -> None:
    hidden = torch.arange(2 * 4 * 3, dtype=torch.float32).reshape(2, 4, 3)
    mask = torch.tensor([[1, 1, 0, 0], [0, 1, 1, 1]])
    out = gather_last(hidden, mask)
    assert torch.equal(out[0], hidden[0, 1]) and torch.equal(out[1], hidden[1, 3])


def test_value_head_shape_and_dtype() -> None:
    torch.manual_seed(0)
    head = ValueHead(8, dropout=0.1).eval()
    rewards = head(torch.randn(5, 8, dtype=torch.bfloat16))
    assert rewards.shape == (5,) and rewards.dtype == torch.float32
