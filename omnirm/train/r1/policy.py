"""The judge being trained: loading it (as ``train bt`` loads its backbone, LoRA included),
encoding its conversations, token log-probabilities, and saving a folder that
``omnirm score --judge hf:DIR`` loads as it is.

The output folder holds the merged model (``config.json``, ``model.safetensors``, generation
config), its tokenizer with the chat template, ``adapters/<stage>/`` (each LoRA stage's adapter;
GRPO's applies on top of the SFT-merged model), ``training_config.json``, ``metrics.jsonl``
and ``train_result.json``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from omnirm.errors import RecordError, UsageError
from omnirm.models.backends.base import Conversation
from omnirm.models.backends.hf import as_text_message
from omnirm.models.checkpoint import MEDIA_TOWERS, LoraSettings, apply_lora, load_tokenizer
from omnirm.train.r1.config import R1Config

ADAPTERS = "adapters"


class Policy:
    """A causal LM judge and its tokenizer; ``lora`` is set while an adapter is attached. A
    vision-language or omni judge also has its ``processor`` and the ``modalities`` it reads."""

    def __init__(
        self,
        net: Any,
        tokenizer: Any,
        lora: LoraSettings | None,
        processor: Any = None,
        modalities: frozenset[str] = frozenset(),
    ) -> None:
        self.net = net
        self.tokenizer = tokenizer
        self.lora = lora
        self.processor = processor
        self.modalities = modalities
        ids = getattr(getattr(net, "generation_config", None), "eos_token_id", None)
        eos = set(ids if isinstance(ids, list) else [ids] if ids is not None else [])
        if tokenizer.eos_token_id is not None:
            eos.add(int(tokenizer.eos_token_id))
        self.eos_ids = eos

    def attach_lora(self, config: R1Config, settings: LoraSettings | None) -> None:
        """A fresh adapter (``settings``), or all weights trainable (None)."""
        self.lora = settings
        if settings is None:
            self.net.requires_grad_(True)
            if config.freeze_media:  # LoRA leaves them out by its settings
                for name, module in self.net.named_modules():
                    if name.rsplit(".", 1)[-1] in MEDIA_TOWERS:
                        module.requires_grad_(False)
        else:
            self.net = apply_lora(self.net, settings)
        if config.gradient_checkpointing:
            # non-reentrant; also makes the input embeddings require grad, which LoRA needs
            self.net.activation_checkpointing_enable()

    def merge(self) -> None:
        """Fold the adapter into the weights (the next stage starts from them)."""
        if self.lora is not None:
            self.net = self.net.merge_and_unload()
            self.lora = None


def load_policy(config: R1Config) -> tuple[Policy, Any]:
    """The base model of ``config`` in fp32 with its tokenizer (and processor), and its resolved
    reference: a text causal LM (a folder, a ``.gguf`` file or a hub id), or a
    vision-language or omni model (its thinker), loaded as ``score --judge hf:`` loads it."""
    from transformers import AutoModelForCausalLM

    from omnirm.models.checkpoint import detect_kind, resolve_training_model
    from omnirm.models.safety import weight_options

    resolved = resolve_training_model(config)
    source, gguf_file = resolved.folder, resolved.gguf_file
    kind, _ = detect_kind(source, gguf_file, config.trust_remote_code)
    if kind != "text":
        from omnirm.models.backends.hf import load_media_judge

        if gguf_file:
            raise UsageError(f"--model {config.model}: a {kind} judge trains from a folder")
        net, processor, modalities = load_media_judge(
            source,
            config.trust_remote_code,
            {"dtype": torch.float32, "trust_remote_code": config.trust_remote_code,
             **weight_options(None)},
        )  # fmt: skip
        processor.tokenizer.padding_side = "right"
        return Policy(net, processor.tokenizer, None, processor, modalities), resolved
    tokenizer = load_tokenizer(source, gguf_file, config.trust_remote_code)
    options: dict[str, Any] = {}
    if gguf_file:
        from transformers import GgufConfig

        # dense weights, which train and save (GGUF blocks do neither)
        options["quantization_config"] = GgufConfig(gguf_file=gguf_file, dequantize=True)
    net = AutoModelForCausalLM.from_pretrained(
        source,
        gguf_file=gguf_file,
        dtype=torch.float32,
        trust_remote_code=config.trust_remote_code,
        **options,
        **weight_options(gguf_file),
    )
    if gguf_file:  # the quantizer stays attached to the dequantised model and refuses to save it
        net.hf_quantizer = None  # type: ignore[assignment]
        if hasattr(net.config, "quantization_config"):
            del net.config.quantization_config
    return Policy(net, tokenizer, None), resolved


def prompt_ids(tokenizer: Any, conversation: Conversation, processor: Any = None) -> list[int]:
    """The tokens of ``conversation`` up to where the judge's answer starts (with a processor,
    each medium's placeholder tokens included)."""
    if processor is not None:
        from omnirm.models.backends.hf import encode_chat

        return encode_chat(tokenizer, processor, [conversation])["input_ids"][0].tolist()
    messages = [as_text_message(m) for m in conversation]
    encoded = tokenizer.apply_chat_template(
        messages, add_generation_prompt=True, tokenize=True, return_dict=True
    )
    return list(encoded["input_ids"])


def answer_ids(
    tokenizer: Any,
    conversation: Conversation,
    answer: str,
    eos_ids: set[int],
    processor: Any = None,
) -> tuple[list[int], list[int]]:
    """Tokens and labels of ``conversation`` answered with ``answer``: labels are -100 on
    everything but the answer and its end-of-turn token (what the template puts after it is
    masked too)."""
    prompt = prompt_ids(tokenizer, conversation, processor)
    if processor is not None:
        from omnirm.models.backends.hf import encode_chat

        encoded = encode_chat(tokenizer, processor, [conversation], answers=[answer])
        full = encoded["input_ids"][0].tolist()
    else:
        messages = [as_text_message(m) for m in conversation]
        full = list(
            tokenizer.apply_chat_template(
                [*messages, {"role": "assistant", "content": answer}],
                tokenize=True,
                return_dict=True,
            )["input_ids"]
        )
    if full[: len(prompt)] != prompt:
        raise UsageError(
            "the model's chat template renders an answered conversation with another start "
            "than the generation prompt, so the answer's tokens cannot be told apart"
        )
    labels = [-100] * len(prompt) + full[len(prompt) :]
    end = next((i for i in range(len(prompt), len(full)) if full[i] in eos_ids), None)
    if end is not None:
        labels[end + 1 :] = [-100] * (len(full) - end - 1)
    return full, labels


def check_length(length: int, limit: int, what: str) -> None:
    if length > limit:
        raise RecordError(f"{what} has {length} tokens, over --max-length {limit}")


def completion_logprobs(
    net: Any,
    sequences: torch.Tensor,
    attention: torch.Tensor,
    start: int,
    media: dict[str, torch.Tensor] | None = None,
) -> torch.Tensor:
    """Log-probabilities of the tokens of ``sequences`` from position ``start`` on (the
    completions after left-padded prompts), shape (rows, width - start). Positions count real
    tokens only, as ``generate`` counts them for left-padded rows; with ``media`` (the rows'
    processor inputs: pixel values, audio features …) the model places its own (multimodal
    rotary positions). Only the completion's positions go through the LM head
    (``logits_to_keep``): logits over the whole prompt would be (rows × width × vocabulary)
    floats, and their gradient as many, for nothing."""
    keep = sequences.shape[1] - start + 1  # the last prompt position predicts the first token
    if media:
        logits = net(
            input_ids=sequences, attention_mask=attention, logits_to_keep=keep, **media
        ).logits
    else:
        positions = (attention.long().cumsum(-1) - 1).clamp(min=0)
        logits = net(
            input_ids=sequences,
            attention_mask=attention,
            position_ids=positions,
            logits_to_keep=keep,
        ).logits
    # a model without ``logits_to_keep`` (the Qwen2.5-Omni thinker takes it into its
    # ``**kwargs`` and ignores it) returns every position's logits: keep the last ``keep``
    logits = logits[:, -keep:-1, :].float()
    targets = sequences[:, start:]
    return torch.log_softmax(logits, dim=-1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)


def save_adapter(output: Path, stage: str, policy: Policy) -> None:
    """The stage's LoRA adapter in ``adapters/<stage>/`` (safetensors)."""
    if policy.lora is not None:
        policy.net.save_pretrained(output / ADAPTERS / stage)


def save_judge(output: Path, policy: Policy) -> None:
    """The merged model and tokenizer at the top of ``output`` (what ``hf:DIR`` loads)."""
    policy.merge()
    policy.net.save_pretrained(output)
    (policy.processor or policy.tokenizer).save_pretrained(output)
