"""Where GRPO's rollouts come from (``--rollouts``): the policy itself with transformers
``generate`` (:class:`GenerateRollouts`, CPU and GPU), or an in-process vLLM engine on the same
weights (:class:`VllmRollouts`, CUDA GPUs, ``pip install 'omnirm[vllm]'``).

Both return the sampled answers' token ids, grouped by prompt, as :class:`Rollouts`; the
policy then recomputes their log-probabilities itself (:meth:`Chunk.logprobs`), so the loss
never uses the sampler's numbers.

The vLLM engine follows the policy every step: with LoRA the policy's adapter is saved
(safetensors, peft's ``save_pretrained``) and the next samples are asked with a new
``LoRARequest`` naming it (a new id each step, so vLLM never reuses an old adapter); with
``full`` the policy's weights are loaded into the engine's model (``load_weights`` on its
worker, through ``LLM.collective_rpc``, the engine running in this process) and its prefix
cache is cleared (its keys are tokens, not weights). Each GRPO stage starts a new engine: on
the base model's files, or on a safetensors copy of the weights an earlier stage left (or of a
GGUF base, dequantised). vLLM's sampler is not transformers': with the same seed the two
engines draw different answers.

The engine runs in one process (``--rollouts vllm`` is refused under ``accelerate launch``)
and its own share of the GPU (``vllm_gpu_memory_utilization``) beside the policy; tensor
parallelism is not offered (the weights are loaded into the one worker in this process).
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch

from omnirm.errors import UsageError
from omnirm.train.r1.config import R1Config
from omnirm.train.r1.policy import Policy, completion_logprobs

#: ranks vLLM's LoRA kernels are built for (``max_lora_rank`` must be one of them)
VLLM_LORA_RANKS = (8, 16, 32, 64, 128, 256, 320, 512)
#: what to use instead of vLLM (the refusal names it)
_INSTEAD = "use --rollouts generate (transformers, also on CPU)"


@dataclass
class Chunk:
    """Rows of a step's rollouts that go through the model together: left-padded prompts
    (width ``start``) followed by the answers; ``mask`` marks answer tokens (up to and including
    the first end token); ``media`` the processor's inputs for these rows (media judges)."""

    rows: slice
    sequences: torch.Tensor
    attention: torch.Tensor
    mask: torch.Tensor
    start: int
    media: dict[str, torch.Tensor] | None = None

    def logprobs(self, net: Any) -> torch.Tensor:
        return completion_logprobs(net, self.sequences, self.attention, self.start, self.media)


@dataclass
class Rollouts:
    """A step's sampled answers, grouped by prompt, in ``chunks`` of rows."""

    chunks: list[Chunk]
    texts: list[str]
    completion_ids: list[list[int]]
    truncated: list[bool]


class RolloutEngine(Protocol):
    """Samples ``config.generations`` answers per prompt for a GRPO step."""

    def sample(
        self,
        net: Any,
        policy: Policy,
        prompts: list[list[int]],
        conversations: list[Any],
        device: torch.device,
        step: int,
    ) -> Rollouts: ...


class GenerateRollouts:
    """Rollouts from the policy itself, with transformers ``generate`` (KV cache)."""

    def __init__(self, config: R1Config) -> None:
        self.config = config

    def sample(
        self,
        net: Any,
        policy: Policy,
        prompts: list[list[int]],
        conversations: list[Any],
        device: torch.device,
        step: int,
    ) -> Rollouts:
        return sample(net, policy, prompts, self.config, device, conversations)


def sample(
    net: Any,
    policy: Policy,
    prompts: list[list[int]],
    config: R1Config,
    device: torch.device,
    conversations: list[Any] | None = None,
) -> Rollouts:
    """``config.generations`` sampled answers to each prompt, grouped by prompt: text prompts
    generated together (left-padded) and cut into chunks of ``batch_size`` rows; a media
    judge's ``conversations`` in batches of ``batch_size`` prompts (:func:`media_batches`),
    each batch generated together and cut into chunks carrying their rows' media."""
    if policy.processor is not None:
        assert conversations is not None
        parts = []
        for batch in media_batches(policy, conversations, config, device):
            # each answer its own row with its prompt's media (:func:`rows_media`, as the chunks
            # carry them), not num_return_sequences: generate repeats the media tensors it does
            # not encode first item by item (a prompt's two audio clips a, b as a, a, b, b)
            rows = range(len(batch.shares) * config.generations)
            expanded = {
                "input_ids": batch.inputs["input_ids"].repeat_interleave(config.generations, 0),
                "attention_mask": batch.inputs["attention_mask"].repeat_interleave(
                    config.generations, 0
                ),
                **rows_media(batch, rows, config.generations, 0),
            }
            completions = _generate(net, policy, expanded, config, answers=1)
            whole, rollout = assemble(policy, batch.inputs, completions, config)
            parts.append(_chunked(whole, rollout, config, batch))
        return _join(parts)
    ids, attention = _left_padded(policy, prompts, device)
    inputs = {"input_ids": ids, "attention_mask": attention}
    completions = _generate(net, policy, inputs, config, answers=config.generations)
    whole, rollout = assemble(policy, inputs, completions, config)
    return _chunked(whole, rollout, config)


def _left_padded(
    policy: Policy, prompts: list[list[int]], device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    pad = int(policy.tokenizer.pad_token_id)
    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), pad, dtype=torch.long)
    attention = torch.zeros((len(prompts), width), dtype=torch.long)
    for row, prompt in enumerate(prompts):
        ids[row, width - len(prompt) :] = torch.tensor(prompt)
        attention[row, width - len(prompt) :] = 1
    return ids.to(device), attention.to(device)


def _chunked(
    whole: Chunk, rollout: Rollouts, config: R1Config, batch: MediaBatch | None = None
) -> Rollouts:
    """``whole`` cut into chunks of ``batch_size`` rows; for a media ``batch``, each chunk with
    its rows' media and its rows counted from the batch's first prompt."""
    size, rows = config.batch_size, whole.sequences.shape[0]
    offset = 0 if batch is None else batch.first * config.generations
    answer_width = whole.sequences.shape[1] - whole.start
    chunks = []
    for first in range(0, rows, size):
        last = min(first + size, rows)
        media = None
        if batch is not None:
            media = rows_media(batch, range(first, last), config.generations, answer_width)
        chunks.append(
            Chunk(
                slice(offset + first, offset + last),
                whole.sequences[first:last],
                whole.attention[first:last],
                whole.mask[first:last],
                whole.start,
                media,
            )
        )
    return Rollouts(chunks, rollout.texts, rollout.completion_ids, rollout.truncated)


def _join(parts: list[Rollouts]) -> Rollouts:
    """The rollouts of consecutive batches of prompts, in order."""
    return Rollouts(
        [chunk for part in parts for chunk in part.chunks],
        [text for part in parts for text in part.texts],
        [ids for part in parts for ids in part.completion_ids],
        [cut for part in parts for cut in part.truncated],
    )


@dataclass
class MediaBatch:
    """Media prompts encoded together: ``inputs``, the processor's left-padded output for the
    prompts from index ``first`` on; ``shares``, each prompt's own part of its media tensors."""

    first: int
    inputs: dict[str, torch.Tensor]
    shares: list[dict[str, torch.Tensor]]


#: the media items each processor output is made of, one tensor row per item (or per patch,
#: where the item's grid says how many patches it has)
_MEDIA_ITEMS = {
    "pixel_values": "image",
    "image_grid_thw": "image",
    "pixel_values_videos": "video",
    "video_grid_thw": "video",
    "second_per_grid_ts": "video",
    "video_second_per_grid": "video",
    "input_features": "audio",
    "feature_attention_mask": "audio",
}
#: keys whose rows are patches, counted by the items' grids
_PATCHES = {"pixel_values": "image_grid_thw", "pixel_values_videos": "video_grid_thw"}


def _per_token(key: str) -> bool:
    # one row per prompt over its tokens (text 0, image 1 …)
    return key.endswith("token_type_ids")


def media_batches(
    policy: Policy, conversations: list[Any], config: R1Config, device: torch.device
) -> list[MediaBatch]:
    """The media ``conversations`` encoded by the processor ``batch_size`` at a time, as
    ``score --judge hf:`` encodes them (:func:`~omnirm.models.backends.hf.encode_chat`,
    left-padded), with each prompt's share of the media (:func:`media_shares`). A batch whose
    media tensors cannot be shared out (a processor output not known here) is encoded one
    prompt at a time instead: a lone prompt's media are all its own."""
    batches = []
    for first in range(0, len(conversations), config.batch_size):
        group = conversations[first : first + config.batch_size]
        inputs = _media_inputs(policy, group, device)
        shares = media_shares(inputs, group)
        if shares is not None:
            batches.append(MediaBatch(first, inputs, shares))
            continue
        for n, conversation in enumerate(group):
            inputs = _media_inputs(policy, [conversation], device)
            batches.append(MediaBatch(first + n, inputs, [_media_of(inputs)]))
    return batches


def _media_of(inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v for k, v in inputs.items() if k not in ("input_ids", "attention_mask")}


def _count_media(conversation: Any) -> dict[str, int]:
    counts = {"image": 0, "video": 0, "audio": 0}
    for message in conversation:
        content = message["content"]
        for part in content if isinstance(content, list) else []:
            if part["type"] in counts:
                counts[part["type"]] += 1
    return counts


def media_shares(
    inputs: dict[str, torch.Tensor], conversations: list[Any]
) -> list[dict[str, torch.Tensor]] | None:
    """Each conversation's part of the processor's batched media ``inputs``, in order: per-token
    rows by prompt; images, videos and audios by the conversation's count of them (the patches
    of an image or video by its grid, as the processor concatenates them). None where a key is
    not known or its rows do not add up."""
    media = _media_of(inputs)
    counts = [_count_media(c) for c in conversations]
    sizes: dict[str, list[int]] = {}
    for key, value in media.items():
        if _per_token(key):
            sizes[key] = [1] * len(conversations)
        elif key in _PATCHES and _PATCHES[key] in media:
            grid = media[_PATCHES[key]]
            items = torch.split(grid.prod(-1), [c[_MEDIA_ITEMS[key]] for c in counts])
            sizes[key] = [int(part.sum()) for part in items]
        elif key in _MEDIA_ITEMS:
            sizes[key] = [c[_MEDIA_ITEMS[key]] for c in counts]
        else:
            return None
        if not isinstance(value, torch.Tensor) or sum(sizes[key]) != value.shape[0]:
            return None
    split = {key: torch.split(value, sizes[key]) for key, value in media.items()}
    return [{key: parts[n] for key, parts in split.items()} for n in range(len(conversations))]


def rows_media(
    batch: MediaBatch, rows: range, generations: int, answer_width: int
) -> dict[str, torch.Tensor]:
    """The media of the batch's answer ``rows`` (``generations`` per prompt, in prompt order):
    each row's prompt's media, concatenated in row order; per-token rows go on over the answer
    (``answer_width`` text tokens); kinds of media none of the rows has are left out."""
    shares = [batch.shares[row // generations] for row in rows]
    media = {}
    for key in shares[0]:
        value = torch.cat([share[key] for share in shares])
        if _per_token(key):  # answers are text
            value = torch.nn.functional.pad(value, (0, answer_width))
        elif value.shape[0] == 0:  # none of these rows has this kind of media
            continue
        media[key] = value
    return media


def _media_inputs(
    policy: Policy, conversations: list[Any], device: torch.device
) -> dict[str, torch.Tensor]:
    from omnirm.models.backends.hf import encode_chat

    encoded = encode_chat(policy.tokenizer, policy.processor, conversations)
    return {k: v.to(device) for k, v in encoded.items()}


def _generate(
    net: Any, policy: Policy, inputs: dict[str, torch.Tensor], config: R1Config, answers: int
) -> torch.Tensor:
    """Sample ``answers`` answers to each of the (left-padded) ``inputs``: their tokens, rows
    in prompt order."""
    pad = int(policy.tokenizer.pad_token_id)
    width = inputs["input_ids"].shape[1]
    options: dict[str, Any] = {}
    if policy.processor is not None:
        # a media placeholder sampled into an answer would ask the model for media it lacks
        options["suppress_tokens"] = suppressed_tokens(policy)
    was_training = net.training
    net.eval()
    with torch.no_grad():
        out = net.generate(
            **inputs,
            **options,
            do_sample=True,
            temperature=config.temperature,
            top_p=config.top_p,
            top_k=0,
            max_new_tokens=config.max_completion_length,
            num_return_sequences=answers,
            pad_token_id=pad,
            eos_token_id=sorted(policy.eos_ids),
            use_cache=True,
        )
    net.train(was_training)
    return out[:, width:]


def suppressed_tokens(policy: Policy) -> list[int]:
    """A media judge's special tokens that are not end tokens (media placeholders …)."""
    special = set(policy.tokenizer.all_special_ids) | {
        i for i, token in policy.tokenizer.added_tokens_decoder.items() if token.special
    }
    return sorted(special - policy.eos_ids)


def assemble(
    policy: Policy, inputs: dict[str, torch.Tensor], completions: torch.Tensor, config: R1Config
) -> tuple[Chunk, Rollouts]:
    """The rollouts of the left-padded prompts ``inputs`` answered with ``completions``
    (``generations`` rows per prompt, in prompt order; anything after an answer's first end
    token is padding): one chunk of all rows."""
    pad = int(policy.tokenizer.pad_token_id)
    ids, attention = inputs["input_ids"], inputs["attention_mask"]
    completions = completions.clone()
    mask = torch.zeros_like(completions)
    texts, kept, truncated = [], [], []
    for row, tokens in enumerate(completions.tolist()):
        end = next((i for i, t in enumerate(tokens) if t in policy.eos_ids), None)
        length = len(tokens) if end is None else end + 1
        mask[row, :length] = 1
        completions[row, length:] = pad
        kept.append(tokens[:length])
        truncated.append(end is None)
        texts.append(policy.tokenizer.decode(tokens[:length], skip_special_tokens=True).strip())
    sequences = torch.cat([ids.repeat_interleave(config.generations, 0), completions], dim=1)
    full_attention = torch.cat([attention.repeat_interleave(config.generations, 0), mask], dim=1)
    chunk = Chunk(slice(0, len(texts)), sequences, full_attention, mask, ids.shape[1])
    return chunk, Rollouts([chunk], texts, kept, truncated)


def padded_completions(answers: list[list[int]], pad: int, device: torch.device) -> torch.Tensor:
    """Answers of different lengths as one right-padded tensor (at least one column)."""
    width = max(1, *(len(a) for a in answers))
    out = torch.full((len(answers), width), pad, dtype=torch.long)
    for row, answer in enumerate(answers):
        out[row, : len(answer)] = torch.tensor(answer, dtype=torch.long)
    return out.to(device)


# ------------------------------------------------------------------------------ vLLM


def make_rollouts(config: R1Config) -> RolloutEngine | None:
    """:class:`GenerateRollouts` for ``--rollouts generate``; None for vLLM, whose engine
    :func:`train_r1 <omnirm.train.r1.train_r1>` builds once the policy is loaded."""
    return GenerateRollouts(config) if config.rollouts == "generate" else None


def check_vllm_rollouts(config: R1Config, processes: int) -> None:
    """Refuse ``--rollouts vllm`` before any model loads where it cannot run: vLLM missing or
    broken, no CUDA GPU, or several processes (each would start its own engine)."""
    if config.rollouts != "vllm" or "grpo" not in config.stages:
        return
    from omnirm.models.backends.vllm import require_vllm

    require_vllm("--rollouts vllm", _INSTEAD)
    if processes > 1:
        raise UsageError(
            f"--rollouts vllm runs one engine in this process; under accelerate launch "
            f"({processes} processes) {_INSTEAD}"
        )


def vllm_lora_rank(rank: int) -> int:
    """The smallest ``max_lora_rank`` vLLM accepts that holds an adapter of ``rank``."""
    for allowed in VLLM_LORA_RANKS:
        if rank <= allowed:
            return allowed
    raise UsageError(f"--lora-r {rank}: vLLM serves LoRA ranks up to {VLLM_LORA_RANKS[-1]}")


def vllm_engine_options(config: R1Config) -> dict[str, Any]:
    """The ``vllm.LLM`` options of a rollout engine for ``config`` (besides the model)."""
    options: dict[str, Any] = {
        "gpu_memory_utilization": config.vllm_gpu_memory_utilization,
        "max_model_len": config.max_length + config.max_completion_length,
        "seed": config.seed,
        # as the policy computes: bf16 where it trains in bf16, fp32 with --no-bf16
        "dtype": {True: "bfloat16", False: "float32", None: "auto"}[config.bf16],
    }
    if not config.full:
        options.update(enable_lora=True, max_loras=1, max_lora_rank=vllm_lora_rank(config.lora_r))
    return options


def vllm_sampling_options(config: R1Config, eos_ids: set[int], step: int) -> dict[str, Any]:
    """The ``vllm.SamplingParams`` of a GRPO step: ``generations`` answers per prompt at the
    run's temperature and top-p, stopping at the policy's end tokens, seeded per step."""
    return {
        "n": config.generations,
        "temperature": config.temperature,
        "top_p": config.top_p,
        "max_tokens": config.max_completion_length,
        "seed": config.seed + step,
        "stop_token_ids": sorted(eos_ids),
    }


def lora_request_args(label: str, step: int, path: Path) -> tuple[str, int, str]:
    """(name, id, path) of the ``LoRARequest`` for the adapter saved at ``step``: each step a
    new name and id (vLLM caches adapters by id, so an old id would serve old weights)."""
    return f"{label}-step-{step}", step + 1, str(path)


def export_adapter(net: Any, folder: Path) -> Path:
    """Save the LoRA adapter of the peft model ``net`` into ``folder`` (safetensors), as vLLM
    loads it."""
    net.save_pretrained(str(folder), safe_serialization=True)
    return folder


def _load_weights_on_worker(worker: Any, weights: list[tuple[str, torch.Tensor]]) -> None:
    # runs on vLLM's worker (in this process): its model maps checkpoint names itself
    worker.model_runner.model.load_weights(weights=weights)


class VllmRollouts:
    """Rollouts from an in-process vLLM engine started on the model at ``source`` (None: a
    safetensors copy of the policy's weights as they are, its adapter not attached yet);
    :meth:`sync` brings it to the policy's weights before each step's samples."""

    def __init__(
        self, config: R1Config, policy: Policy, source: str | None, label: str = "grpo"
    ) -> None:
        from omnirm.models.backends.vllm import _accepts_pil_images, create_engine

        # the engine runs in this process, so that load_weights reaches its model
        os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"
        self.config = config
        self.label = label
        self._folder = tempfile.TemporaryDirectory(prefix="omnirm-r1-vllm-")
        if source is None:  # the policy's weights as they are now (no adapter attached)
            start = Path(self._folder.name) / "start"
            policy.net.save_pretrained(str(start), safe_serialization=True)
            (policy.processor or policy.tokenizer).save_pretrained(str(start))
            source = str(start)
        self.llm: Any = create_engine(
            Path(source),
            label="--rollouts vllm",
            instead=_INSTEAD,
            modalities=policy.modalities,
            trust_remote_code=config.trust_remote_code,
            **vllm_engine_options(config),
        )
        self._pil_images = _accepts_pil_images()
        self.lora_request: Any = None

    def load(self, net: Any) -> None:
        """Load the weights of ``net`` (a model without an adapter) into the engine."""
        weights = [(name, tensor.detach()) for name, tensor in net.state_dict().items()]
        self.llm.collective_rpc(_load_weights_on_worker, args=(weights,))
        self.llm.reset_prefix_cache()

    def sync(self, net: Any, step: int) -> None:
        """Make the engine sample from ``net`` as it is now (step ``step``)."""
        if self.config.full:
            self.load(net)
            return
        from vllm.lora.request import LoRARequest

        previous = self.lora_request
        folder = export_adapter(net, Path(self._folder.name) / f"step-{step}")
        self.lora_request = LoRARequest(*lora_request_args(self.label, step, folder))
        if previous is not None:  # vLLM read it when it was asked for
            import shutil

            shutil.rmtree(previous.lora_path, ignore_errors=True)

    def sample(
        self,
        net: Any,
        policy: Policy,
        prompts: list[list[int]],
        conversations: list[Any],
        device: torch.device,
        step: int,
    ) -> Rollouts:
        from vllm import SamplingParams

        self.sync(net, step)
        options = vllm_sampling_options(self.config, policy.eos_ids, step)
        pad = int(policy.tokenizer.pad_token_id)
        if policy.processor is not None:
            from omnirm.models.backends.vllm import to_vllm_messages

            params = SamplingParams(**options)
            messages = [to_vllm_messages(c, pil_images=self._pil_images) for c in conversations]
            outputs = self.llm.chat(
                messages, sampling_params=params, lora_request=self.lora_request, use_tqdm=False
            )
            answers = [a for output in outputs for a in _answer_ids(output, policy.eos_ids)]
            parts = []
            for batch in media_batches(policy, conversations, self.config, device):
                first = batch.first * self.config.generations
                rows = answers[first : first + len(batch.shares) * self.config.generations]
                sampled = padded_completions(rows, pad, device)
                whole, rollout = assemble(policy, batch.inputs, sampled, self.config)
                parts.append(_chunked(whole, rollout, self.config, batch))
            return _join(parts)
        params = SamplingParams(**options)
        outputs = self.llm.generate(
            [{"prompt_token_ids": p} for p in prompts],
            sampling_params=params,
            lora_request=self.lora_request,
            use_tqdm=False,
        )
        answers = [a for output in outputs for a in _answer_ids(output, policy.eos_ids)]
        ids, attention = _left_padded(policy, prompts, device)
        inputs = {"input_ids": ids, "attention_mask": attention}
        whole, rollout = assemble(
            policy, inputs, padded_completions(answers, pad, device), self.config
        )
        return _chunked(whole, rollout, self.config)

    def close(self) -> None:
        """Drop the engine and its adapter folder, and give the GPU memory back."""
        import gc

        self.llm = None
        self._folder.cleanup()
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


def _answer_ids(output: Any, eos_ids: set[int]) -> list[list[int]]:
    """The token ids of a vLLM request's answers, each ending with the end token that stopped
    it (vLLM may leave a stop token out)."""
    answers = []
    for completion in output.outputs:
        tokens = list(completion.token_ids)
        stop = getattr(completion, "stop_reason", None)
        if isinstance(stop, int) and stop in eos_ids and (not tokens or tokens[-1] != stop):
            tokens.append(stop)
        answers.append(tokens)
    return answers
