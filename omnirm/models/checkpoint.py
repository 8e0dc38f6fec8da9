"""Building, saving, reloading and exporting reward models.

A checkpoint folder holds:

- ``omnirm_config.json`` — :class:`RewardModelConfig`: backbone, head kind, adapter, input
  settings (template policy, max length, truncation, media sampling), reward normalisation;
- ``adapter/`` — the LoRA adapter (peft, safetensors), or ``model/`` — full weights;
- ``head.safetensors`` — the reward head (never lost with LoRA);
- ``tokenizer/`` — the tokenizer or processor with its chat template and padding settings;
- ``training_config.json`` — the resolved training configuration (written by the recipe).

:func:`load_reward_model` rebuilds exactly the model that was trained and scores the same
(a test holds it to 1e-5). :func:`export_merged` writes a plain
``…ForSequenceClassification`` checkpoint for families that have one, which transformers (and
vLLM) load without omnirm.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from omnirm import __version__
from omnirm.errors import UsageError
from omnirm.models.inputs import InputSettings, TextInputBuilder
from omnirm.models.reward_model import NativeScore, RewardModel, value_head_for

CONFIG_FILE = "omnirm_config.json"
HEAD_FILE = "head.safetensors"
ADAPTER_DIR = "adapter"
MODEL_DIR = "model"
TOKENIZER_DIR = "tokenizer"

#: The chat template used when a tokenizer has none (ChatML, as Qwen and SmolLM2 use).
CHATML_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{{ message['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


@dataclass
class LoraSettings:
    r: int = 16
    alpha: int = 32
    dropout: float = 0.05
    target_modules: str | list[str] = "all-linear"


@dataclass
class RewardModelConfig:
    """What a checkpoint needs to be rebuilt; saved as ``omnirm_config.json``."""

    backbone: str
    kind: str = "text"  # "text" | "vision" | "omni"
    head: str = "native"  # "native" (the family's score layer) | "value" (dropout + linear)
    adapter: str | None = "lora"  # "lora", or None for full weights
    lora: LoraSettings | None = None
    gguf_file: str | None = None
    trust_remote_code: bool = False
    head_dropout: float = 0.0
    inputs: InputSettings = field(default_factory=InputSettings)
    reward_mean: float | None = None
    reward_std: float | None = None
    omnirm_version: str = __version__

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str) -> RewardModelConfig:
        data = json.loads(text)
        lora = data.pop("lora", None)
        inputs = data.pop("inputs", {})
        return cls(
            **data,
            lora=LoraSettings(**lora) if lora else None,
            inputs=InputSettings(**inputs),
        )


def split_gguf(path: str) -> tuple[str, str | None]:
    """``folder/model.gguf`` → (``folder``, ``model.gguf``); other paths unchanged."""
    if path.endswith(".gguf"):
        file = Path(path)
        return str(file.parent), file.name
    return path, None


def _load_tokenizer(source: str, gguf_file: str | None, trust_remote_code: bool) -> Any:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(
        source, gguf_file=gguf_file, trust_remote_code=trust_remote_code
    )
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    if not getattr(tokenizer, "chat_template", None):
        tokenizer.chat_template = CHATML_TEMPLATE
    tokenizer.padding_side = "right"
    return tokenizer


def _native_class_available(model_type: str) -> bool:
    from transformers.models.auto.modeling_auto import (
        MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES,
    )

    return model_type in MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES


def _load_backbone(
    config: RewardModelConfig, dtype: torch.dtype
) -> tuple[torch.nn.Module, Any, Any]:
    """The module that yields hidden states, the head's score layer (native) or None, and the
    full native model (or None)."""
    from transformers import AutoConfig, AutoModel, AutoModelForSequenceClassification

    source = config.backbone
    hf_config = AutoConfig.from_pretrained(
        source, gguf_file=config.gguf_file, trust_remote_code=config.trust_remote_code
    )
    if config.kind != "text":
        raise UsageError(f"backbone kind {config.kind!r} is not supported yet")
    if config.head == "native":
        native = AutoModelForSequenceClassification.from_pretrained(
            source,
            num_labels=1,
            gguf_file=config.gguf_file,
            trust_remote_code=config.trust_remote_code,
            dtype=dtype,
        )
        return getattr(native, native.base_model_prefix), native.score, native
    base = AutoModel.from_pretrained(
        source,
        gguf_file=config.gguf_file,
        trust_remote_code=config.trust_remote_code,
        dtype=dtype,
        config=hf_config,
    )
    return base, None, None


def _assemble(config: RewardModelConfig, dtype: torch.dtype) -> RewardModel:
    backbone, score, native = _load_backbone(config, dtype)
    if score is not None:
        torch.nn.init.normal_(score.weight, std=1.0 / (score.in_features + 1) ** 0.5)
        head: torch.nn.Module = NativeScore(score)
    else:
        text_config: Any = backbone.config
        hidden = int(text_config.get_text_config().hidden_size)
        head = value_head_for(hidden, config.head_dropout)
    head.to(torch.float32)
    return RewardModel(backbone, head, native=native)


def detect_kind(source: str, gguf_file: str | None, trust_remote_code: bool) -> tuple[str, str]:
    """(kind, head) for a backbone: text models with a native sequence-classification class
    use its score layer; others get a value head."""
    from transformers import AutoConfig

    hf_config = AutoConfig.from_pretrained(
        source, gguf_file=gguf_file, trust_remote_code=trust_remote_code
    )
    model_type = hf_config.model_type
    if hasattr(hf_config, "thinker_config") or "omni" in model_type:
        return "omni", "value"
    if hasattr(hf_config, "vision_config"):
        return "vision", "value"
    return "text", "native" if _native_class_available(model_type) else "value"


def build_reward_model(
    train_config: Any,
) -> tuple[RewardModel, TextInputBuilder, RewardModelConfig]:
    """A fresh reward model for training, from a :class:`~omnirm.train.bt.BTConfig`."""
    source, gguf_file = split_gguf(train_config.model)
    gguf_file = train_config.gguf_file or gguf_file
    if not Path(source).exists():
        raise UsageError(
            f"{train_config.model}: no such model folder (omnirm loads local models only; "
            "download the model first)"
        )
    kind, head = detect_kind(source, gguf_file, train_config.trust_remote_code)
    lora = (
        None
        if train_config.full
        else LoraSettings(
            r=train_config.lora_r,
            alpha=train_config.lora_alpha or 2 * train_config.lora_r,
            dropout=train_config.lora_dropout,
        )
    )
    config = RewardModelConfig(
        backbone=str(Path(source).resolve()),
        kind=kind,
        head=head,
        adapter="lora" if lora else None,
        lora=lora,
        gguf_file=gguf_file,
        trust_remote_code=train_config.trust_remote_code,
        head_dropout=train_config.head_dropout,
        inputs=InputSettings(
            max_length=train_config.max_length, video_frames=train_config.video_frames
        ),
    )
    model = _assemble(config, torch.float32)
    if lora is not None:
        from peft import LoraConfig, get_peft_model

        model.backbone = get_peft_model(
            model.backbone,
            LoraConfig(
                r=lora.r,
                lora_alpha=lora.alpha,
                lora_dropout=lora.dropout,
                target_modules=lora.target_modules,
            ),
        )
    if train_config.gradient_checkpointing:
        model.backbone.gradient_checkpointing_enable(
            gradient_checkpointing_kwargs={"use_reentrant": False}
        )
        if lora is not None:
            model.backbone.enable_input_require_grads()
    tokenizer = _load_tokenizer(source, gguf_file, config.trust_remote_code)
    return model, TextInputBuilder(tokenizer, config.inputs), config


def save_reward_model(
    directory: str | Path, model: RewardModel, builder: TextInputBuilder, config: RewardModelConfig
) -> None:
    """Write a self-describing checkpoint (see the module docstring)."""
    from safetensors.torch import save_file

    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    if config.adapter == "lora":
        model.backbone.save_pretrained(out / ADAPTER_DIR)
    else:
        target = model.native_model if model.native_model is not None else model.backbone
        target.save_pretrained(out / MODEL_DIR)
    head_state = {
        k: v.detach().to(torch.float32).contiguous() for k, v in model.head.state_dict().items()
    }
    save_file(head_state, str(out / HEAD_FILE))
    builder.tokenizer.save_pretrained(out / TOKENIZER_DIR)
    (out / CONFIG_FILE).write_text(config.to_json())


def load_reward_model(
    directory: str | Path, *, dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu"
) -> tuple[RewardModel, TextInputBuilder, RewardModelConfig]:
    """Rebuild a saved reward model in eval mode, with its input builder and config."""
    from safetensors.torch import load_file

    folder = Path(directory)
    if not (folder / CONFIG_FILE).is_file():
        raise UsageError(f"{folder}: not an omnirm reward model (no {CONFIG_FILE})")
    config = RewardModelConfig.from_json((folder / CONFIG_FILE).read_text())
    if config.adapter == "lora":
        if not Path(config.backbone).exists():
            raise UsageError(
                f"{folder}: its base model {config.backbone} is gone; the LoRA adapter needs it"
            )
        model = _assemble(config, dtype)
        from peft import PeftModel

        model.backbone = PeftModel.from_pretrained(model.backbone, folder / ADAPTER_DIR)
    else:
        full = RewardModelConfig(**{**asdict(config), "backbone": str(folder / MODEL_DIR)})
        full.inputs = config.inputs
        full.lora = None
        model = _assemble(full, dtype)
    model.head.load_state_dict(load_file(str(folder / HEAD_FILE)))
    tokenizer = _load_tokenizer(str(folder / TOKENIZER_DIR), None, config.trust_remote_code)
    model.to(device)
    model.eval()
    return model, TextInputBuilder(tokenizer, config.inputs), config


def export_merged(directory: str | Path, output: str | Path) -> Path:
    """Merge a checkpoint into a plain ``…ForSequenceClassification`` folder that transformers'
    ``AutoModelForSequenceClassification`` loads without omnirm, giving the same scores.

    The padding token is set to one the chat template never emits, because transformers finds
    the last token by ``pad_token_id``.
    """
    model, builder, config = load_reward_model(directory)
    if config.head != "native" or model.native_model is None:
        raise UsageError(
            f"{directory}: this backbone has no sequence-classification class in transformers; "
            "--merge needs one"
        )
    native = model.native_model
    if config.adapter == "lora":
        merged = model.backbone.merge_and_unload()
        setattr(native, native.base_model_prefix, merged)
    tokenizer = builder.tokenizer
    pad_id = _safe_pad_id(tokenizer)
    if pad_id != tokenizer.pad_token_id:
        tokenizer.pad_token = tokenizer.convert_ids_to_tokens(pad_id)
    native.config.pad_token_id = pad_id
    out = Path(output)
    native.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def _safe_pad_id(tokenizer: Any) -> int:
    """A padding token that never ends a scored sequence (transformers reads the last token that
    is not ``pad_token_id``): the tokenizer's own unless the chat template ends turns with it."""
    rendered = tokenizer.apply_chat_template(
        [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}], tokenize=True
    )
    ids = list(rendered["input_ids"] if hasattr(rendered, "keys") else rendered)
    if tokenizer.pad_token_id is not None and ids[-1] != tokenizer.pad_token_id:
        return int(tokenizer.pad_token_id)
    for token in ("<|endoftext|>", "<pad>", "<|pad|>", "<unk>"):
        token_id = tokenizer.convert_tokens_to_ids(token)
        if (
            isinstance(token_id, int)
            and token_id != ids[-1]
            and token_id in tokenizer.all_special_ids
        ):
            return token_id
    raise UsageError(
        "cannot export: the chat template ends every turn with the pad token and the tokenizer "
        "has no other special token to pad with"
    )
