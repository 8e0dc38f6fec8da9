"""Bench reports: the rich table, Markdown, and the PNG plot, from a result's JSON-ready dict."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from omnirm.bench import report

PROTOCOL = {
    "tie handling": "scalar: oracle ε per task (as the paper) and 5-fold calibrated ε",
    "order swapping": "judge: both orders, consistency reported",
    "subsets": "T2T, TI2T",
}


def result() -> dict[str, Any]:
    """A small hand-made result: one scalar task, one judge task, modalities."""
    return {
        "tasks": [
            {
                "task": "text_to_text",
                "n": 417,
                "n_ties": 51,
                "kind": "scalar",
                "accuracy_without_ties": 0.8,
                "accuracy_with_ties": 0.7530,
                "ci_without_ties": {"low": 0.76, "high": 0.84},
                "ci_with_ties": {"low": 0.71, "high": 0.79},
                "tie_threshold": 0.153,
                "tie_threshold_source": "oracle",
                "accuracy_with_ties_calibrated": 0.7012,
                "calibrated_tie_threshold": 0.12,
                "calibration": "cv5",
                "length_bias": 0.042,
                "longer_preferred": 0.612,
            },
            {
                "task": "text_image_to_text",
                "n": 528,
                "n_ties": 98,
                "kind": "judge",
                "accuracy_without_ties": 0.7,
                "accuracy_with_ties": 0.6,
                "ci_without_ties": [0.65, 0.75],
                "order_consistency": 0.9,
                "unparseable": 3,
            },
        ],
        "overall": {
            "accuracy_without_ties": 0.75,
            "accuracy_with_ties": 0.6765,
            "accuracy_with_ties_calibrated": 0.7012,
            "n_tasks": 2,
            "n": 945,
        },
        "modalities": {
            "text": {
                "accuracy_without_ties": 0.8,
                "accuracy_with_ties": 0.753,
                "accuracy_with_ties_calibrated": 0.7012,
                "n_tasks": 1,
                "n": 417,
            },
            "image": {
                "accuracy_without_ties": 0.7,
                "accuracy_with_ties": 0.6,
                "n_tasks": 1,
                "n": 528,
            },
        },
    }


def rendered(data: dict[str, Any], **kwargs: Any) -> str:
    console = Console(record=True, width=200)
    console.print(report.render_table(data, **kwargs))
    return console.export_text()


# --- rich ---------------------------------------------------------------------------------------


def test_table_shows_numbers_as_percentages() -> None:
    text = rendered(result(), title="omnirm bench: omni-rewardbench", protocol=PROTOCOL)
    assert "omnirm bench: omni-rewardbench" in text
    lines = text.splitlines()
    t2t = next(line for line in lines if "T2T" in line)
    for cell in ("417", "51", "80.00 [76.00, 84.00]", "75.30 [71.00, 79.00]"):
        assert cell in t2t
    assert "0.153 (oracle)" in t2t
    assert "70.12 (ε=0.12, cv5)" in t2t
    assert "+0.042 (longer 61.20%)" in t2t
    ti2t = next(line for line in lines if "TI2T" in line)
    for cell in ("528", "98", "70.00 [65.00, 75.00]", "60.00", "90.00", " 3 "):
        assert cell in ti2t
    overall = next(line for line in lines if "Overall" in line)
    for cell in ("Overall (2 tasks)", "945", "149", "75.00", "67.65", "70.12"):
        assert cell in overall
    assert "By modality" in text
    assert any("text (1 task)" in line and "75.30" in line for line in lines)
    assert any("image (1 task)" in line and "60.00" in line for line in lines)


def test_table_prints_protocol_lines_under_the_table() -> None:
    text = rendered(result(), title="t", protocol=PROTOCOL)
    lines = [line.rstrip() for line in text.splitlines()]
    end = max(i for i, line in enumerate(lines) if line.startswith("└"))
    assert lines[end + 1 :] == [f"{key}: {value}" for key, value in PROTOCOL.items()]


def test_table_columns_follow_the_kinds_present() -> None:
    data = result()
    data["tasks"] = data["tasks"][1:]  # judge only
    text = rendered(data, title="t")
    assert "Consistency" in text
    assert "Tie ε" not in text
    data = result()
    data["tasks"] = data["tasks"][:1]  # scalar only
    text = rendered(data, title="t")
    assert "Tie ε" in text
    assert "Consistency" not in text


def test_table_tolerates_missing_keys() -> None:
    text = rendered({"tasks": [{"task": "chat"}]}, title="t")
    assert "chat" in text
    assert "Overall (1 task)" in text
    rendered({}, title="empty")


def test_table_shows_brackets_literally() -> None:
    text = rendered({"tasks": [{"task": "[bold]odd[/bold]", "n": 2}]}, title="[red]t[/red]")
    assert "[bold]odd[/bold]" in text
    assert "[red]t[/red]" in text


def test_print_report_goes_to_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    from omnirm import console

    saved = console._console
    console._console = None
    try:
        report.print_report(result(), title="to stderr", protocol=PROTOCOL)
    finally:
        console._console = saved
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "to stderr" in captured.err
    assert "tie handling:" in captured.err


# --- Markdown -----------------------------------------------------------------------------------


def test_markdown_exact() -> None:
    text = report.to_markdown(result(), title="Omni-RewardBench", protocol=PROTOCOL)
    assert text == (
        "## Omni-RewardBench\n"
        "\n"
        "| Task | n | Ties | Acc w/o ties [CI] | Acc w/ ties [CI] | Tie ε"
        " | Acc w/ ties, calibrated ε | Consistency | Unparseable | Length bias |\n"
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n"
        "| T2T | 417 | 51 | 80.00 [76.00, 84.00] | 75.30 [71.00, 79.00] | 0.153 (oracle)"
        " | 70.12 (ε=0.12, cv5) | — | — | +0.042 (longer 61.20%) |\n"
        "| TI2T | 528 | 98 | 70.00 [65.00, 75.00] | 60.00 | — | — | 90.00 | 3 | — |\n"
        "| **Overall (2 tasks)** | 945 | 149 | 75.00 | 67.65 | — | 70.12 | — | — | — |\n"
        "\n"
        "### By modality\n"
        "\n"
        "| Modality | Tasks | n | Acc w/o ties | Acc w/ ties | Acc w/ ties, calibrated ε |\n"
        "| --- | ---: | ---: | ---: | ---: | ---: |\n"
        "| text | 1 | 417 | 80.00 | 75.30 | 70.12 |\n"
        "| image | 1 | 528 | 70.00 | 60.00 | — |\n"
        "\n"
        "### Protocol\n"
        "\n"
        "- tie handling: scalar: oracle ε per task (as the paper) and 5-fold calibrated ε\n"
        "- order swapping: judge: both orders, consistency reported\n"
        "- subsets: T2T, TI2T\n"
    )


def test_markdown_with_references() -> None:
    text = report.to_markdown(
        result(),
        title="t",
        protocol=PROTOCOL,
        references=["Omni-RewardModel-BT", "claude 3.5 sonnet"],
    )
    lines = text.splitlines()
    assert "### Published references" in lines
    assert "arXiv 2510.23451" in text
    assert (
        "| Model | Setting | T2T | TI2T | TV2T | TA2T | T2I | T2V | T2A | T23D | TI2I | Overall |"
        in lines
    )
    assert (
        "| this run | w/ ties | 75.30 | 60.00 | — | — | — | — | — | — | — | 67.65 (2 tasks) |"
        in lines
    )
    assert (
        "| this run | w/o ties | 80.00 | 70.00 | — | — | — | — | — | — | — | 75.00 (2 tasks) |"
        in lines
    )
    assert (
        "| Omni-RewardModel-BT | w/ ties | 75.30 | 60.23 | 68.85 | 70.59 | 58.35 | 64.08 | 63.99"
        " | 67.88 | 58.95 | 65.36 (9 tasks) |" in lines
    )
    assert (
        "| Omni-RewardModel-BT | w/o ties | — | — | — | — | — | — | — | — | — | 73.68 (9 tasks) |"
        in lines
    )
    assert (
        "| Claude-3.5-Sonnet | w/ ties | 76.74 | 61.55 | 67.04 | — | 61.69 | 64.27 | — | 68.54"
        " | 65.94 | 66.54 (7 tasks) |" in lines
    )
    # the protocol still closes the document
    assert lines[-1] == "- subsets: T2T, TI2T"


def test_markdown_unknown_reference() -> None:
    with pytest.raises(ValueError, match=r"available: .*Omni-RewardModel-BT"):
        report.to_markdown(result(), title="t", references=["GPT-5"])


def test_markdown_escapes_pipes() -> None:
    text = report.to_markdown({"tasks": [{"task": "a|b", "n": 1}]}, title="t")
    assert "| a\\|b | 1 |" in text


# --- plot ---------------------------------------------------------------------------------------


def test_plot_writes_a_png(tmp_path: Path) -> None:
    from PIL import Image

    path = report.plot(result(), tmp_path / "out" / "bench.png", title="omnirm bench")
    assert path == tmp_path / "out" / "bench.png"
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(path) as image:
        image.verify()
    with Image.open(path) as image:
        width, height = image.size
    assert 400 <= width <= 4000
    assert 400 <= height <= 4000


def legend_labels(figure: Any) -> list[str]:
    return [text.get_text() for legend in figure.legends for text in legend.get_texts()]


def test_plot_legend_has_references(tmp_path: Path) -> None:
    figure = report.plot_figure(result(), references=["gpt-4o", "Omni-RewardModel-BT"], title="t")
    assert legend_labels(figure) == ["this run", "GPT-4o", "Omni-RewardModel-BT"]
    ticks = [tick.get_text() for tick in figure.axes[1].get_xticklabels()]
    assert ticks == ["T2T", "TI2T"]
    # with ties: the references' bars sit at their published values for the run's tasks
    heights = sorted(round(patch.get_height(), 2) for patch in figure.axes[1].patches)
    assert heights == [60.0, 60.23, 61.74, 75.3, 75.3, 78.18]
    path = report.plot(result(), tmp_path / "refs.png", references=["gpt-4o"])
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_without_references_has_only_this_run() -> None:
    figure = report.plot_figure(result())
    assert legend_labels(figure) == ["this run"]


def test_plot_unknown_reference(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="available:"):
        report.plot(result(), tmp_path / "x.png", references=["nope"])
    assert not (tmp_path / "x.png").exists()


def test_plot_other_suites_task_names(tmp_path: Path) -> None:
    data = {
        "tasks": [
            {"task": "general", "accuracy_without_ties": 0.6},
            {"task": "hallucination", "accuracy_without_ties": 0.9},
        ]
    }
    figure = report.plot_figure(data, references=["GPT-4o"])
    ticks = [tick.get_text() for tick in figure.axes[1].get_xticklabels()]
    assert ticks == ["general", "hallucination"]
    report.plot(data, tmp_path / "vl.png")


def test_official_rewardbench_sections_in_table_and_markdown() -> None:
    data = {
        "tasks": [{"task": "chat", "n": 4, "accuracy_without_ties": 0.75}],
        "official": {
            "rule": "RewardBench 1 (weighted)",
            "subsets": {"alpacaeval-easy": {"accuracy": 0.5, "n": 2, "weight": 100}},
            "sections": {"chat": 0.7436},
            "section_details": {
                "chat": {"n": 4, "subsets": ["alpacaeval-easy", "x"], "subsets_total": 5}
            },
            "score": 0.7436,
            "missing_sections": ["safety"],
        },
    }
    text = rendered(data, title="t")
    assert "Official: RewardBench 1 (weighted)" in text
    assert any(
        "chat" in line and "2 of 5" in line and "74.36" in line for line in text.splitlines()
    )
    markdown = report.to_markdown(data, title="t")
    assert (
        "### Official: RewardBench 1 (weighted)\n\n"
        "| Section | Subsets | n | Score |\n"
        "| --- | ---: | ---: | ---: |\n"
        "| chat | 2 of 5 | 4 | 74.36 |\n"
        "| safety | — | 0 | not run |\n"
        "| **Score (mean of 1 section)** |  | 4 | 74.36 |\n"
    ) in markdown
    assert report.official_summary(data["official"]) == (
        "RewardBench 1 (weighted): score 74.36 (without safety: not comparable with the leaderboard)"
    )
