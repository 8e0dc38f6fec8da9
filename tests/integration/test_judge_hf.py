"""``omnirm score --judge hf:PATH`` end to end on tiny local models.

Judges with a fixed opinion (``tests.tiny_models.make_tiny_fixed_answer``: a real Qwen2 model
whose greedy answer is always the same text) exercise verdicts, both orders, ties, retries,
pointwise scores, the cache and resume; random tiny vision-language and omni models exercise
the media paths (their answers are noise, so they have no verdict).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from tests.conftest import write_jsonl
from tests.tiny_models import make_tiny_fixed_answer


@pytest.fixture(autouse=True)
def _cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMNIRM_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def judges(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("judges")
    answers = {
        "always_a": "The first response is better. [[A]]",
        "tie": "They are equally good. [[C]]",
        "undecided": "Either A or B, I cannot tell",  # no verdict mark at all
        "seven": "Decent. [[7]]",
    }
    return {name: make_tiny_fixed_answer(root / name, text) for name, text in answers.items()}


def pairs(n: int = 3) -> list[dict[str, Any]]:
    return [
        {
            "id": f"p{i}",
            "prompt": f"What is {i} + {i}?",
            "criteria": "Correctness.",
            "responses": [str(2 * i), str(2 * i + 1)],
            "preference": 0,
        }
        for i in range(n)
    ]


def judge(cli: Callable[..., Any], model: Path, path: Path, *extra: str) -> Any:
    return cli("score", "--judge", f"hf:{model}", str(path), "--max-new-tokens", "24", *extra)


def test_position_biased_judge_is_caught_by_both_orders(
    cli: Callable[..., Any], judges: dict[str, Path], tmp_path: Path
) -> None:
    path = write_jsonl(tmp_path / "pairs.jsonl", pairs())
    result = judge(cli, judges["always_a"], path)
    assert result.code == 0, result.stderr
    records = result.jsonl()
    assert [r["id"] for r in records] == ["p0", "p1", "p2"]
    for record in records:
        # "A" both times: response 0 first, then response 1 — a position, not a preference
        ab, ba = record["judgements"]
        assert (ab["order"], ab["verdict"], ab["predicted"]) == ("ab", "A", 0)
        assert (ba["order"], ba["verdict"], ba["predicted"]) == ("ba", "A", 1)
        assert record["predicted"] == "tie" and record["consistent"] is False
        assert record["rationale"] == "The first response is better. [[A]]"
        assert ab["attempts"] == 1 and ab["prompt_tokens"] > 50 and ab["completion_tokens"] > 3
        usage = record["usage"]
        assert usage["requests"] == 2 and usage["generations"] == 2
        assert usage["prompt_tokens"] == ab["prompt_tokens"] + ba["prompt_tokens"]
        assert usage["seconds"] > 0
        assert record["scored_by"]["judge"] == f"hf:{judges['always_a']}"
        assert record["scored_by"]["orders"] == "both"
    assert "order consistency 0.0% (3 pairs)" in result.stderr
    once = judge(cli, judges["always_a"], path, "--orders", "ab").jsonl()
    assert [r["predicted"] for r in once] == [0, 0, 0]
    assert all(len(r["judgements"]) == 1 and r["consistent"] is None for r in once)


def test_ties_offered_and_answered(
    cli: Callable[..., Any], judges: dict[str, Path], tmp_path: Path
) -> None:
    path = write_jsonl(tmp_path / "pairs.jsonl", pairs(2))
    result = judge(cli, judges["tie"], path, "--ties")
    records = result.jsonl()
    assert [r["predicted"] for r in records] == ["tie", "tie"]
    assert all(r["consistent"] is True for r in records)
    assert records[0]["scored_by"]["ties"] is True


def test_unparseable_answers_are_asked_again_then_recorded_as_no_verdict(
    cli: Callable[..., Any], judges: dict[str, Path], tmp_path: Path
) -> None:
    path = write_jsonl(tmp_path / "pairs.jsonl", pairs(2))
    result = judge(cli, judges["undecided"], path, "--retries", "2")
    assert result.code == 0
    for record in result.jsonl():
        assert record["predicted"] is None and record["consistent"] is None
        assert [j["attempts"] for j in record["judgements"]] == [3, 3]
        assert [j["verdict"] for j in record["judgements"]] == [None, None]
        assert record["usage"]["generations"] == 6
    assert "4 without a verdict after retries" in result.stderr


def test_pointwise_scores(cli: Callable[..., Any], judges: dict[str, Path], tmp_path: Path) -> None:
    records = [*pairs(1), {"id": "three", "prompt": "Pick.", "responses": ["a", "b", "c"]}]
    path = write_jsonl(tmp_path / "mixed.jsonl", records)
    out = judge(cli, judges["seven"], path, "--mode", "pointwise").jsonl()
    assert out[0]["rewards"] == [7.0, 7.0] and out[0]["predicted"] == "tie"
    assert out[1]["rewards"] == [7.0, 7.0, 7.0] and "predicted" not in out[1]
    assert [j["response"] for j in out[1]["judgements"]] == [0, 1, 2]
    assert out[1]["scored_by"]["mode"] == "pointwise"


def test_pairwise_needs_two_responses(
    cli: Callable[..., Any], judges: dict[str, Path], tmp_path: Path
) -> None:
    records = [*pairs(1), {"id": "three", "prompt": "Pick.", "responses": ["a", "b", "c"]}]
    path = write_jsonl(tmp_path / "mixed.jsonl", records)
    failed = judge(cli, judges["always_a"], path)
    assert failed.code == 1
    assert "mixed.jsonl:2: record 'three'" in failed.stderr and "--mode pointwise" in failed.stderr
    kept = judge(cli, judges["always_a"], path, "--on-error", "record")
    good, bad = kept.jsonl()
    assert good["predicted"] == "tie" and bad["error"]["field"] == "responses"


def test_answers_are_cached_and_runs_resume(
    cli: Callable[..., Any], judges: dict[str, Path], tmp_path: Path
) -> None:
    path = write_jsonl(tmp_path / "pairs.jsonl", pairs(4))
    first = judge(cli, judges["always_a"], path)
    assert "8 answers (0 from the cache, 8 generations asked)" in first.stderr
    again = judge(cli, judges["always_a"], path)
    assert "8 answers (8 from the cache, 0 generations asked)" in again.stderr
    assert [r["predicted"] for r in again.jsonl()] == [r["predicted"] for r in first.jsonl()]
    assert all(j["cached"] for r in again.jsonl() for j in r["judgements"])
    # another seed, another judge model, or no cache: asked afresh
    assert "0 from the cache" in judge(cli, judges["always_a"], path, "--seed", "1").stderr
    assert "0 from the cache" in judge(cli, judges["tie"], path).stderr
    assert "0 from the cache" in judge(cli, judges["always_a"], path, "--no-cache").stderr
    # an interrupted run: two records written, then --resume adds the rest
    output = tmp_path / "judged.jsonl"
    output.write_text("".join(json.dumps(r) + "\n" for r in first.jsonl()[:2]))
    resumed = judge(cli, judges["always_a"], path, "-o", str(output), "--resume")
    assert resumed.code == 0 and "resumed: 2 records" in resumed.stderr
    assert [json.loads(line)["id"] for line in output.read_text().splitlines()] == [
        "p0",
        "p1",
        "p2",
        "p3",
    ]


def test_custom_template_and_usage_errors(
    cli: Callable[..., Any], judges: dict[str, Path], tmp_path: Path
) -> None:
    path = write_jsonl(tmp_path / "pairs.jsonl", pairs(1))
    template = tmp_path / "t.toml"
    template.write_text(
        'system = "Compare on: {criteria}. {verdicts}"\n'
        'user = "Q: {prompt}\\nA: {response_a}\\nB: {response_b}"\n'
    )
    result = judge(cli, judges["always_a"], path, "--prompt-template", str(template))
    assert result.code == 0
    assert result.jsonl()[0]["scored_by"]["template"] == str(template)
    wrong_mode = judge(
        cli, judges["seven"], path, "--prompt-template", str(template), "--mode", "pointwise"
    )
    assert wrong_mode.code == 2 and "pass --mode pairwise" in wrong_mode.stderr
    both = cli("score", "--judge", "hf:x", "--model", "rm", str(path))
    assert both.code == 2 and "either --model" in both.stderr
    missing = cli("score", "--judge", f"hf:{tmp_path / 'nothing'}", str(path))
    assert missing.code == 2 and "no such model" in missing.stderr
    bad_spec = cli("score", "--judge", "gpt-4o", str(path))
    assert bad_spec.code == 2 and "openai:MODEL" in bad_spec.stderr


def test_text_judge_refuses_media_with_the_field(
    cli: Callable[..., Any], judges: dict[str, Path], tmp_path: Path
) -> None:
    Image.new("RGB", (32, 32), "red").save(tmp_path / "red.png")
    record = {
        "id": "img",
        "prompt": [{"type": "text", "text": "Colour?"}, {"type": "image", "path": "red.png"}],
        "responses": ["red", "blue"],
    }
    path = write_jsonl(tmp_path / "img.jsonl", [record])
    result = judge(cli, judges["always_a"], path)
    assert result.code == 1
    assert "record 'img'" in result.stderr and "prompt[1]" in result.stderr
    assert "cannot read image" in result.stderr


@pytest.mark.parametrize("fixture", ["tiny_qwen2_5_vl", "tiny_omni_thinker"])
def test_multimodal_judge_reads_every_medium(
    cli: Callable[..., Any], fixture: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    import soundfile
    import trimesh

    from tests.integration.test_bt_multimodal import _video

    omni = fixture == "tiny_omni_thinker"
    Image.new("RGB", (40, 40), "red").save(tmp_path / "red.png")
    Image.new("RGB", (40, 40), "blue").save(tmp_path / "blue.png")
    _video(tmp_path / "clip.mp4")
    trimesh.creation.box().export(tmp_path / "box.glb")
    soundfile.write(tmp_path / "tone.wav", 0.2 * np.sin(np.arange(8000) / 5.0), 8000)
    image = {"type": "image", "path": "red.png"}
    records = [
        {"id": "t2t", "prompt": "Colour?", "responses": ["red", "blue"]},
        {"id": "ti2t", "prompt": [image, {"type": "text", "text": "Colour?"}], "responses": ["red", "blue"]},
        {"id": "t2i", "prompt": "A red square.", "responses": [[image], [{"type": "image", "path": "blue.png"}]]},
        {"id": "tv2t", "prompt": [{"type": "video", "path": "clip.mp4"}], "responses": ["a bar", "nothing"]},
        {"id": "t2v", "prompt": "A bar.", "responses": [[{"type": "video", "path": "clip.mp4"}], "no video"]},
        {"id": "t23d", "prompt": "A box.", "responses": [[{"type": "mesh", "path": "box.glb"}], "none"]},
    ]  # fmt: skip
    if omni:
        tone = {"type": "audio", "path": "tone.wav"}
        records.append({"id": "ta2t", "prompt": [tone, {"type": "text", "text": "Pitch?"}], "responses": ["high", "low"]})  # fmt: skip
    path = write_jsonl(tmp_path / "media.jsonl", records)
    model = request.getfixturevalue(fixture)
    result = cli(
        "score", "--judge", f"hf:{model}", str(path), "--max-new-tokens", "4", "--retries", "0"
    )
    assert result.code == 0, result.stderr
    out = {r["id"]: r for r in result.jsonl()}
    assert set(out) == {r["id"] for r in records}
    tokens = {key: r["judgements"][0]["prompt_tokens"] for key, r in out.items()}
    # each medium becomes placeholder tokens: the same question with a picture is longer
    assert tokens["ti2t"] > tokens["t2t"] + 3
    for key in ("t2i", "tv2t", "t2v", "t23d", *(["ta2t"] if omni else [])):
        assert tokens[key] > tokens["t2t"], key
    assert all(r["judgements"][0]["completion_tokens"] >= 1 for r in out.values())
