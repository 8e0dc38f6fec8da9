"""Building, saving, reloading and exporting reward models.

A checkpoint folder holds:

- ``omnirm_config.json`` — :class:`RewardModelConfig`: backbone, head kind, adapter, input
  settings (template policy, max length, truncation, media sampling), reward normalisation;
- ``adapter/`` — the LoRA adapter (peft, safetensors), or ``model/`` — full weights;
- ``head.safetensors`` — the reward head (never lost with LoRA);
- ``adapter/`` or ``model/`` hold the part that yields hidden states: for vision-language and omni
  backbones that is the multimodal base model (towers and language model, no LM head);
- ``tokenizer/`` — the tokenizer (text) or processor (vision-language, omni) with its chat
  template and padding settings;
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
from omnirm.media.paths import MediaResolver
from omnirm.models.head import ValueHead
from omnirm.models.inputs import (
    InputBuilder,
    InputSettings,
    MultimodalInputBuilder,
    TextInputBuilder,
)
from omnirm.models.reward_model import NativeScore, RewardModel
from omnirm.models.safety import (
    check_model_folder,
    refuse_remote_code,
    require_safetensors,
    weight_options,
)
from omnirm.models.sources import ResolvedModel, resolve_model, split_gguf

__all__ = [
    "RewardModelConfig",
    "build_reward_model",
    "export_merged",
    "load_reward_model",
    "save_reward_model",
    "split_gguf",
]

CONFIG_FILE = "omnirm_config.json"
HEAD_FILE = "head.safetensors"
ADAPTER_DIR = "adapter"
MODEL_DIR = "model"
TOKENIZER_DIR = "tokenizer"

#: Media towers of vision-language and omni backbones (Qwen2.5-VL, Qwen2.5-Omni thinker): frozen
#: by default, and never given LoRA adapters unless the towers are trained.
MEDIA_TOWERS: tuple[str, ...] = ("visual", "audio_tower")

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
    exclude_modules: str | None = None  # a regex over module names (the media towers)
    layers: list[int] | None = None  # the transformer layers adapted (None: all)


@dataclass
class RewardModelConfig:
    """What a checkpoint needs to be rebuilt; saved as ``omnirm_config.json``."""

    backbone: str  # a local path, a hub id (ORG/NAME) or a pkg: reference (omnirm.models.sources)
    backbone_revision: str | None = None  # the hub commit the backbone was resolved to
    kind: str = "text"  # "text" | "vision" | "omni"
    head: str = "native"  # "native" (the family's score layer) | "value" (dropout + linear)
    adapter: str | None = "lora"  # "lora", or None for full weights
    lora: LoraSettings | None = None
    gguf_file: str | None = None
    # how the model was trained; loading never reads it (only --trust-remote-code allows code)
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


def load_tokenizer(source: str, gguf_file: str | None, trust_remote_code: bool) -> Any:
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


def load_processor(source: str, trust_remote_code: bool) -> Any:
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(source, trust_remote_code=trust_remote_code)
    if not getattr(processor, "chat_template", None):
        raise UsageError(
            f"{source}: the processor has no chat template; omnirm needs one to lay out "
            "multimodal records"
        )
    processor.tokenizer.padding_side = "right"
    return processor


def _make_builder(
    config: RewardModelConfig,
    source: str,
    resolver: MediaResolver | None,
    gguf_file: str | None = None,
) -> InputBuilder:
    """The input builder for ``config.kind``, with the tokenizer or processor in ``source``."""
    if config.kind == "text":
        tokenizer = load_tokenizer(source, gguf_file, config.trust_remote_code)
        return TextInputBuilder(tokenizer, config.inputs)
    processor = load_processor(source, config.trust_remote_code)
    return MultimodalInputBuilder(processor, config.inputs, resolver)


def _native_class_available(model_type: str) -> bool:
    from transformers.models.auto.modeling_auto import (
        MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES,
    )

    return model_type in MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES


def _load_backbone(
    config: RewardModelConfig, dtype: torch.dtype, source: str
) -> tuple[torch.nn.Module, Any, Any]:
    """The module that yields hidden states, the head's score layer (native) or None, and the
    full native model (or None), loaded from the local folder ``source``."""
    from transformers import AutoModelForSequenceClassification

    if config.head == "native":
        native = AutoModelForSequenceClassification.from_pretrained(
            source,
            num_labels=1,
            gguf_file=config.gguf_file,
            trust_remote_code=config.trust_remote_code,
            dtype=dtype,
            **weight_options(config.gguf_file),
        )
        return getattr(native, native.base_model_prefix), native.score, native
    return _bare_backbone(config, dtype, source), None, None


def _bare_backbone(config: RewardModelConfig, dtype: torch.dtype, source: str) -> torch.nn.Module:
    """The base model without its LM head: ``Qwen2Model`` for a causal LM, the multimodal base
    (``Qwen2_5_VLModel``, ``Qwen2_5OmniThinkerModel``: towers, feature scattering, 3D positions,
    language model) for vision-language and omni models."""
    from transformers import AutoConfig, AutoModel

    options: dict[str, Any] = {
        "gguf_file": config.gguf_file,
        "trust_remote_code": config.trust_remote_code,
        "dtype": dtype,
        **weight_options(config.gguf_file),
    }
    hf_config = AutoConfig.from_pretrained(
        source, gguf_file=config.gguf_file, trust_remote_code=config.trust_remote_code
    )
    if getattr(hf_config, "thinker_config", None) is None:
        return AutoModel.from_pretrained(source, config=hf_config, **options)
    return thinker_class(hf_config, source).from_pretrained(source, **options).model


def thinker_class(hf_config: Any, source: str) -> Any:
    """The class that loads an omni model's thinker from the released layout (thinker +
    talker): only the thinker's own class does, renaming the thinker's weights and dropping the
    talker (``Qwen2_5OmniThinkerConfig`` → ``Qwen2_5OmniThinkerForConditionalGeneration``)."""
    import transformers

    name = type(hf_config.thinker_config).__name__.removesuffix("Config")
    found = getattr(transformers, name + "ForConditionalGeneration", None)
    if found is None:
        raise UsageError(
            f"{source}: transformers has no {name}ForConditionalGeneration to load this omni "
            "model's thinker"
        )
    return found


def _assemble(config: RewardModelConfig, dtype: torch.dtype, source: str) -> RewardModel:
    backbone, score, native = _load_backbone(config, dtype, source)
    if score is not None:
        torch.nn.init.normal_(score.weight, std=1.0 / (score.in_features + 1) ** 0.5)
        head: torch.nn.Module = NativeScore(score)
    else:
        text_config: Any = backbone.config
        hidden = int(text_config.get_text_config().hidden_size)
        head = ValueHead(hidden, config.head_dropout)
    head.to(torch.float32)
    return RewardModel(backbone, head, native=native)


def context_window(model: RewardModel) -> int | None:
    """The backbone's context window (``max_position_embeddings`` of its text config), if it
    says."""
    config = getattr(model.backbone, "config", None)
    if config is None:
        return None
    text_config = config.get_text_config() if hasattr(config, "get_text_config") else config
    window = getattr(text_config, "max_position_embeddings", None)
    return int(window) if isinstance(window, int) and window > 0 else None


def detect_kind(source: str, gguf_file: str | None, trust_remote_code: bool) -> tuple[str, str]:
    """(kind, head) for a backbone: text models with a native sequence-classification class
    use its score layer; others get a value head."""
    from transformers import AutoConfig

    try:
        hf_config = AutoConfig.from_pretrained(
            source, gguf_file=gguf_file, trust_remote_code=trust_remote_code
        )
    except (OSError, ValueError) as error:  # no or a broken config.json, an unknown model_type
        raise UsageError(f"{source}: transformers cannot read this model: {error}") from error
    model_type = hf_config.model_type
    if hasattr(hf_config, "thinker_config") or "omni" in model_type:
        return "omni", "value"
    if hasattr(hf_config, "vision_config"):
        return "vision", "value"
    return "text", "native" if _native_class_available(model_type) else "value"


def resolve_training_model(train_config: Any) -> ResolvedModel:
    """The local base model a training config names (``model``, ``revision``, ``gguf_file``),
    checked for remote code and pickled weights (:mod:`omnirm.models.safety`)."""
    resolved = resolve_model(
        train_config.model,
        revision=train_config.revision,
        gguf_file=train_config.gguf_file,
        trust_remote_code=train_config.trust_remote_code,
    )
    check_model_folder(
        resolved.folder,
        gguf_file=resolved.gguf_file,
        trust_remote_code=train_config.trust_remote_code,
        label=f"--model {train_config.model}",
    )
    return resolved


def lora_settings(
    train_config: Any, kind: str, source: str, gguf_file: str | None
) -> LoraSettings | None:
    """The LoRA a training config asks for (None with ``full``): rank, alpha (default 2 × r),
    dropout, the last ``lora_layers`` layers, and no adapters on frozen media towers."""
    if train_config.full:
        return None
    freeze_media = kind != "text" and train_config.freeze_media
    lora = LoraSettings(
        r=train_config.lora_r,
        alpha=train_config.lora_alpha or 2 * train_config.lora_r,
        dropout=train_config.lora_dropout,
        exclude_modules=rf".*\b({'|'.join(MEDIA_TOWERS)})\b.*" if freeze_media else None,
    )
    if train_config.lora_layers is not None:
        lora.layers = _last_layers(source, gguf_file, train_config)
    return lora


def apply_lora(module: torch.nn.Module, lora: LoraSettings) -> Any:
    """``module`` wrapped in a fresh peft LoRA adapter as ``lora`` says."""
    from peft import LoraConfig, get_peft_model

    if lora.layers is not None:  # peft takes layers_to_transform with named modules only
        lora.target_modules = _layer_linear_names(module)
    return get_peft_model(
        module,
        LoraConfig(
            r=lora.r,
            lora_alpha=lora.alpha,
            lora_dropout=lora.dropout,
            target_modules=lora.target_modules,
            exclude_modules=lora.exclude_modules,
            layers_to_transform=lora.layers,
            layers_pattern="layers" if lora.layers is not None else None,
        ),
    )


def build_reward_model(
    train_config: Any, resolver: MediaResolver | None = None
) -> tuple[RewardModel, InputBuilder, RewardModelConfig]:
    """A fresh reward model for training, from a :class:`~omnirm.train.bt.BTConfig`, with its
    input builder (reading media through ``resolver``)."""
    resolved = resolve_training_model(train_config)
    source, gguf_file = resolved.folder, resolved.gguf_file
    kind, head = detect_kind(source, gguf_file, train_config.trust_remote_code)
    freeze_media = kind != "text" and train_config.freeze_media
    lora = lora_settings(train_config, kind, source, gguf_file)
    config = RewardModelConfig(
        backbone=resolved.reference,
        backbone_revision=resolved.revision,
        kind=kind,
        head=head,
        adapter="lora" if lora else None,
        lora=lora,
        gguf_file=gguf_file,
        trust_remote_code=train_config.trust_remote_code,
        head_dropout=train_config.head_dropout,
        inputs=InputSettings(
            max_length=train_config.max_length,
            criteria_position=train_config.criteria_position,
            video_frames=train_config.video_frames,
            mesh_views=train_config.mesh_views,
            mesh_size=train_config.mesh_size,
        ),
    )
    builder = _make_builder(config, source, resolver, gguf_file)
    model = _assemble(config, torch.float32, source)
    if freeze_media:
        for name in MEDIA_TOWERS:
            tower = getattr(model.backbone, name, None)
            if tower is not None:
                tower.requires_grad_(False)
    if lora is not None:
        model.backbone = apply_lora(model.backbone, lora)
    if train_config.gradient_checkpointing:
        # non-reentrant; also makes the input embeddings require grad, which LoRA needs
        model.backbone.activation_checkpointing_enable()
    return model, builder, config


def _layer_linear_names(backbone: torch.nn.Module) -> list[str]:
    """The names of the linear layers inside the numbered transformer layers (``q_proj`` …)."""
    import re

    layer = re.compile(r"(?:^|\.)layers\.\d+\.")
    return sorted(
        {
            name.rsplit(".", 1)[-1]
            for name, module in backbone.named_modules()
            if isinstance(module, torch.nn.Linear) and layer.search(name)
        }
    )


def _last_layers(source: str, gguf_file: str | None, train_config: Any) -> list[int]:
    """The indices of the backbone's last ``train_config.lora_layers`` transformer layers."""
    from transformers import AutoConfig

    hf_config = AutoConfig.from_pretrained(
        source, gguf_file=gguf_file, trust_remote_code=train_config.trust_remote_code
    )
    count = int(hf_config.get_text_config().num_hidden_layers)
    wanted = min(int(train_config.lora_layers), count)
    return list(range(count - wanted, count))


def save_reward_model(
    directory: str | Path, model: RewardModel, builder: InputBuilder, config: RewardModelConfig
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
    builder.save(out / TOKENIZER_DIR)
    (out / CONFIG_FILE).write_text(config.to_json())


def load_reward_model(
    directory: str | Path,
    *,
    dtype: torch.dtype = torch.float32,
    device: str | torch.device = "cpu",
    resolver: MediaResolver | None = None,
    merge_adapter: bool = False,
    trust_remote_code: bool = False,
) -> tuple[RewardModel, InputBuilder, RewardModelConfig]:
    """Rebuild a saved reward model in eval mode, with its input builder (reading media through
    ``resolver``; default: relative to the working directory) and config. ``merge_adapter``
    folds a LoRA adapter into the weights (faster inference; rewards move by float rounding).

    Code named by the checkpoint's configs (or its base model's) runs only with
    ``trust_remote_code`` (``--trust-remote-code``), whatever ``omnirm_config.json`` says;
    weights load from safetensors only (:mod:`omnirm.models.safety`)."""
    from safetensors.torch import load_file

    folder = Path(directory)
    if not (folder / CONFIG_FILE).is_file():
        raise UsageError(f"{folder}: not an omnirm reward model (no {CONFIG_FILE})")
    config = RewardModelConfig.from_json((folder / CONFIG_FILE).read_text())
    config.trust_remote_code = trust_remote_code  # the command line decides, not the checkpoint
    label = str(folder)
    refuse_remote_code(folder / TOKENIZER_DIR, trust_remote_code, label)
    if config.adapter == "lora":
        base = _find_backbone(folder, config)
        check_model_folder(
            base.folder,
            gguf_file=base.gguf_file,
            trust_remote_code=trust_remote_code,
            label=f"{label}: its base model {config.backbone}",
        )
        require_safetensors(folder / ADAPTER_DIR, label, stem="adapter_model")
        model = _assemble(config, dtype, base.folder)
        from peft import PeftModel

        model.backbone = PeftModel.from_pretrained(model.backbone, folder / ADAPTER_DIR)
        if merge_adapter:
            model.backbone = model.backbone.merge_and_unload()
    else:
        full = RewardModelConfig(**{**asdict(config), "gguf_file": None})
        full.inputs = config.inputs
        full.lora = None
        check_model_folder(
            folder / MODEL_DIR, gguf_file=None, trust_remote_code=trust_remote_code, label=label
        )
        model = _assemble(full, dtype, str(folder / MODEL_DIR))
    model.head.load_state_dict(load_file(str(folder / HEAD_FILE)))
    builder = _make_builder(config, str(folder / TOKENIZER_DIR), resolver)
    model.to(device)
    model.eval()
    return model, builder, config


def _find_backbone(folder: Path, config: RewardModelConfig) -> ResolvedModel:
    """The base model a LoRA checkpoint needs, on this machine (from the hub's cache or the hub
    when its base was a hub id, at the commit it was trained on)."""
    try:
        return resolve_model(
            config.backbone,
            revision=config.backbone_revision,
            gguf_file=config.gguf_file,
            trust_remote_code=config.trust_remote_code,
            option="base model",
        )
    except UsageError as error:
        raise UsageError(
            f"{folder}: the LoRA adapter needs its base model, which cannot be found ({error})"
        ) from error


def export_merged(
    directory: str | Path, output: str | Path, *, trust_remote_code: bool = False
) -> Path:
    """Merge a checkpoint into a plain ``…ForSequenceClassification`` folder that transformers'
    ``AutoModelForSequenceClassification`` loads without omnirm, giving the same scores.

    The padding token is set to one the chat template never emits, because transformers finds
    the last token by ``pad_token_id``. The chat template gets omnirm's default criterion as
    the system message of conversations that have none (records without ``criteria``).
    """
    model, builder, config = load_reward_model(directory, trust_remote_code=trust_remote_code)
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
    tokenizer.chat_template = default_system_template(
        tokenizer.chat_template, config.inputs.default_criteria
    )
    out = Path(output)
    native.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def default_system_template(template: str, system: str) -> str:
    """``template`` with ``system`` as the system message of conversations that start without
    one, as omnirm lays out a record without ``criteria``."""
    literal = json.dumps(system, ensure_ascii=False)  # a Jinja string literal too
    return (
        "{%- if not messages or messages[0]['role'] != 'system' %}"
        f"{{%- set messages = [{{'role': 'system', 'content': {literal}}}] + messages %}}"
        "{%- endif %}" + template
    )


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
