"""Scoring with a shared prefix (each record's prompt run once, every response on its KV cache)
gives the rewards of scoring every (prompt, response) sequence whole — for text, vision-language
and omni backbones, with media in prompts and in responses, at any batch size and order."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest
import torch

from omnirm.media import MediaResolver
from omnirm.models.checkpoint import build_reward_model
from omnirm.on_error import ErrorPolicy
from omnirm.records import parse_record
from omnirm.scoring import RewardScorer as Scorer
from omnirm.scoring import ScoreSettings
from omnirm.train.bt import BTConfig
from tests.integration.test_bt_multimodal import _audio, _image, _meshes, _video

TEXT = {"type": "text"}


def text(value: str) -> dict[str, str]:
    return {**TEXT, "text": value}


@pytest.fixture(scope="module")
def media_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("shared-prefix-media")
    for i in range(3):
        _image(folder / f"picture{i}.png", (40 * i, 200, 90), i)
    _video(folder / "clip.mp4")
    _audio(folder / "tone.wav", 440.0)
    _meshes(folder)
    return folder


def text_records() -> list[dict[str, Any]]:
    long_prompt = " ".join(f"word{i}" for i in range(400))
    return [
        {"id": "pair", "prompt": "Name a colour.", "responses": ["Red.", "Blue is a colour."]},
        {
            "id": "ranked",
            "prompt": "Count to three.",
            "criteria": "Prefer short answers.",
            "responses": ["1 2 3", "One, two, three.", "1, 2 and 3", "Three.", "1"],
        },
        {
            "id": "history",
            "messages": [
                {"role": "user", "content": "Hi."},
                {"role": "assistant", "content": "Hello! How can I help?"},
                {"role": "user", "content": "Say something kind."},
            ],
            "responses": ["You matter.", "No."],
        },
        # responses that begin alike: the shared prefix still ends at the assistant turn
        {"id": "same-start", "prompt": "Go on.", "responses": ["The end.", "The end is near."]},
        # over-long: the prompt is cut per response, so this record is scored whole
        {"id": "long", "prompt": long_prompt, "responses": ["Short.", "A longer answer here."]},
    ]


def media_records(omni: bool) -> list[dict[str, Any]]:
    picture = [{"type": "image", "path": f"picture{i}.png"} for i in range(3)]
    records: list[dict[str, Any]] = [
        {
            "id": "image-prompt",
            "prompt": [picture[0], text("Describe it.")],
            "responses": ["A", "B"],
        },
        {
            "id": "eight",
            "prompt": [text("Which caption fits?"), picture[1]],
            "responses": [f"Caption number {i}." + " more" * i for i in range(8)],
        },
        {
            "id": "video-prompt",
            "prompt": [{"type": "video", "path": "clip.mp4"}, text("What happens?")],
            "responses": ["A bar grows.", "Nothing.", "It shrinks slowly."],
        },
        {
            "id": "image-responses",
            "prompt": "Draw a green thing.",
            "responses": [[picture[2]], [picture[0], text("Here.")]],
        },
        {
            "id": "image-prompt-image-responses",
            "prompt": [text("Edit this:"), picture[1]],
            "responses": [[picture[0]], [picture[2]]],
        },
        {
            "id": "meshes",
            "prompt": "A box.",
            "responses": [
                [{"type": "mesh", "path": "box.glb"}],
                [{"type": "mesh", "path": "ball.ply"}],
            ],
        },
        {"id": "text-only", "prompt": "Hello?", "responses": ["Hi.", "Hello there."]},
    ]
    if omni:
        tone = {"type": "audio", "path": "tone.wav"}
        records += [
            {
                "id": "audio-prompt",
                "prompt": [tone, text("High or low?")],
                "responses": ["High.", "Low."],
            },
            {"id": "audio-responses", "prompt": "Play a tone.", "responses": [[tone], "No."]},
        ]
    return records


def reward_model(folder: Path, media_root: Path, max_length: int = 1024) -> tuple[Any, Any]:
    config = BTConfig(model=str(folder), data="-", output="-", max_length=max_length)
    model, builder, _ = build_reward_model(config, MediaResolver(media_root))
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():  # non-zero adapters, so LoRA takes part in the comparison
        for name, parameter in model.named_parameters():
            if "lora_B" in name:
                parameter.copy_(0.05 * torch.randn(parameter.shape, generator=generator))
    model.eval()
    return model, builder


def score(model: Any, builder: Any, records: list[dict[str, Any]], **settings: Any) -> Scorer:
    scorer = Scorer(model, builder, ScoreSettings(**settings), scored_by={})
    items = [(i + 1, parse_record(r)) for i, r in enumerate(records)]
    scorer.results = {r["id"]: r["rewards"] for r in scorer.score(items, ErrorPolicy("fail"))}  # type: ignore[attr-defined]
    return scorer


def assert_same(a: dict[str, list[float]], b: dict[str, list[float]]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(
            torch.tensor(a[key]), torch.tensor(b[key]), rtol=0, atol=1e-5, msg=key
        )


@pytest.mark.parametrize("fixture", ["tiny_qwen2", "tiny_llama"])
def test_text_shared_prefix_equals_whole_sequences(
    fixture: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    model, builder = reward_model(request.getfixturevalue(fixture), tmp_path, max_length=160)
    records = text_records()
    whole = score(model, builder, records, batch_size=4, share_prefix=False)
    for batch_size in (1, 3, 16):
        shared = score(model, builder, records, batch_size=batch_size)
        assert_same(whole.results, shared.results)  # type: ignore[attr-defined]
        # all but "long" (its prompt is truncated, differently for each response)
        assert shared.report.shared_prefix_records == 4
        assert shared.report.truncated_sequences == 2
    reversed_order = score(model, builder, records[::-1], batch_size=2)
    assert_same(whole.results, reversed_order.results)  # type: ignore[attr-defined]
    assert len({round(r, 6) for r in whole.results["ranked"]}) == 5  # type: ignore[attr-defined]


@pytest.mark.parametrize("fixture", ["tiny_qwen2_5_vl", "tiny_omni_thinker"])
def test_multimodal_shared_prefix_equals_whole_sequences(
    fixture: str, request: pytest.FixtureRequest, media_dir: Path
) -> None:
    omni = fixture == "tiny_omni_thinker"
    model, builder = reward_model(request.getfixturevalue(fixture), media_dir)
    records = media_records(omni)
    whole = score(model, builder, records, batch_size=3, share_prefix=False)
    shared = score(model, builder, records, batch_size=3)
    assert shared.report.shared_prefix_records == len(records)
    assert_same(whole.results, shared.results)  # type: ignore[attr-defined]
    shuffled = records[:]
    random.Random(1).shuffle(shuffled)
    one_at_a_time = score(model, builder, shuffled, batch_size=1)
    assert_same(whole.results, one_at_a_time.results)  # type: ignore[attr-defined]


def test_continuation_splits_tokens_and_media(tiny_qwen2_5_vl: Path, media_dir: Path) -> None:
    _, builder = reward_model(tiny_qwen2_5_vl, media_dir)
    record = parse_record(media_records(omni=False)[4])  # image prompt, image responses
    prefix = builder.encode_prompt(record)
    full = builder.encode(record, 1)
    rest = builder.continuation(full, prefix)
    assert rest is not None
    assert prefix.input_ids + rest.input_ids == full.input_ids
    # one image in the prompt, one in the response: grids and patches split between them
    assert prefix.media["image_grid_thw"].shape[0] == 1
    assert torch.equal(rest.media["image_grid_thw"], full.media["image_grid_thw"][1:])
    patches = int(prefix.media["image_grid_thw"].prod())
    assert torch.equal(rest.media["pixel_values"], full.media["pixel_values"][patches:])
    assert torch.equal(
        rest.media["mm_token_type_ids"], full.media["mm_token_type_ids"][prefix.length :]
    )
    # a sequence that does not begin with the prefix has no continuation
    other = builder.encode(parse_record(media_records(omni=False)[0]), 0)
    assert builder.continuation(other, prefix) is None


@pytest.mark.parametrize("fixture", ["tiny_qwen2_5_vl", "tiny_omni_thinker"])
def test_media_features_computed_once_per_item(
    fixture: str, request: pytest.FixtureRequest, media_dir: Path
) -> None:
    from omnirm.models.media_features import MediaFeatureCache

    omni = fixture == "tiny_omni_thinker"
    model, builder = reward_model(request.getfixturevalue(fixture), media_dir)
    records = media_records(omni)
    # the same prompt judged under three criteria: its image is encoded once
    records += [{**records[1], "id": f"eight-{i}", "criteria": f"Criterion {i}."} for i in range(3)]
    plain = score(model, builder, records, batch_size=4)
    cache = MediaFeatureCache()
    assert cache.install(model.backbone)
    cached = score(model, builder, records, batch_size=4)
    assert_same(plain.results, cached.results)  # type: ignore[attr-defined]
    # 3 pictures, 1 clip, 2 mesh renders (and for omni 1 tone) are distinct; the rest is reuse
    distinct = 7 if omni else 6
    assert cache.misses == distinct
    assert cache.hits >= (4 if omni else 3)
    hits = cache.hits
    score(model, builder, records, batch_size=4)  # a second pass computes nothing new
    assert cache.misses == distinct and cache.hits > hits
    with torch.enable_grad():  # training passes straight through
        batch = builder.collate([builder.encode(parse_record(records[0]), 0)])
        model(**batch)
    assert cache.misses == distinct


@pytest.mark.parametrize("fixture", ["tiny_qwen2", "tiny_llama", "tiny_qwen2_5_vl"])
def test_text_continuations_found_without_rendering_media_again(
    fixture: str, request: pytest.FixtureRequest, media_dir: Path
) -> None:
    _, builder = reward_model(request.getfixturevalue(fixture), media_dir)
    prompt: Any = (
        "Say hi." if fixture != "tiny_qwen2_5_vl" else media_records(omni=False)[0]["prompt"]
    )
    responses = ["Hi.", "\nHello", " leading space", "émoji 🙂 ok", "<|im_end|> literal"]
    record = parse_record({"id": "r", "prompt": prompt, "responses": responses})
    prefix, quick = builder.encode_shared(record)
    assert quick[0] is not None  # the common case takes the quick path
    for index, continuation in enumerate(quick):
        full = builder.encode(record, index)
        if continuation is None:
            # The response's first token may merge with the template's text before it ("\n" +
            # "\n"): then it is split from the whole sequence, or — when that does not begin
            # with the prefix either — the Scorer scores the record whole.
            assert responses[index].startswith("\n")
            split = builder.continuation(full, prefix)
            if split is None:
                continue
            continuation = split
        assert prefix.input_ids + continuation.input_ids == full.input_ids, responses[index]
    record = parse_record({"id": "r", "prompt": prompt, "responses": ["\nHello", "Hi."]})
    model, _ = reward_model(request.getfixturevalue(fixture), media_dir)
    whole = score(model, builder, [record.to_dict()], share_prefix=False)
    shared = score(model, builder, [record.to_dict()])
    assert_same(whole.results, shared.results)  # type: ignore[attr-defined]
