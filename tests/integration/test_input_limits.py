"""Inputs far over a limit are refused clearly and cheaply: a JSON line over
``--max-record-bytes`` before it is parsed, and a criterion or prompt over ``--max-length`` as
what it is, not as an over-long response."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import make_record, write_jsonl
from tests.integration.test_bench import saved_reward_model


@pytest.fixture(scope="module")
def rm(tiny_qwen2: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return saved_reward_model(tiny_qwen2, tmp_path_factory.mktemp("limits-rm") / "rm")


def builder(folder: Path, truncation: str = "prompt_left", max_length: int = 64) -> Any:
    from transformers import AutoTokenizer

    from omnirm.models.inputs import InputSettings, TextInputBuilder

    tokenizer = AutoTokenizer.from_pretrained(folder)
    return TextInputBuilder(tokenizer, InputSettings(max_length=max_length, truncation=truncation))  # type: ignore[arg-type]


def test_a_huge_criterion_or_prompt_is_named_not_the_response(tiny_qwen2: Path) -> None:
    from omnirm.models.inputs import TooLongError
    from omnirm.records import parse_record

    cut = builder(tiny_qwen2)
    huge = parse_record(make_record("c", criteria="be brief " * 5000))
    with pytest.raises(TooLongError) as caught:
        cut.encode(huge, 1)
    assert caught.value.field == "criteria" and caught.value.record_id == "c"
    assert "the criterion alone has" in str(caught.value) and "over --max-length 64" in str(
        caught.value
    )
    long_prompt = parse_record(make_record("p", prompt="tell me " * 5000))
    assert cut.encode(long_prompt, 0).truncated_tokens > 0  # the prompt is cut, as before
    strict = builder(tiny_qwen2, truncation="error")
    with pytest.raises(TooLongError, match="the prompt alone has") as caught:
        strict.encode(long_prompt, 0)
    assert caught.value.field == "prompt"
    long_reply = parse_record(make_record("r", responses=["ok", "word " * 500]))
    with pytest.raises(TooLongError, match="response 1 needs") as caught:
        cut.encode(long_reply, 1)
    assert caught.value.field == "responses[1]"


def test_a_huge_line_is_a_record_error_before_parsing(
    cli: Callable[..., Any], rm: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import orjson

    from omnirm import jsonl

    path = tmp_path / "in.jsonl"
    huge = make_record("huge", prompt="x" * 3_000_000)
    write_jsonl(path, [make_record("a"), huge, make_record("b")])
    parsed: list[int] = []
    real = orjson.loads
    monkeypatch.setattr(jsonl.orjson, "loads", lambda raw: parsed.append(len(raw)) or real(raw))
    result = cli("score", "--model", str(rm), str(path), "--on-error", "record",
                 "--max-record-bytes", "1000000")  # fmt: skip
    assert result.code == 1
    out = result.jsonl()
    assert [r.get("id") for r in out] == ["a", None, "b"]
    assert out[1]["error"]["line"] == 2
    message = out[1]["error"]["message"]
    assert message.startswith(f"line has {len(json.dumps(huge))} bytes, over the limit of 1000000")
    assert "--max-record-bytes" in message
    assert max(parsed) < 1000  # the huge line was never handed to the parser
    assert len(out[2]["rewards"]) == 2
    assert cli("score", "--model", str(rm), str(path), "--max-record-bytes", "0").code == 2


def test_the_reader_counts_lines_past_a_long_one(tmp_path: Path) -> None:
    from omnirm.errors import RecordError
    from omnirm.jsonl import iter_json_lines

    path = tmp_path / "lines.jsonl"
    path.write_bytes(b'{"a": 1}\n' + b'"' + b"y" * 5000 + b'"\n\n{"b": 2}\n' + b"z" * 11)
    items = list(iter_json_lines(path, max_bytes=10))
    assert [n for n, _ in items] == [1, 2, 4, 5]
    assert items[0][1] == {"a": 1} and items[2][1] == {"b": 2}
    assert isinstance(items[1][1], RecordError) and "line has 5002 bytes" in str(items[1][1])
    assert isinstance(items[3][1], RecordError) and "line has 11 bytes" in str(items[3][1])
    assert [n for n, _ in iter_json_lines(path, max_bytes=None)] == [1, 2, 4, 5]
