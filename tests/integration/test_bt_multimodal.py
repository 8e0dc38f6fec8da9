"""Train → save → reload → score through the CLI on tiny Qwen2.5-VL and Qwen2.5-Omni thinker
models, with images, video, audio and meshes in prompts and in responses.

The media are made at test time: PIL images, an H.264 clip written with PyAV, a 22.05 kHz WAV
(resampled to 16 kHz on the way in), and trimesh meshes exported to .glb and .ply.
"""

from __future__ import annotations

import contextlib
import io
import json
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from omnirm.cli.main import main
from tests.conftest import write_jsonl

RED, BLUE = (215, 35, 35), (35, 35, 215)


# --------------------------------------------------------------------------- media and records


def _image(path: Path, colour: tuple[int, int, int], seed: int) -> None:
    rng = np.random.default_rng(seed)
    size = (56 + 8 * (seed % 3), 64)
    noisy = np.asarray(colour) + rng.integers(-30, 30, (*size, 3))
    Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8)).save(path)


def _video(path: Path, frames: int = 12, fps: int = 6) -> None:
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.options = {"preset": "ultrafast"}
        for index in range(frames):
            frame = np.zeros((48, 64, 3), np.uint8)
            frame[:, : 4 * (index + 1)] = 255  # a bar that grows
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode(None))


def _audio(path: Path, frequency: float, rate: int = 22050) -> None:
    import soundfile

    t = np.arange(rate) / rate
    soundfile.write(path, (0.3 * np.sin(2 * np.pi * frequency * t)).astype(np.float32), rate)


def _meshes(folder: Path) -> None:
    import trimesh

    box = trimesh.creation.box()
    box.visual.face_colors = [200, 40, 40, 255]
    box.export(folder / "box.glb")
    ball = trimesh.creation.icosphere(subdivisions=1)
    ball.visual.vertex_colors = [40, 40, 200, 255]
    ball.export(folder / "ball.ply")


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with ``media/`` (12 red and 12 blue images, a clip, two tones, two meshes); the
    record files written next to it refer to ``media/…`` relative to this folder."""
    folder = tmp_path_factory.mktemp("data")
    media = folder / "media"
    media.mkdir()
    for i in range(12):
        _image(media / f"red{i}.png", RED, i)
        _image(media / f"blue{i}.png", BLUE, 100 + i)
    _video(media / "clip.mp4")
    _audio(media / "low.wav", 220.0)
    _audio(media / "high.wav", 880.0)
    _meshes(media)
    return folder


def image(path: str) -> dict[str, str]:
    return {"type": "image", "path": path}


def t2i_pairs(n: int, seed: int, prefix: str, images: range) -> list[dict[str, Any]]:
    """Text-to-image pairs whose preferred response is the red image (learnable)."""
    rng = random.Random(seed)
    records = []
    for i in range(n):
        red, blue = f"media/red{rng.choice(images)}.png", f"media/blue{rng.choice(images)}.png"
        swap = rng.random() < 0.5
        responses = [[image(blue)], [image(red)]] if swap else [[image(red)], [image(blue)]]
        records.append(
            {
                "id": f"{prefix}-t2i-{i}",
                "prompt": "Draw something red.",
                "criteria": "Prefer the picture that follows the instruction.",
                "responses": responses,
                "preference": 1 if swap else 0,
            }
        )
    return records


def colour_questions(n: int, seed: int, prefix: str, images: range) -> list[dict[str, Any]]:
    """ "What colour is this picture?" with a red or blue picture: the right text answer depends
    on the prompt's image (learnable only by looking at it)."""
    rng = random.Random(seed)
    records = []
    for i in range(n):
        colour = rng.choice(["red", "blue"])
        responses = ["It is red.", "It is blue."]
        rng.shuffle(responses)
        records.append(
            {
                "id": f"{prefix}-colour-{i}",
                "prompt": [
                    image(f"media/{colour}{rng.choice(images)}.png"),
                    {"type": "text", "text": "What colour is this picture?"},
                ],
                "responses": responses,
                "preference": responses.index(f"It is {colour}."),
            }
        )
    return records


def mixed_records(prefix: str, *, audio: bool, video: bool = True) -> list[dict[str, Any]]:
    """One record per other task: image prompt, video prompt, meshes as responses, and (for
    omni) an audio prompt."""
    records: list[dict[str, Any]] = [
        {
            "id": f"{prefix}-ti2t",
            "prompt": [{"type": "text", "text": "What colour is it?"}, image("media/red0.png")],
            "responses": ["It is red.", "It is blue."],
            "preference": 0,
        },
        {
            "id": f"{prefix}-t23d",
            "prompt": "A red box.",
            "responses": [
                [{"type": "mesh", "path": "media/box.glb"}],
                [{"type": "mesh", "path": "media/ball.ply"}],
            ],
            "preference": 0,
        },
    ]
    if video:
        records.append(
            {
                "id": f"{prefix}-tv2t",
                "prompt": [
                    {"type": "video", "path": "media/clip.mp4"},
                    {"type": "text", "text": "What happens?"},
                ],
                "responses": ["A white bar grows.", "Nothing moves."],
                "preference": 0,
            }
        )
    if audio:
        records.append(
            {
                "id": f"{prefix}-ta2t",
                "prompt": [
                    {"type": "text", "text": "Is this tone high or low?"},
                    {"type": "audio", "path": "media/high.wav"},
                ],
                "responses": ["Low.", [{"type": "text", "text": "High."}]],
                "preference": 1,
            }
        )
    return records


def train(model: Path, out: Path, train_file: Path, eval_file: Path, *extra: str) -> Path:
    """``omnirm train bt`` in-process; its JSON summary is kept out of the tests' captured
    stdout (these fixtures may be set up inside a test that reads it)."""
    summary = io.StringIO()
    with contextlib.redirect_stdout(summary):
        code = main(
            [
                "-q", "train", "bt", "--model", str(model), "--data", str(train_file),
                "--eval", str(eval_file), "-o", str(out), "--max-length", "512",
                "--no-bf16",  # fp32: eval_rewards.jsonl equals what score gives
                *extra,
            ]
        )  # fmt: skip
    assert code == 0
    assert json.loads(summary.getvalue())["steps"] > 0
    return out


@pytest.fixture(scope="module")
def vl_trained(
    tiny_qwen2_5_vl: Path, data_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, Path]:
    """Qwen2.5-VL with LoRA on T2I pairs plus image, video and mesh records: (model, eval file).
    Meshes are rendered as 2 views of 128 pixels (not the default 4 × 256): scoring must read
    that from the saved model to reproduce the training rewards."""
    train_file = write_jsonl(
        data_dir / "vl_train.jsonl",
        t2i_pairs(16, 0, "train", range(8)) + mixed_records("train", audio=False),
    )
    eval_file = write_jsonl(
        data_dir / "vl_eval.jsonl",
        t2i_pairs(8, 1, "eval", range(8, 12)) + mixed_records("eval", audio=False),
    )
    out = tmp_path_factory.mktemp("rm") / "vl"
    train(tiny_qwen2_5_vl, out, train_file, eval_file, "--epochs", "2", "--batch-size", "8",
          "--lr", "2e-3", "--mesh-views", "2", "--mesh-size", "128")  # fmt: skip
    return out, eval_file


@pytest.fixture(scope="module")
def omni_trained(
    tiny_omni_thinker: Path, data_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, Path]:
    """The Omni thinker (thinker-only layout) with LoRA; audio, image and mesh records."""
    records = t2i_pairs(2, 2, "omni", range(12)) + mixed_records("omni", audio=True, video=False)
    train_file = write_jsonl(data_dir / "omni_train.jsonl", records)
    # one Omni video in the eval set (its processor upsizes frames: ~288 tokens for 4 frames)
    eval_file = write_jsonl(
        data_dir / "omni_eval.jsonl", records + mixed_records("omni-eval", audio=False)[-1:]
    )
    out = tmp_path_factory.mktemp("rm") / "omni"
    train(tiny_omni_thinker, out, train_file, eval_file, "--batch-size", "3")
    return out, eval_file


@pytest.fixture(scope="module")
def omni_full_trained(
    tiny_omni_full: Path, data_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, Path]:
    """The released Omni layout (``qwen2_5_omni``), all weights trained except the towers."""
    records = mixed_records("full", audio=True, video=False)
    data = write_jsonl(data_dir / "omni_full.jsonl", records)
    out = tmp_path_factory.mktemp("rm") / "omni-full"
    train(tiny_omni_full, out, data, data, "--full", "--lr", "1e-4", "--batch-size", "3")
    return out, data


TRAINED = ["vl_trained", "omni_trained", "omni_full_trained"]


def rewards_file(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


# --------------------------------------------------------------------------- tests


def test_vl_checkpoint_saves_the_processor_and_learns(vl_trained: tuple[Path, Path]) -> None:
    out, _ = vl_trained
    config = json.loads((out / "omnirm_config.json").read_text())
    assert (config["kind"], config["head"], config["adapter"]) == ("vision", "value", "lora")
    assert config["lora"]["exclude_modules"]  # the towers
    assert (out / "tokenizer" / "processor_config.json").is_file()
    assert (out / "tokenizer" / "chat_template.jinja").is_file()
    # the learning check: held-out T2I pairs (unseen images) prefer the red picture
    t2i = [r for r in rewards_file(out / "eval_rewards.jsonl") if "-t2i-" in r["id"]]
    assert sum(r["predicted"] == r["preference"] for r in t2i) / len(t2i) >= 0.9


def test_prompt_image_decides_the_text_response(
    tiny_qwen2_5_vl: Path, data_dir: Path, tmp_path: Path
) -> None:
    """The learning check that needs the prompt's image: full fine-tuning (towers frozen), held-out
    pictures."""
    train_file = write_jsonl(
        data_dir / "colour_train.jsonl", colour_questions(48, 0, "t", range(8))
    )
    eval_file = write_jsonl(
        data_dir / "colour_eval.jsonl", colour_questions(24, 1, "e", range(8, 12))
    )
    out = train(tiny_qwen2_5_vl, tmp_path / "rm", train_file, eval_file, "--full", "--lr", "1e-3",
                "--epochs", "5", "--batch-size", "8")  # fmt: skip
    result = json.loads((out / "train_result.json").read_text())
    assert result["evals"][-1]["accuracy"] >= 0.9


@pytest.mark.parametrize("trained", TRAINED)
def test_reload_reproduces_training_scores(
    cli: Callable[..., Any], trained: str, request: pytest.FixtureRequest
) -> None:
    out, eval_file = request.getfixturevalue(trained)
    result = cli("score", "--model", str(out), str(eval_file), "--batch-size", "3")
    assert result.code == 0, result.stderr
    at_training = rewards_file(out / "eval_rewards.jsonl")
    reloaded = result.jsonl()
    assert [r["id"] for r in reloaded] == [r["id"] for r in at_training]
    for a, b in zip(at_training, reloaded, strict=True):
        assert b["rewards"] == pytest.approx(a["rewards"], abs=1e-5)


@pytest.mark.parametrize("trained", ["vl_trained", "omni_trained"])
def test_scores_do_not_depend_on_batch_size_order_or_file_place(
    cli: Callable[..., Any], trained: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    out, eval_file = request.getfixturevalue(trained)
    one = cli("score", "--model", str(out), str(eval_file), "--batch-size", "1")
    assert one.code == 0, one.stderr
    # reversed, in another folder: media resolve against --media-root
    records = [json.loads(line) for line in eval_file.read_text().splitlines()]
    moved = write_jsonl(tmp_path / "reversed.jsonl", list(reversed(records)))
    three = cli("score", "--model", str(out), str(moved), "--batch-size", "3",
                "--media-root", str(eval_file.parent))  # fmt: skip
    assert three.code == 0, three.stderr
    by_id = {r["id"]: r["rewards"] for r in three.jsonl()}
    for record in one.jsonl():
        assert by_id[record["id"]] == pytest.approx(record["rewards"], abs=1e-5)


def test_missing_media_is_a_located_error(
    cli: Callable[..., Any], vl_trained: tuple[Path, Path], data_dir: Path
) -> None:
    out, _ = vl_trained
    records = [
        {"id": "fine", "prompt": "hi", "responses": ["a", "b"], "preference": 0},
        {"id": "lost", "prompt": [image("media/gone.png")], "responses": ["a", "b"],
         "preference": 0},
    ]  # fmt: skip
    path = write_jsonl(data_dir / "missing.jsonl", records)
    failed = cli("score", "--model", str(out), str(path))
    assert failed.code == 1
    assert "missing.jsonl:2: record 'lost'" in failed.stderr and "prompt[0]" in failed.stderr
    assert "gone.png" in failed.stderr
    kept = cli("score", "--model", str(out), str(path), "--on-error", "record")
    assert kept.code == 1
    fine, lost = kept.jsonl()
    assert len(fine["rewards"]) == 2
    assert lost["error"]["id"] == "lost" and lost["error"]["path"] == "media/gone.png"
    assert "rewards" not in lost
    # training stops too, naming the file, line, record and path
    trained = cli("train", "bt", "--model", str(json.loads(
        (out / "omnirm_config.json").read_text())["backbone"]), "--data", str(path), "-o",
        str(data_dir / "never"))  # fmt: skip
    assert trained.code == 1
    assert "missing.jsonl:2: record 'lost'" in trained.stderr and "gone.png" in trained.stderr


def test_media_settings_are_saved_with_the_model(vl_trained: tuple[Path, Path]) -> None:
    from dataclasses import asdict

    from omnirm.media import MediaLimits

    out, _ = vl_trained
    inputs = json.loads((out / "omnirm_config.json").read_text())["inputs"]
    assert (inputs["mesh_views"], inputs["mesh_size"], inputs["video_frames"]) == (2, 128, 4)
    training = json.loads((out / "training_config.json").read_text())
    assert (training["mesh_views"], training["mesh_size"]) == (2, 128)
    assert training["allow_urls"] is False
    assert training["media_limits"] == asdict(MediaLimits())


def test_media_limits_apply_to_scoring_and_training(
    cli: Callable[..., Any], vl_trained: tuple[Path, Path], data_dir: Path
) -> None:
    out, _ = vl_trained
    pictures = write_jsonl(data_dir / "pictures.jsonl", t2i_pairs(1, 5, "limit", range(12)))
    fine = cli("score", "--model", str(out), str(pictures))
    assert fine.code == 0, fine.stderr
    refused = cli("score", "--model", str(out), str(pictures), "--max-image-pixels", "10")
    assert refused.code == 1
    assert "record 'limit-t2i-0'" in refused.stderr
    assert "over the limit of 10 (--max-image-pixels)" in refused.stderr
    assert refused.stdout == ""
    # training reads its media under the limits too (the ball has 80 faces, the box 12)
    meshes = write_jsonl(data_dir / "meshes.jsonl", mixed_records("limit", audio=False)[1:2])
    backbone = json.loads((out / "omnirm_config.json").read_text())["backbone"]
    trained = cli("train", "bt", "--model", backbone, "--data", str(meshes),
                  "-o", str(data_dir / "never-meshes"), "--max-mesh-faces", "50")  # fmt: skip
    assert trained.code == 1
    assert "meshes.jsonl:1: record 'limit-t23d'" in trained.stderr
    assert "mesh has 80 faces, over the limit of 50 (--max-mesh-faces)" in trained.stderr


def test_outside_root_and_unreadable_modalities_are_refused(
    cli: Callable[..., Any], vl_trained: tuple[Path, Path], data_dir: Path, tmp_path: Path
) -> None:
    out, _ = vl_trained
    outside = tmp_path / "outside.png"
    _image(outside, RED, 0)
    records = [
        {"id": "out", "prompt": [image(str(outside))], "responses": ["a", "b"]},
        {"id": "audio", "prompt": [{"type": "audio", "path": "media/low.wav"}],
         "responses": ["a", "b"]},
    ]  # fmt: skip
    path = write_jsonl(data_dir / "refused.jsonl", records)
    result = cli("score", "--model", str(out), str(path), "--on-error", "record")
    errors = [r["error"]["message"] for r in result.jsonl()]
    assert "--allow-outside-root" in errors[0]
    assert "cannot read audio" in errors[1]  # Qwen2.5-VL has no audio tower
    allowed = cli("score", "--model", str(out), str(path), "--on-error", "record",
                  "--allow-outside-root")  # fmt: skip
    assert "rewards" in allowed.jsonl()[0]


def test_text_backbone_given_images_fails_clearly(
    cli: Callable[..., Any], tiny_qwen2: Path, vl_trained: tuple[Path, Path], tmp_path: Path
) -> None:
    _, eval_file = vl_trained
    result = cli("train", "bt", "--model", str(tiny_qwen2), "--data", str(eval_file),
                 "-o", str(tmp_path / "rm"))  # fmt: skip
    assert result.code == 1
    assert "reads text only" in result.stderr and "record 'eval-t2i-0'" in result.stderr


def test_towers_frozen_and_lora_only_in_the_language_model(
    tiny_omni_thinker: Path, omni_trained: tuple[Path, Path], data_dir: Path
) -> None:
    from safetensors import safe_open

    from omnirm.models.checkpoint import build_reward_model
    from omnirm.train.bt import BTConfig

    out, _ = omni_trained
    with safe_open(str(out / "adapter" / "adapter_model.safetensors"), "pt") as adapter:
        names = list(adapter.keys())
    assert any("language_model" in n for n in names)
    assert not any("visual" in n or "audio_tower" in n for n in names)

    def trainable(full: bool) -> dict[str, bool]:
        config = BTConfig(
            model=str(tiny_omni_thinker), data=str(data_dir / "omni_train.jsonl"), output="-",
            full=full, gradient_checkpointing=True,
        )  # fmt: skip
        model, _, _ = build_reward_model(config)
        return {name: p.requires_grad for name, p in model.named_parameters()}

    for full in (False, True):
        grads = trainable(full)
        towers = {n: g for n, g in grads.items() if ".visual." in n or ".audio_tower." in n}
        assert towers and not any(towers.values())
        language = [g for n, g in grads.items() if ".language_model." in n]
        assert any(language) and (all(language) if full else not all(language))
        assert grads["head.score.weight"]


def test_media_decoded_once_and_prompt_text_truncated_around_media(
    vl_trained: tuple[Path, Path], data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import omnirm.media.image
    from omnirm.media import MediaResolver
    from omnirm.models.checkpoint import load_reward_model
    from omnirm.models.inputs import TooLongError
    from omnirm.records import parse_record

    out, _ = vl_trained
    _, builder, _ = load_reward_model(out, resolver=MediaResolver(data_dir))
    calls: list[Path] = []
    real = omnirm.media.image.load_image
    monkeypatch.setattr(
        omnirm.media.image, "load_image", lambda p, *a: calls.append(p) or real(p, *a)
    )
    first, second = (
        parse_record({"id": f"r{i}", "prompt": [image("media/red3.png")], "responses": ["a", "b"]})
        for i in range(2)
    )
    a, b = builder.encode(first, 0), builder.encode(second, 1)
    assert len(calls) == 1
    assert a.media["pixel_values"].equal(b.media["pixel_values"])

    long = parse_record(
        {
            "id": "long",
            "prompt": [{"type": "text", "text": "word " * 200}, image("media/red3.png"),
                       {"type": "text", "text": "the end"}],
            "responses": ["a short answer", "b"],
        }
    )  # fmt: skip
    image_pad = builder.tokenizer.convert_tokens_to_ids("<|image_pad|>")
    full = builder.encode(long, 0)
    builder.settings.max_length = full.length - 150
    cut = builder.encode(long, 0)
    assert cut.length <= builder.settings.max_length and cut.truncated_tokens >= 150
    assert cut.input_ids.count(image_pad) == full.input_ids.count(image_pad) > 0
    assert cut.media["pixel_values"].equal(full.media["pixel_values"])
    text = builder.tokenizer.decode(cut.input_ids)
    assert "…" in text and "the end" in text and "a short answer" in text
    builder.settings.max_length = full.length - 210  # the media alone no longer fit
    with pytest.raises(TooLongError, match="never truncated"):
        builder.encode(long, 0)


def test_two_process_training_with_trainable_towers(
    tiny_qwen2_5_vl: Path, data_dir: Path, tmp_path: Path
) -> None:
    """Data-parallel (torchrun, gloo) with ``--train-media``: in a step where one process has
    a picture and the other has none, the vision tower gets gradients on one side only."""
    import os
    import subprocess
    import sys

    from tests.integration.test_bt_text import _free_port

    records = colour_questions(4, 7, "ddp", range(4))
    text_only = [
        {"id": f"ddp-text-{i}", "prompt": "Say yes.", "responses": ["Yes.", "No."], "preference": 0}
        for i in range(4)
    ]
    # batch size 1: process 0 takes records 0, 2, 4, 6 and process 1 takes 1, 3, 5, 7
    mixed = [item for pair in zip(records, text_only, strict=True) for item in pair]
    path = write_jsonl(data_dir / "ddp.jsonl", mixed)
    out = tmp_path / "rm"
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
        "--master_port", str(_free_port()), "-m", "omnirm", "-q", "train", "bt",
        "--model", str(tiny_qwen2_5_vl), "--data", str(path), "-o", str(out),
        "--batch-size", "1", "--max-length", "512", "--train-media", "--full",
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (summary,) = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert summary["steps"] == 4
