"""Record validation on arbitrary JSON: a Record that round-trips, or a RecordError."""

from __future__ import annotations

from typing import Any

from hypothesis import given

from omnirm.errors import RecordError
from omnirm.jsonl import dumps
from omnirm.records import content_text, parse_record
from tests.property.strategies import json_values, record_like, valid_records


def _check(obj: Any) -> None:
    try:
        record = parse_record(obj)
    except RecordError as error:
        assert str(error) and error.to_dict()["message"]
        return
    assert record.to_dict() == obj  # the documented round trip
    dumps(record.to_dict())
    # what scoring and the converters read off a valid record never fails
    assert record.resolved_task
    list(record.media_parts())
    record.prompt_parts()
    record.prompt_modalities()
    record.response_modalities()
    for index in range(record.num_responses):
        content_text(record.responses[index])


@given(json_values)
def test_any_json_value(obj: Any) -> None:
    _check(obj)


@given(record_like)
def test_record_shaped_objects(obj: dict[str, Any]) -> None:
    _check(obj)


@given(valid_records())
def test_valid_records_are_accepted(obj: dict[str, Any]) -> None:
    assert parse_record(obj).to_dict() == obj
