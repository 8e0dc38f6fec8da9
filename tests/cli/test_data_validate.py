from __future__ import annotations

import json

from tests.conftest import make_record


def test_valid_file_exits_0_with_summary(cli, jsonl_file) -> None:  # type: ignore[no-untyped-def]
    path = jsonl_file([make_record("a"), make_record("b", preference="tie")])
    result = cli("data", "validate", str(path))
    assert result.code == 0
    assert result.stdout == ""
    assert "2 records: all valid" in result.stderr


def test_every_problem_is_reported_with_location(cli, jsonl_file) -> None:  # type: ignore[no-untyped-def]
    path = jsonl_file(
        [
            make_record("a"),
            make_record("b", responses=["x", "y", "z"], preference="tie"),
            make_record("a"),
            "not an object",
        ]
    )
    result = cli("data", "validate", str(path))
    assert result.code == 1
    assert f"{path}:2: record 'b': preference: 'tie' needs exactly 2 responses" in result.stderr
    assert f"{path}:3: record 'a': id: duplicate id (first seen on line 1)" in result.stderr
    assert f"{path}:4: expected a JSON object, got string" in result.stderr
    assert "4 records: 1 valid, 3 invalid" in result.stderr


def test_fail_stops_at_the_first_error(cli, jsonl_file) -> None:  # type: ignore[no-untyped-def]
    path = jsonl_file([make_record("a", preference=9), make_record("b", preference=9)])
    result = cli("data", "validate", "--on-error", "fail", str(path))
    assert result.code == 1
    assert result.stderr.count("out of range") == 1


def test_record_mode_writes_bad_records_to_stdout(cli, jsonl_file) -> None:  # type: ignore[no-untyped-def]
    path = jsonl_file([make_record("a"), make_record("b", preference=9, keep="me")])
    result = cli("data", "validate", "--on-error", "record", str(path))
    assert result.code == 1
    (bad,) = result.jsonl()
    assert bad["id"] == "b" and bad["keep"] == "me"
    assert bad["error"]["field"] == "preference" and bad["error"]["line"] == 2


def test_reads_stdin(cli) -> None:  # type: ignore[no-untyped-def]
    text = json.dumps(make_record("a")) + "\n" + json.dumps(make_record("b")) + "\n"
    result = cli("data", "validate", "-", stdin=text)
    assert result.code == 0
    assert "2 records: all valid" in result.stderr


def test_quiet_hides_the_summary(cli, jsonl_file) -> None:  # type: ignore[no-untyped-def]
    path = jsonl_file([make_record("a")])
    result = cli("-q", "data", "validate", str(path))
    assert result.code == 0 and result.stderr == ""
