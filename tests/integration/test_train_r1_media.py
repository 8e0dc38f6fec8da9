"""omnirm train r1 on media judges: Qwen2.5-VL (images, video, a 3D mesh) and the Qwen2.5-Omni
thinker (images, audio, a 3D mesh), with the judge's own conversations (a mesh as its rendered
views, as ``score --judge`` shows it), the towers frozen by default."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from tests.conftest import write_jsonl


def mesh_record(folder: Path) -> dict[str, Any]:
    """A text-to-3D record whose second response is a box mesh (written into ``folder``)."""
    import trimesh

    trimesh.creation.box().export(folder / "box.glb")
    return {"id": "t23d", "prompt": "A box.", "preference": 1,
            "responses": ["none", [{"type": "mesh", "path": "box.glb"}]],
            "rationale": "Response B is a box."}  # fmt: skip


def media_records(folder: Path, omni: bool, mesh: bool = False) -> Path:
    """Image and video (VL) or image and audio (Omni) records with rationales; ``mesh`` adds a
    3D one."""
    import soundfile

    from tests.integration.test_bt_multimodal import _video

    Image.new("RGB", (40, 40), "red").save(folder / "red.png")
    Image.new("RGB", (40, 40), "blue").save(folder / "blue.png")
    red, blue = {"type": "image", "path": "red.png"}, {"type": "image", "path": "blue.png"}
    records: list[dict[str, Any]] = [
        {"id": "ti2t", "prompt": [red, {"type": "text", "text": "Colour?"}],
         "responses": ["red", "blue"], "preference": 0, "rationale": "Response A names it."},
        {"id": "t2i", "prompt": "A blue square.", "responses": [[red], [blue]], "preference": 1,
         "rationale": "Response B is blue."},
    ]  # fmt: skip
    if mesh:
        records.append(mesh_record(folder))
    if omni:
        soundfile.write(folder / "tone.wav", 0.2 * np.sin(np.arange(8000) / 5.0), 8000)
        tone = {"type": "audio", "path": "tone.wav"}
        records.append({"id": "ta2t", "prompt": [tone, {"type": "text", "text": "Pitch?"}],
                        "responses": ["low", "high"], "preference": 1,
                        "rationale": "Response B hears it."})  # fmt: skip
    else:
        _video(folder / "clip.mp4")
        records.append({"id": "tv2t", "prompt": [{"type": "video", "path": "clip.mp4"}],
                        "responses": ["a bar", "nothing"], "preference": 0,
                        "rationale": "Response A sees the bar."})  # fmt: skip
    return write_jsonl(folder / "media.jsonl", records)


def tower(weights: dict[str, Any]) -> dict[str, Any]:
    """The media towers' weights by their name from the tower on (prefixes differ by layout)."""
    found = {}
    for name, value in weights.items():
        for part in ("visual.", "audio_tower."):
            if part in name:
                found[name[name.index(part) :]] = value
    return found


@pytest.mark.parametrize("fixture", ["tiny_qwen2_5_vl", "tiny_omni_thinker"])
@pytest.mark.parametrize("full", [False, True], ids=["lora", "full"])
def test_media_judges_train_sft_and_grpo_and_judge(  # type: ignore[no-untyped-def]
    cli, fixture: str, full: bool, request: pytest.FixtureRequest, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    from safetensors.torch import load_file

    monkeypatch.setenv("OMNIRM_CACHE_DIR", str(tmp_path / "cache"))
    omni = fixture == "tiny_omni_thinker"
    data = media_records(tmp_path, omni, mesh=True)
    model = request.getfixturevalue(fixture)
    out = tmp_path / "judge"
    result = cli(
        "train", "r1", "--model", str(model), "--data", str(data), "-o", str(out),
        "--stage", "sft,grpo", "--max-steps", "2", "--batch-size", "2", "--generations", "2",
        "--prompts-per-step", "2", "--max-completion-length", "4", "--lr", "1e-3",
        *(["--full"] if full else []),
    )  # fmt: skip
    assert result.code == 0, result.stderr
    steps = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [(s["stage"], s["step"]) for s in steps] == [
        ("sft", 1), ("sft", 2), ("grpo", 1), ("grpo", 2)
    ]  # fmt: skip
    assert all(np.isfinite(s["loss"]) for s in steps)
    assert steps[2]["kl"] == 0.0
    trained = load_file(str(next(out.glob("model*.safetensors"))))
    before = {}
    for path in Path(model).glob("*.safetensors"):
        before.update(load_file(str(path)))
    towers, original = tower(trained), tower(before)
    assert towers and towers.keys() == original.keys()
    for name, value in towers.items():  # frozen by default, with LoRA and with --full
        assert float((original[name] - value).abs().max()) == 0.0, name
    language = {  # the language model's layers did train (LoRA merged, or all weights)
        name[name.index("layers.") :]: value
        for name, value in trained.items()
        if "layers." in name and "visual" not in name and "audio_tower" not in name
    }
    base = {
        name[name.index("layers.") :]: value
        for name, value in before.items()
        if "layers." in name and "visual" not in name and "audio_tower" not in name
    }
    assert language.keys() == base.keys()
    assert any(float((base[k] - v).abs().max()) > 0 for k, v in language.items())
    scored = cli("score", "--judge", f"hf:{out}", str(data), "--max-new-tokens", "4",
                 "--retries", "0")  # fmt: skip
    assert scored.code == 0, scored.stderr
    assert [r["id"] for r in scored.jsonl()] == ["ti2t", "t2i", "t23d", "ta2t" if omni else "tv2t"]


def test_a_mesh_record_trains_as_its_rendered_views(  # type: ignore[no-untyped-def]
    cli, tiny_qwen2_5_vl: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OMNIRM_CACHE_DIR", str(tmp_path / "cache"))
    record = mesh_record(tmp_path)
    data = write_jsonl(tmp_path / "mesh.jsonl", [record])
    out = tmp_path / "judge"
    result = cli("train", "r1", "--model", str(tiny_qwen2_5_vl), "--data", str(data),
                 "-o", str(out), "--stage", "sft", "--batch-size", "2", "--lr", "1e-3")  # fmt: skip
    assert result.code == 0, result.stderr
    (step,) = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert step["stage"] == "sft" and np.isfinite(step["loss"])  # both orders, one batch
    text = write_jsonl(tmp_path / "text.jsonl", [{**record, "responses": ["none", "a box"]}])
    tokens = {}
    for name, path in (("mesh", data), ("text", text)):
        scored = cli("score", "--judge", f"hf:{out}", str(path), "--max-new-tokens", "2",
                     "--retries", "0")  # fmt: skip
        assert scored.code == 0, scored.stderr
        tokens[name] = scored.jsonl()[0]["judgements"][0]["prompt_tokens"]
    assert tokens["mesh"] > tokens["text"] + 10  # the views are image tokens, not a file name
