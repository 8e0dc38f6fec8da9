"""``omnirm data convert``: --from and --to, --on-error, options, exit codes, pipes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import CliResult, make_record
from tests.unit.formats.omni_bench import copy_json_bench

Cli = Callable[..., CliResult]

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures" / "formats"
LFQA = REPO / "data" / "prd-lfqa" / "experts_pairwise_human_preferences.jsonl"


def test_from_pairs_to_stdout(cli: Cli) -> None:
    result = cli("data", "convert", "--from", "pairs", str(FIXTURES / "pairs" / "plain.jsonl"))
    assert result.code == 1  # one row has no 'rejected'; the default --on-error is fail
    assert [r["id"] for r in result.jsonl()] == ["uf-0001", "plain-2", "hh-prompted-7", "uf-0001-2"]
    assert "plain.jsonl:5: record 'plain-5': rejected: missing" in result.stderr


def test_on_error_modes(cli: Cli, tmp_path: Path) -> None:
    bench = str(copy_json_bench(tmp_path))
    failed = cli("data", "convert", "--from", "omni-rewardbench", bench)
    assert failed.code == 1
    assert len(failed.jsonl()) == 5  # T2T and TI2T rows, written before the bad TV2T row
    assert (
        "text_video_to_text_preferences.json:1: record 'text_video_to_text-3': "
        "criteria_preference: expected 'response1', 'response2' or 'tie', got None"
    ) in failed.stderr

    skipped = cli("data", "convert", "--from", "omni-rewardbench", bench, "--on-error", "skip")
    assert skipped.code == 0  # skipping was asked for: one warning, success
    assert len(skipped.jsonl()) == 18
    assert "18 records written (omni-rewardbench → omnirm), 1 skipped" in skipped.stderr
    assert "warning: 1 record skipped (--on-error skip), the first: " in skipped.stderr

    recorded = cli("data", "convert", "--from", "omni-rewardbench", bench, "--on-error", "record")
    assert recorded.code == 1
    rows = recorded.jsonl()
    assert len(rows) == 19
    (bad,) = [r for r in rows if "error" in r]
    assert bad["id"] == "text_video_to_text-3"
    assert bad["error"]["field"] == "criteria_preference" and bad["error"]["line"] == 1
    assert rows.index(bad) == 5  # in input order


def test_omni_rewardbench_options(cli: Cli, tmp_path: Path) -> None:
    bench = copy_json_bench(tmp_path)
    result = cli("data", "convert", "--from", "omni-rewardbench", str(bench), "--tasks", "T2I,t23d")
    assert result.code == 0, result.stderr
    assert [r["task"] for r in result.jsonl()] == ["text_to_image"] * 2 + ["text_to_3d"] * 2
    absolute = cli(
        "data", "convert", "--from", "omni-rewardbench", str(bench), "--tasks", "T2A",
        "--absolute-paths",
    )  # fmt: skip
    path = absolute.jsonl()[0]["responses"][0][0]["path"]
    assert Path(path).is_absolute() and path.startswith(str(bench.absolute()))
    unknown = cli("data", "convert", "--from", "omni-rewardbench", str(bench), "--tasks", "X")
    assert unknown.code == 2 and "unknown task 'X'" in unknown.stderr


def test_prd_vicuna_missing_answers_are_errors_not_crashes(cli: Cli, tmp_path: Path) -> None:
    out = tmp_path / "v.jsonl"
    result = cli(
        "data", "convert", "--from", "prd-vicuna80", str(FIXTURES / "prd_vicuna80_mini"),
        "--on-error", "skip", "-o", str(out), "-v",
    )  # fmt: skip
    assert result.code == 0
    assert result.stdout == ""
    assert len(out.read_text().splitlines()) == 6
    assert result.stderr.count("skipped: ") == 3  # -v shows each
    assert result.stderr.count("no answer from gpt4 to question 9") == 3 + 1  # and the summary
    assert "6 records written (prd-vicuna80 → omnirm), 3 skipped" in result.stderr


def test_usage_errors(cli: Cli, jsonl_file: Callable[..., Path]) -> None:
    path = str(jsonl_file([make_record("a")]))
    neither = cli("data", "convert", path)
    assert neither.code == 2 and "exactly one of --from" in neither.stderr
    both = cli("data", "convert", "--from", "pairs", "--to", "pairs", path)
    assert both.code == 2
    wrong = cli("data", "convert", "--from", "pairs", path, "--tasks", "T2T")
    assert wrong.code == 2
    assert "--tasks does not apply to --from pairs (only to: omni-rewardbench)" in wrong.stderr
    export_option = cli("data", "convert", "--to", "pairs", path, "--shuffle-seed", "1")
    assert export_option.code == 2 and "only for --from" in export_option.stderr
    stdin = cli("data", "convert", "--from", "prd-lfqa", "-")
    assert stdin.code == 2 and "not standard input" in stdin.stderr
    unknown = cli("data", "convert", "--from", "rewardbench", path)
    assert unknown.code == 2
    missing = cli("data", "convert", "--from", "llamafactory", path + ".nope")
    assert missing.code == 2 and "no such file" in missing.stderr


def test_to_pairs_skips_ties_and_reads_stdin(cli: Cli) -> None:
    records = [
        make_record("a", criteria="short"),
        make_record("tie", preference="tie"),
        make_record("b", preference=1),
    ]
    stdin = "".join(json.dumps(r) + "\n" for r in records) + "{broken\n"
    result = cli("data", "convert", "--to", "pairs", "-", "--on-error", "skip", "-v", stdin=stdin)
    assert result.code == 0
    assert result.jsonl() == [
        {
            "id": "a",
            "prompt": "Which is better?",
            "chosen": "first answer",
            "rejected": "second answer",
            "criteria": "short",
        },
        {
            "id": "b",
            "prompt": "Which is better?",
            "chosen": "second answer",
            "rejected": "first answer",
        },
    ]
    assert "<stdin>:2: record 'tie': preference: is a tie" in result.stderr
    assert "<stdin>:4: invalid JSON" in result.stderr
    assert "2 rows written (omnirm → pairs), 2 skipped" in result.stderr


def test_llamafactory_round_trip_through_the_cli(cli: Cli, tmp_path: Path) -> None:
    source = FIXTURES / "llamafactory" / "omni_ti2i.json"
    records = tmp_path / "records.jsonl"
    exported = tmp_path / "exported.jsonl"
    assert (
        cli("data", "convert", "--from", "llamafactory", str(source), "-o", str(records)).code == 0
    )
    assert (
        cli("data", "convert", "--to", "llamafactory", str(records), "-o", str(exported)).code == 0
    )
    again = cli("data", "convert", "--from", "llamafactory", str(exported))
    assert again.code == 0
    assert again.jsonl() == [json.loads(line) for line in records.read_text().splitlines()]


def test_shuffle_seed_and_flip_generation(cli: Cli) -> None:
    source = str(FIXTURES / "llamafactory" / "omni_t2i.json")
    plain: list[dict[str, Any]] = cli("data", "convert", "--from", "llamafactory", source).jsonl()
    flipped = cli("data", "convert", "--from", "llamafactory", source, "--flip-generation").jsonl()
    assert [r["responses"][::-1] for r in plain] == [r["responses"] for r in flipped]
    shuffled = cli("data", "convert", "--from", "llamafactory", source, "--shuffle-seed", "1")
    for before, after in zip(plain, shuffled.jsonl(), strict=True):
        chosen = before["responses"][0]
        assert after["responses"][after["preference"]] == chosen


@pytest.mark.skipif(not LFQA.is_file(), reason="the real PRD LFQA file (data/) is not here")
def test_real_lfqa_and_a_closed_pipe(cli: Cli) -> None:
    result = cli("data", "convert", "--from", "prd-lfqa", str(LFQA))
    assert result.code == 0
    assert len(result.jsonl()) == 260
    assert "260 records written (prd-lfqa → omnirm)" in result.stderr

    command = f"{sys.executable} -m omnirm data convert --from prd-lfqa {LFQA} | head -1"
    proc = subprocess.run(
        ["bash", "-o", "pipefail", "-c", command],
        capture_output=True,
        text=True,
        env={**os.environ, "NO_COLOR": "1"},
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""  # no traceback, no summary after the reader left
    assert json.loads(proc.stdout)["id"] == "lfqa-1"
