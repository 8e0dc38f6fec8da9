"""``omnirm bon`` end to end with tiny reward models and fixed-answer judges."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import write_jsonl
from tests.integration.test_bench import saved_reward_model
from tests.tiny_models import make_tiny_fixed_answer


@pytest.fixture(autouse=True)
def _cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMNIRM_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def rm(tiny_qwen2: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return saved_reward_model(tiny_qwen2, tmp_path_factory.mktemp("bon-rm") / "rm")


@pytest.fixture(scope="module")
def judges(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("bon-judges")
    return {
        "always_a": make_tiny_fixed_answer(root / "a", "The first. [[A]]"),
        "seven": make_tiny_fixed_answer(root / "seven", "Fine. [[7]]"),
    }


def candidates(n_records: int = 3, n: int = 5) -> list[dict[str, Any]]:
    return [
        {
            "id": f"q{r}",
            "prompt": f"Write line {r}.",
            "responses": [f"Candidate {i} for {r}." + " extra" * i for i in range(n)],
            "gold_scores": [float((i * 7 + r) % n) for i in range(n)],
        }
        for r in range(n_records)
    ]


def test_reward_model_selects_and_reports_quality(
    cli: Callable[..., Any], rm: Path, tmp_path: Path
) -> None:
    path = write_jsonl(tmp_path / "cands.jsonl", candidates())
    full = cli("bon", str(path), "--model", str(rm))
    assert full.code == 0, full.stderr
    records = full.jsonl()
    for record in records:
        rewards = record["rewards"]
        assert len(rewards) == 5 and record["best"] == max(range(5), key=rewards.__getitem__)
        assert sorted(record["ranking"]) == list(range(5))
        assert record["scores"] == {f"model:{rm}": rewards} and record["agreement"] == 1.0
    assert "selection quality on 3 records" in full.stderr
    best = cli("bon", str(path), "--model", str(rm), "--select", "best").jsonl()
    for whole, picked in zip(records, best, strict=True):
        assert picked["selected"] == [whole["best"]]
        assert picked["responses"] == [
            candidates()[int(whole["id"][1:])]["responses"][whole["best"]]
        ]
    top = cli("bon", str(path), "--model", str(rm), "--top-k", "2").jsonl()
    assert [r["selected"] for r in top] == [r["ranking"][:2] for r in records]


def test_progress_counts_against_the_number_of_records(
    cli: Callable[..., Any], rm: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from omnirm import console

    monkeypatch.setattr(console, "PLAIN_INTERVAL", 1e-9)  # a progress line for every record
    path = write_jsonl(tmp_path / "cands.jsonl", candidates(4, 3))
    result = cli("bon", str(path), "--model", str(rm))
    assert result.code == 0, result.stderr
    assert "best-of-N: 1/4 (25%)" in result.stderr and "best-of-N: 4/4 (100%)" in result.stderr
    assert len(result.jsonl()) == 4  # stdout stays JSONL only


def test_pairs_export_formats(cli: Callable[..., Any], rm: Path, tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "cands.jsonl", candidates(2))
    out = {}
    for fmt in ("omnirm", "trl", "llamafactory"):
        target = tmp_path / f"pairs-{fmt}.jsonl"
        result = cli(
            "bon", str(path), "--model", str(rm), "--pairs", str(target), "--pairs-format", fmt
        )
        assert result.code == 0, result.stderr
        out[fmt] = [json.loads(line) for line in target.read_text().splitlines()]
    scored = cli("bon", str(path), "--model", str(rm)).jsonl()
    omnirm_pairs = out["omnirm"]
    assert len(omnirm_pairs) == 2
    for pair, record in zip(omnirm_pairs, scored, strict=True):
        best, worst = record["ranking"][0], record["ranking"][-1]
        assert pair["id"] == f"{record['id']}::{best}>{worst}" and pair["preference"] == 0
        assert pair["responses"] == [record["responses"][best], record["responses"][worst]]
    assert out["trl"][0]["chosen"] == omnirm_pairs[0]["responses"][0]
    assert out["trl"][0]["rejected"] == omnirm_pairs[0]["responses"][1]
    assert "conversations" in out["llamafactory"][0] and "chosen" in out["llamafactory"][0]
    margin = tmp_path / "margin.jsonl"
    cli("bon", str(path), "--model", str(rm), "--pairs", str(margin), "--pair-mode", "margin")
    assert len(margin.read_text().splitlines()) <= 2 * 10  # at most C(5, 2) per record


def test_ensemble_of_model_and_pointwise_judge(
    cli: Callable[..., Any], rm: Path, judges: dict[str, Path], tmp_path: Path
) -> None:
    path = write_jsonl(tmp_path / "cands.jsonl", candidates(2, 3))
    result = cli(
        "bon", str(path), "--model", str(rm), "--judge", f"hf:{judges['seven']}",
        "--mode", "pointwise", "--max-new-tokens", "8",
    )  # fmt: skip
    assert result.code == 0, result.stderr
    for record in result.jsonl():
        judge_scores = record["scores"][f"judge:hf:{judges['seven']}"]
        assert judge_scores == [7.0, 7.0, 7.0]
        model_scores = record["scores"][f"model:{rm}"]
        # the judge's scores are constant (z = 0): the ensemble follows the model
        assert record["best"] == max(range(3), key=model_scores.__getitem__)
        assert record["agreement"] == (1.0 if record["best"] == 0 else 0.5)


def test_pairwise_judge_tournaments(
    cli: Callable[..., Any], judges: dict[str, Path], tmp_path: Path
) -> None:
    path = write_jsonl(tmp_path / "cands.jsonl", candidates(1, 4))
    spec = f"hf:{judges['always_a']}"
    # knockout, both orders: every match is "A" twice = a tie, so the lower index goes through
    knockout = cli(
        "bon", str(path), "--judge", spec, "--tournament", "knockout", "--max-new-tokens", "8"
    )
    assert knockout.code == 0, knockout.stderr
    (record,) = knockout.jsonl()
    assert record["best"] == 0 and record["rewards"] == [2.0, 0.0, 1.0, 0.0]
    assert "3 records judged, 6 answers" in knockout.stderr  # N-1 = 3 matches, 2 orders each
    # one order only: "A" means the first shown wins every match
    once = cli("bon", str(path), "--judge", spec, "--tournament", "round-robin", "--orders", "ab",
               "--max-new-tokens", "8").jsonl()  # fmt: skip
    (robin,) = once
    assert robin["rewards"] == [3.0, 2.0, 1.0, 0.0] and robin["ranking"] == [0, 1, 2, 3]


def test_group_by_and_usage_errors(cli: Callable[..., Any], rm: Path, tmp_path: Path) -> None:
    rows = [
        {
            "id": f"s{i}",
            "prompt_id": i // 2,
            "prompt": f"P{i // 2}",
            "responses": [f"a{i}", f"b{i}"],
        }
        for i in range(4)
    ]
    path = write_jsonl(tmp_path / "samples.jsonl", rows)
    result = cli("bon", str(path), "--model", str(rm), "--group-by", "prompt_id")
    assert result.code == 0, result.stderr
    grouped = result.jsonl()
    assert [r["id"] for r in grouped] == ["0", "1"]
    assert grouped[0]["candidate_ids"] == ["s0#0", "s0#1", "s1#0", "s1#1"]
    assert len(grouped[0]["rewards"]) == 4
    assert cli("bon", str(path), "--model", str(rm), "--top-k", "0").code == 2


def test_group_by_gathers_one_candidate_records(
    cli: Callable[..., Any], rm: Path, tmp_path: Path
) -> None:
    samples = [
        {"id": f"s{i}", "prompt_id": i // 3, "prompt": f"P{i // 3}", "responses": [f"Reply {i}."]}
        for i in range(6)
    ]
    path = write_jsonl(tmp_path / "samples.jsonl", samples)
    pairs = tmp_path / "dpo.jsonl"
    result = cli("bon", str(path), "--model", str(rm), "--group-by", "prompt_id",
                 "--pairs", str(pairs), "--pairs-format", "trl")  # fmt: skip
    assert result.code == 0, result.stderr
    grouped = result.jsonl()
    assert [r["id"] for r in grouped] == ["0", "1"]
    assert grouped[1]["candidate_ids"] == ["s3", "s4", "s5"]
    assert grouped[1]["responses"] == ["Reply 3.", "Reply 4.", "Reply 5."]
    # the same rewards as the records written whole
    whole = [{"id": str(p), "prompt": f"P{p}", "responses": [f"Reply {3 * p + i}." for i in range(3)]}
             for p in range(2)]  # fmt: skip
    direct = cli("bon", str(write_jsonl(tmp_path / "whole.jsonl", whole)), "--model", str(rm))
    for mine, theirs in zip(grouped, direct.jsonl(), strict=True):
        assert mine["rewards"] == pytest.approx(theirs["rewards"], abs=1e-6)
    assert len(pairs.read_text().splitlines()) == 2


def test_trl_pairs_of_image_prompts_pass_trls_vision_collator(
    cli: Callable[..., Any], tiny_qwen2_5_vl: Path, tmp_path: Path
) -> None:
    from transformers import AutoProcessor
    from trl.trainer.dpo_trainer import DataCollatorForVisionPreference

    from tests.tiny_models import sample_image

    (tmp_path / "media").mkdir()
    for i in range(2):
        sample_image(i).save(tmp_path / "media" / f"im{i}.png")
    rows = [
        {
            "id": "two-images",
            "prompt": [
                {"type": "image", "path": "media/im0.png"},
                {"type": "text", "text": "Which differs?"},
                {"type": "image", "path": "media/im1.png"},
            ],
            "responses": ["The left.", "The right one.", "Neither."],
        },
        {
            "id": "one-image",
            "messages": [{"role": "system", "content": "Be brief."}],
            "prompt": [
                {"type": "image", "path": "media/im1.png"},
                {"type": "text", "text": "What?"},
            ],
            "responses": ["Blue.", "Red and green."],
        },
    ]
    path = write_jsonl(tmp_path / "cands.jsonl", rows)
    rm = saved_reward_model(tiny_qwen2_5_vl, tmp_path / "vl-rm")
    pairs = tmp_path / "dpo.jsonl"
    result = cli(
        "bon", str(path), "--model", str(rm), "--pairs", str(pairs), "--pairs-format", "trl"
    )
    assert result.code == 0, result.stderr
    first, second = (json.loads(line) for line in pairs.read_text().splitlines())
    media = tmp_path.resolve() / "media"
    assert first["images"] == [str(media / "im0.png"), str(media / "im1.png")]
    assert first["prompt"] == [
        {
            "role": "user",
            "content": [
                {"type": "image"},
                {"type": "text", "text": "Which differs?"},
                {"type": "image"},
            ],
        }
    ]
    assert second["images"] == [str(media / "im1.png")]
    assert second["prompt"][0] == {"role": "system", "content": "Be brief."}
    # TRL's own preparation for vision DPO: placeholders filled from `images`, chat template,
    # processor; one image-grid row per image, for chosen and rejected.
    # (images opened as `datasets`' Image feature hands them over: the path decoders behind
    # transformers' processors differ between installs)
    from PIL import Image

    rows = [{**row, "images": [Image.open(p).convert("RGB") for p in row["images"]]}
            for row in (first, second)]  # fmt: skip
    collator = DataCollatorForVisionPreference(AutoProcessor.from_pretrained(tiny_qwen2_5_vl))
    batch = collator(rows)
    assert batch["image_grid_thw"].shape[0] == 2 * 3
    assert batch["input_ids"].shape[0] == 4
    assert batch["completion_mask"].sum() > 0
