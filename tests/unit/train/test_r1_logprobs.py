"""GRPO's token log-probabilities: only the completion's positions go through the LM head, with
the same values as reading them off the logits of the whole sequence."""

from __future__ import annotations

import torch
from transformers import Qwen2Config, Qwen2ForCausalLM

from omnirm.train.r1.policy import completion_logprobs


def test_completion_logprobs_equal_the_whole_sequence_reading() -> None:
    torch.manual_seed(0)
    config = Qwen2Config(
        vocab_size=300,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
    )
    net = Qwen2ForCausalLM(config).eval()
    sequences = torch.randint(0, 300, (3, 20))
    attention = torch.ones_like(sequences)
    attention[0, :4] = 0  # a left-padded prompt
    start = 12
    got = completion_logprobs(net, sequences, attention, start)
    positions = (attention.cumsum(-1) - 1).clamp(min=0)
    logits = net(input_ids=sequences, attention_mask=attention, position_ids=positions).logits
    whole = torch.log_softmax(logits[:, start - 1 : -1].float(), -1)
    expected = whole.gather(-1, sequences[:, start:].unsqueeze(-1)).squeeze(-1)
    assert got.shape == (3, 20 - start)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-6)
