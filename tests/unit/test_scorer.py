"""The scoring seam: one windowing loop, one default per option, protocol lines from describe()."""

from __future__ import annotations

import inspect
from types import SimpleNamespace
from typing import Any

from omnirm.bench.report import render_table
from omnirm.bench.suites import get_suite
from omnirm.judging.conversations import JudgeMedia
from omnirm.judging.judge import JudgeSettings
from omnirm.options import JUDGE_DEFAULTS, JudgeOptions, SamplingOptions, default_media_root
from omnirm.runners import JudgeScorer
from omnirm.scorer import windowed


def test_windowed_emits_every_item_in_order_in_growing_windows() -> None:
    sizes: list[int] = []

    def compute(window: list[Any]) -> list[int]:
        sizes.append(len(window))
        return [line * 10 for line, _ in window]

    def emit(window: list[Any], results: list[int]) -> Any:
        yield from ({"line": r} for r in results)

    items = [(i, None) for i in range(1, 31)]
    out = list(windowed(items, compute, emit, first=2, largest=8))  # type: ignore[arg-type]
    assert [o["line"] for o in out] == [i * 10 for i in range(1, 31)]
    assert sizes == [2, 4, 8, 8, 8]  # fast windows double up to the largest; the rest at the end


def test_retries_have_one_default_everywhere() -> None:
    from omnirm.cli.bench import bench
    from omnirm.cli.bon import bon
    from omnirm.cli.score import score

    assert JudgeSettings().retries == JudgeOptions(spec="x").retries == JUDGE_DEFAULTS.retries == 3
    for command in (score, bench, bon):
        assert inspect.signature(command).parameters["retries"].default == 3


def test_judge_protocol_lines_follow_its_settings() -> None:
    fake = SimpleNamespace(
        options=JudgeOptions(spec="hf:j", sampling=SamplingOptions(temperature=0.5, seed=7)),
        settings=JudgeSettings(mode="pairwise", orders="ab", ties=True, retries=1),
        builder=SimpleNamespace(
            media=JudgeMedia(prompt_video_frames=8, response_video_frames=3, mesh_views=6)
        ),
    )
    lines = JudgeScorer.describe(fake)  # type: ignore[arg-type]
    assert lines == {
        "judge": "hf:j, pairwise, orders ab (contradicting orders = tie), tie verdict offered, "
        "retries 1, temperature 0.5, seed 7",
        "media": "8 frames per prompt video, 3 per response video, audio 16 kHz, meshes as 6 views",
    }


def test_official_rule_comes_from_the_suite_registry() -> None:
    assert get_suite("rewardbench").official == "rewardbench"
    assert get_suite("RewardBench2").official == "rewardbench2"
    assert get_suite("omni-rewardbench").official is None


def test_report_reads_the_kind_and_guesses_nothing_from_keys() -> None:
    from rich.console import Console

    def text(task: dict[str, Any]) -> str:
        console = Console(width=200, record=True)
        console.print(render_table({"tasks": [task]}, title="t"))
        return console.export_text()

    assert "Tie ε" not in text({"task": "chat", "tie_threshold": 0.1})
    assert "Tie ε" in text({"task": "chat", "kind": "scalar", "tie_threshold": 0.1})


def test_media_root_rule(tmp_path: Any) -> None:
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "a.jsonl").write_text("")
    assert default_media_root(folder) == folder
    assert default_media_root(str(folder / "a.jsonl")) == folder.resolve()
    assert default_media_root("-", tmp_path) == tmp_path
