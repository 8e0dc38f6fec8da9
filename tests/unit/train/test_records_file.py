"""Training records kept on disk (byte offsets) and the memory estimate printed before training."""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from types import SimpleNamespace

import torch

from omnirm.jsonl import iter_json_lines_at
from omnirm.records import InvalidRecord, iter_records_at
from omnirm.train.memory import layers_with_gradients, memory_estimate
from omnirm.train.records_file import RecordFile


def test_records_come_back_from_their_byte_offsets(tmp_path: Path) -> None:
    rows = [
        {"id": f"r{i}", "prompt": "é" * i, "responses": ["a", "b"], "preference": 0}
        for i in range(5)
    ]
    lines = [json.dumps(r, ensure_ascii=False) for r in rows]
    lines.insert(2, "x" * 300)  # over the byte limit: refused unread, offsets still right
    lines.insert(4, "")
    path = tmp_path / "train.jsonl"
    path.write_text("\n".join(lines) + "\n")
    store = RecordFile(path)
    for line, offset, item in iter_records_at(path, max_bytes=200):
        if isinstance(item, InvalidRecord):
            assert line == 3 and "over the limit" in str(item.error)
            continue
        store.add(offset, line)
    assert len(store) == 5
    assert [store[i].id for i in range(5)] == [f"r{i}" for i in range(5)]
    assert store[3].prompt == "é" * 3 and list(store.lengths) == [1, 2, 4, 6, 7]
    clone = pickle.loads(pickle.dumps(store))  # what a data-loader worker gets
    assert clone[4].id == "r4"
    store.close()
    offsets = [offset for _, offset, _ in iter_json_lines_at(path)]
    raw = path.read_bytes()
    assert all(offset == 0 or raw[offset - 1 : offset] == b"\n" for offset in offsets)


def test_the_memory_estimate_counts_what_checkpointing_saves() -> None:
    text = SimpleNamespace(
        hidden_size=576, intermediate_size=1536, num_attention_heads=9, num_hidden_layers=30
    )
    model = torch.nn.Linear(10, 10)
    model.weight.requires_grad_(False)
    model.backbone = SimpleNamespace(config=text)  # type: ignore[assignment]
    loader = SimpleNamespace(sampler=None)
    lengths = [100, 500, 320]

    def estimate(checkpointing: bool) -> int:
        config = SimpleNamespace(batch_size=8, gradient_checkpointing=checkpointing, bf16=None)
        result = memory_estimate(model, loader, lengths, config)
        assert result.weights == 110 * 4 and result.trainable_state == 10 * 12
        assert result.batch_tokens == 3 * 500
        return result.activations

    tokens, scores = 1500, 3 * 9 * 500 * 500
    per_layer = 4 * (tokens * (10 * 576 + 4 * 1536) + 2 * scores)
    assert estimate(False) == 30 * per_layer
    assert estimate(True) == 30 * 4 * tokens * 576 + per_layer
    assert estimate(True) < estimate(False) / 4


def test_the_memory_estimate_counts_only_layers_the_backward_runs_through() -> None:
    class Backbone(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = torch.nn.Module()
            self.model.layers = torch.nn.ModuleList(torch.nn.Linear(2, 2) for _ in range(4))
            self.model.embed_tokens = torch.nn.Embedding(3, 2)

    model = torch.nn.Module()
    model.backbone = Backbone()
    model.head = torch.nn.Linear(2, 1)
    model.requires_grad_(False)
    model.head.requires_grad_(True)
    assert layers_with_gradients(model, 4) == 0  # a head on frozen layers: no backward through
    model.backbone.model.layers[2].requires_grad_(True)
    assert layers_with_gradients(model, 4) == 2  # the last two layers (LoRA on the last ones)
    model.backbone.model.embed_tokens.requires_grad_(True)
    assert layers_with_gradients(model, 4) == 4  # something below the layers trains: all of them
