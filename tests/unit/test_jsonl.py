"""JSONL output files: locked, never the input, never left half-written in place of a good one."""

from __future__ import annotations

import fcntl
import json
import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from omnirm.errors import RecordError, UsageError
from omnirm.jsonl import JsonlWriter
from tests.conftest import make_record, write_jsonl

GOOD = '{"id":"old"}\n'


def lines(path: Path) -> list[Any]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def test_the_previous_file_stays_until_the_run_ends(tmp_path: Path) -> None:
    target = tmp_path / "out.jsonl"
    target.write_text(GOOD)
    target.chmod(0o640)
    with JsonlWriter(target) as writer:
        writer.write({"id": "new"})
        writer.flush()
        assert target.read_text() == GOOD  # a crash now would leave the previous file
        assert len(leftovers(tmp_path)) == 1
    assert lines(target) == [{"id": "new"}]
    assert stat.S_IMODE(target.stat().st_mode) == 0o640  # the permissions are kept
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("error", [OSError(28, "No space left on device"), UsageError("late")])
def test_a_failed_run_leaves_the_previous_file(tmp_path: Path, error: Exception) -> None:
    target = tmp_path / "out.jsonl"
    target.write_text(GOOD)
    with pytest.raises(type(error)), JsonlWriter(target) as writer:
        writer.write({"id": "new"})
        raise error
    assert target.read_text() == GOOD and leftovers(tmp_path) == []


def test_a_failed_run_without_previous_file_leaves_none(tmp_path: Path) -> None:
    target = tmp_path / "out.jsonl"
    with pytest.raises(UsageError), JsonlWriter(target):
        raise UsageError("the model does not load")
    assert not target.exists() and leftovers(tmp_path) == []


def test_a_record_error_keeps_what_came_before_it(tmp_path: Path) -> None:
    # --on-error fail: the output holds everything before the bad record, as documented
    target = tmp_path / "out.jsonl"
    target.write_text(GOOD)
    with pytest.raises(RecordError), JsonlWriter(target) as writer:
        writer.write({"id": "a"})
        raise RecordError("bad", line=2)
    assert lines(target) == [{"id": "a"}]


def test_ctrl_c_keeps_a_good_file_but_keeps_partial_output_when_there_was_none(
    tmp_path: Path,
) -> None:
    existing, fresh = tmp_path / "existing.jsonl", tmp_path / "fresh.jsonl"
    existing.write_text(GOOD)
    for target in (existing, fresh):
        with pytest.raises(KeyboardInterrupt), JsonlWriter(target) as writer:
            writer.write({"id": "partial"})
            raise KeyboardInterrupt
    assert existing.read_text() == GOOD
    assert lines(fresh) == [{"id": "partial"}]


def test_append_writes_in_place(tmp_path: Path) -> None:
    target = tmp_path / "out.jsonl"
    target.write_text(GOOD)
    with JsonlWriter(target, append=True) as writer:
        writer.write({"id": "new"})
        assert lines(target) == [{"id": "old"}, {"id": "new"}]  # flushed at once, in place
    assert leftovers(tmp_path) == []


def test_every_line_is_flushed_as_written(tmp_path: Path) -> None:
    """A record is on disk (in the temporary file) as soon as it is written, however soon after
    the previous one: a slow next record never holds it back."""
    with JsonlWriter(tmp_path / "out.jsonl") as writer:
        for n in range(3):
            writer.write({"id": f"r{n}"})
            (temp,) = tmp_path.glob(".out.jsonl.*.tmp")
            assert len(temp.read_text().splitlines()) == n + 1


@pytest.mark.parametrize("append", [False, True])
def test_temporary_files_a_killed_run_left_are_removed(tmp_path: Path, append: bool) -> None:
    """A run killed by SIGKILL leaves its temporary file; the next run that takes the target's
    lock removes it (no live run can be writing it) — and nothing else."""
    target = tmp_path / "out.jsonl"
    stale = [tmp_path / ".out.jsonl.k3_9zq0a.tmp", tmp_path / ".out.jsonl.abcdefgh.tmp"]
    others = [
        tmp_path / ".out.jsonl.rejected.jsonl.abcdefgh.tmp",  # another target's
        tmp_path / ".out.jsonl.abc.tmp",  # not a name tempfile gives
        tmp_path / ".other.jsonl.abcdefgh.tmp",
        tmp_path / "out.jsonl.abcdefgh.tmp",
    ]
    for path in stale + others:
        path.write_text("")
    with JsonlWriter(target, append=append) as writer:
        writer.write({"id": "a"})
    assert not any(path.exists() for path in stale)
    assert all(path.exists() for path in others)
    assert lines(target) == [{"id": "a"}]


def test_a_second_writer_is_refused_at_once(tmp_path: Path) -> None:
    target = tmp_path / "out.jsonl"
    with JsonlWriter(target) as writer:
        writer.write({"id": "a"})
        for append in (False, True):
            with pytest.raises(UsageError, match="another omnirm run is writing this file"):
                JsonlWriter(target, append=append)
    with JsonlWriter(target, append=True) as again:  # released at the end
        again.write({"id": "b"})
    assert [r["id"] for r in lines(target)] == ["a", "b"]


def test_the_input_and_folders_are_refused(tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", [make_record()])
    (tmp_path / "link.jsonl").symlink_to(source)
    os.link(source, tmp_path / "hard.jsonl")
    for target in ("in.jsonl", "link.jsonl", "hard.jsonl", "./sub/../in.jsonl"):
        (tmp_path / "sub").mkdir(exist_ok=True)
        with pytest.raises(UsageError, match="is the input file"):
            JsonlWriter(tmp_path / target, inputs=[str(source)])
    assert source.read_text().count("\n") == 1
    with pytest.raises(UsageError, match="is a folder"):
        JsonlWriter(tmp_path / "sub")
    with pytest.raises(UsageError, match="does not exist"):
        JsonlWriter(tmp_path / "nowhere" / "out.jsonl")


def test_a_symbolic_link_target_is_replaced_through_the_link(tmp_path: Path) -> None:
    real = tmp_path / "real.jsonl"
    real.write_text(GOOD)
    (tmp_path / "link.jsonl").symlink_to(real)
    with JsonlWriter(tmp_path / "link.jsonl") as writer:
        writer.write({"id": "new"})
    assert (tmp_path / "link.jsonl").is_symlink() and lines(real) == [{"id": "new"}]


def test_special_files_are_written_directly(tmp_path: Path) -> None:
    with JsonlWriter(os.devnull) as writer:
        writer.write({"id": "a"})
    assert Path(os.devnull).exists() and not Path(os.devnull).is_file()


# -- the commands ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "command",
    [
        ["score", "--model", "no-such-model", "IN", "-o", "IN"],
        ["bon", "--model", "no-such-model", "IN", "-o", "IN"],
        ["bon", "--model", "no-such-model", "IN", "--pairs", "IN"],
        ["data", "validate", "IN", "-o", "IN"],
        ["data", "convert", "--to", "pairs", "IN", "-o", "IN"],
        ["data", "convert", "--from", "pairs", "IN", "-o", "IN"],
        ["data", "split", "IN", "--split", "train", "-o", "IN"],
        ["data", "split", "IN", "--output-dir", "DIR", "--force"],
    ],
)
def test_commands_refuse_to_write_their_input(
    cli: Callable[..., Any], tmp_path: Path, command: list[str]
) -> None:
    source = write_jsonl(tmp_path / "train.jsonl", [make_record("a"), make_record("b")])
    before = source.read_bytes()
    args = [str(source) if a == "IN" else str(tmp_path) if a == "DIR" else a for a in command]
    result = cli(*args)
    assert result.code == 2, result.stderr
    assert "is the input file" in result.stderr and "would destroy the input" in result.stderr
    assert source.read_bytes() == before


def test_standard_input_redirected_from_the_output_is_refused(
    cli: Callable[..., Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    source = write_jsonl(tmp_path / "in.jsonl", [make_record("a")])
    with source.open("rb") as handle:
        monkeypatch.setattr(sys, "stdin", os.fdopen(os.dup(handle.fileno()), "r"))
        result = cli("data", "validate", "-", "-o", str(source))
    assert result.code == 2 and "is the input file <stdin>" in result.stderr
    assert lines(source) == [make_record("a")]


def test_a_command_refuses_an_output_another_run_holds(
    cli: Callable[..., Any], tmp_path: Path
) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", [make_record("a")])
    target = tmp_path / "out.jsonl"
    target.write_text(GOOD)
    with target.open("rb") as held:
        fcntl.flock(held.fileno(), fcntl.LOCK_EX)
        result = cli("data", "convert", "--to", "pairs", str(source), "-o", str(target))
    assert result.code == 2 and "another omnirm run is writing this file" in result.stderr
    assert target.read_text() == GOOD


def test_split_files_appear_only_when_the_split_is_done(
    cli: Callable[..., Any], tmp_path: Path
) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text(json.dumps(make_record("a")) + "\n" + '{"id": broken\n')
    out = tmp_path / "splits"
    result = cli("data", "split", str(source), "--output-dir", str(out))
    assert result.code == 1 and "invalid JSON" in result.stderr
    # stopped at the bad line: the first record's split is written, nothing is half-written
    assert sum(len(lines(p)) for p in out.glob("*.jsonl")) == 1
    assert leftovers(out) == []


def test_an_unparseable_line_keeps_its_text(cli: Callable[..., Any], tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text(json.dumps(make_record("a")) + "\n" + '{"id": "b", "prompt": oops}\n')
    result = cli("data", "validate", str(source), "--on-error", "record")
    (bad,) = result.jsonl()
    assert bad["raw"] == '{"id": "b", "prompt": oops}'
    assert bad["error"]["line"] == 2 and "invalid JSON" in bad["error"]["message"]


def test_count_lines_counts_records_of_regular_files_only(tmp_path: Path) -> None:
    from omnirm.jsonl import count_lines

    path = tmp_path / "a.jsonl"
    path.write_bytes(b'{"id": 1}\n\n  \n{"id": 2}\n{"id": 3}')  # blank lines and no final newline
    assert count_lines(path) == 3
    assert count_lines("-") is None
    assert count_lines(tmp_path / "missing.jsonl") is None
    assert count_lines(tmp_path) is None
