"""``--judge hf:PATH``: a transformers model (a local folder or ``.gguf`` file, or a hub id
``ORG/NAME`` fetched into the hub's cache) generates the judge's answers.

Text models (a folder or a ``.gguf`` file) read the conversation through the tokenizer's chat
template; vision-language models (Qwen2.5-VL and others loaded by
``AutoModelForImageTextToText``) and omni models (the Qwen2.5-Omni thinker) through the
processor's, with images, video frames and audio passed as the processor takes them. Batches
are left-padded and generated together; greedy decoding (temperature 0) gives the same answer
whatever the batch, sampling is seeded per batch. Works on CPU; bf16 on GPUs that support it. Answers with a JSON
schema (:attr:`Sampling.json_schema`) are decoded under xgrammar's grammar for it: each step
masks the tokens that would leave the schema, so the answer always parses and fits it.
"""

from __future__ import annotations

import importlib.util
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from omnirm.errors import UsageError
from omnirm.models.backends.base import (
    Conversation,
    Generation,
    JudgeBackend,
    Sampling,
    VerdictProbabilities,
)


class HFBackend(JudgeBackend):
    kind = "hf"
    _given_fingerprint: dict[str, Any] | None = None  # set by :meth:`in_memory`

    def __init__(
        self,
        model: str,
        *,
        device: str = "auto",
        batch_size: int = 4,
        trust_remote_code: bool = False,
        revision: str | None = None,
    ) -> None:
        from omnirm.models.checkpoint import detect_kind
        from omnirm.models.devices import resolve_device
        from omnirm.models.safety import check_model_folder
        from omnirm.models.sources import resolve_model

        label = f"--judge hf:{model}"
        resolved = resolve_model(
            model, revision=revision, trust_remote_code=trust_remote_code, option="--judge hf:"
        )
        self._model_name = resolved.display if resolved.is_hub else model
        self.source, self.gguf_file = resolved.folder, resolved.gguf_file
        gguf_file = self.gguf_file
        check_model_folder(
            self.source, gguf_file=gguf_file, trust_remote_code=trust_remote_code, label=label
        )
        self.batch_size = max(1, batch_size)
        self.device = resolve_device(device)
        self.kind_of_model, _ = detect_kind(self.source, gguf_file, trust_remote_code)
        self._load(trust_remote_code)

    def _load(self, trust_remote_code: bool) -> None:
        from omnirm.models.checkpoint import load_tokenizer
        from omnirm.models.devices import inference_dtype
        from omnirm.models.safety import weight_options

        dtype = inference_dtype(self.device)
        options: dict[str, Any] = {
            "dtype": dtype,
            "trust_remote_code": trust_remote_code,
            **weight_options(self.gguf_file),
        }
        self.processor: Any = None
        net: Any
        if self.kind_of_model == "text":
            from transformers import AutoModelForCausalLM

            self.tokenizer = load_tokenizer(self.source, self.gguf_file, trust_remote_code)
            net = AutoModelForCausalLM.from_pretrained(
                self.source, gguf_file=self.gguf_file, **options
            )
            self._modalities: frozenset[str] = frozenset()
        else:
            net, self.processor, self._modalities = load_media_judge(
                self.source, trust_remote_code, options
            )
            self.tokenizer = self.processor.tokenizer
        self.net = net.to(self.device).eval()

    @classmethod
    def in_memory(
        cls,
        net: Any,
        tokenizer: Any,
        *,
        name: str,
        fingerprint: dict[str, Any],
        batch_size: int = 4,
        processor: Any = None,
        modalities: frozenset[str] = frozenset(),
    ) -> HFBackend:
        """A backend around a model already loaded (``train r1 --stage rs`` asks the judge it
        is training; a media judge with its ``processor``); ``fingerprint`` must tell its
        weights apart (it keys the cache)."""
        backend = cls.__new__(cls)
        backend._model_name = name
        backend.source, backend.gguf_file = name, None
        backend.batch_size = max(1, batch_size)
        backend.device = next(net.parameters()).device
        backend.kind_of_model = "text" if processor is None else "media"
        backend.processor = processor
        backend.tokenizer = tokenizer
        backend._modalities = modalities
        backend.net = net
        backend._given_fingerprint = fingerprint
        return backend

    @property
    def model(self) -> str:
        return self._model_name

    @property
    def constrains_json(self) -> bool:
        return importlib.util.find_spec("xgrammar") is not None

    def _json_constraint(self, schema: str) -> Any:
        """A fresh logits processor holding each row to ``schema`` (grammars compiled once)."""
        try:
            import xgrammar
            from xgrammar.contrib.hf import LogitsProcessor
        except ImportError as error:
            raise UsageError(
                f"structured answers on hf: need xgrammar ({error}); "
                "pip install xgrammar, or use --no-structured"
            ) from None
        grammars: dict[str, Any] = self.__dict__.setdefault("_grammars", {})
        if schema not in grammars:
            if "_grammar_compiler" not in self.__dict__:
                # the output layer may be wider than the tokenizer's vocabulary (padding)
                width = self.net.get_output_embeddings().weight.shape[0]
                info = xgrammar.TokenizerInfo.from_huggingface(
                    self.tokenizer,
                    vocab_size=width,
                    stop_token_ids=sorted(_eos_ids(self.net, self.tokenizer)),
                )
                self._grammar_compiler = xgrammar.GrammarCompiler(info)
            # compact JSON: no runs of whitespace for a small model to loop in
            grammars[schema] = self._grammar_compiler.compile_json_schema(
                schema, any_whitespace=False
            )
        return LogitsProcessor(grammars[schema])

    @property
    def modalities(self) -> frozenset[str]:
        return self._modalities

    def fingerprint(self) -> dict[str, Any]:
        if self._given_fingerprint is not None:
            return self._given_fingerprint
        folder = Path(self.source)
        names = [self.gguf_file] if self.gguf_file else None
        files = sorted(
            (path.name, path.stat().st_size, path.stat().st_mtime_ns)
            for path in folder.iterdir()
            if (names is None and path.suffix in (".json", ".safetensors", ".bin"))
            or (names is not None and path.name in names)
        )
        return {"backend": "hf", "model": self.source, "gguf_file": self.gguf_file, "files": files}

    @torch.no_grad()
    def generate(self, conversations: list[Conversation], sampling: Sampling) -> list[Generation]:
        answers: list[Generation] = []
        for start in range(0, len(conversations), self.batch_size):
            answers.extend(self._batch(conversations[start : start + self.batch_size], sampling))
        return answers

    def _batch(
        self,
        batch: list[Conversation],
        sampling: Sampling,
        stop: Callable[[str], bool] | None = None,
        continuations: list[str] | None = None,
    ) -> list[Generation]:
        from transformers import LogitsProcessorList, StoppingCriteriaList

        from omnirm.prompts.verdicts import has_mark

        began = time.perf_counter()
        inputs = self._encode(batch, continuations)
        pad = self.tokenizer.pad_token_id
        options: dict[str, Any] = {"max_new_tokens": sampling.max_new_tokens, "pad_token_id": pad}
        if sampling.json_schema is not None:
            constraint = self._json_constraint(sampling.json_schema)
            options["logits_processor"] = LogitsProcessorList([constraint])
        elif sampling.stop_at_mark:  # a mark inside a JSON answer must not cut it short
            stop = stop or has_mark
        if stop is not None:
            width = inputs["input_ids"].shape[1]
            options["stopping_criteria"] = StoppingCriteriaList(
                [StopWhen(self.tokenizer, width, stop)]
            )
        if sampling.temperature > 0:
            if sampling.seed is not None:
                torch.manual_seed(sampling.seed)
            options.update(do_sample=True, temperature=sampling.temperature, top_p=sampling.top_p)
        else:
            options.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        output = self.net.generate(**inputs, **options)
        width = inputs["input_ids"].shape[1]
        generated = output[:, width:].cpu()
        seconds = (time.perf_counter() - began) / len(batch)  # one generate call serves the batch
        eos = _eos_ids(self.net, self.tokenizer)
        answers = []
        for row in range(len(batch)):
            tokens = generated[row].tolist()
            length = next((i + 1 for i, t in enumerate(tokens) if t in eos), len(tokens))
            if pad is not None and pad not in eos:  # a row stopped early is padded after
                length = next((i for i, t in enumerate(tokens[:length]) if t == pad), length)
            answers.append(
                Generation(
                    text=self.tokenizer.decode(tokens[:length], skip_special_tokens=True).strip(),
                    prompt_tokens=int(inputs["attention_mask"][row].sum()),
                    completion_tokens=length,
                    seconds=seconds,
                )
            )
        return answers

    @torch.no_grad()
    def verdict_probabilities(
        self,
        conversations: list[Conversation],
        letters: tuple[str, ...],
        *,
        prefix: str = "[[",
        rationale: Sampling | None = None,
    ) -> list[VerdictProbabilities]:
        ids = self._letter_ids(prefix, letters)
        out: list[VerdictProbabilities] = []
        for start in range(0, len(conversations), self.batch_size):
            batch = conversations[start : start + self.batch_size]
            began = time.perf_counter()
            written: list[Generation | None] = [None] * len(batch)
            if rationale is not None:  # reasoning first, up to where the verdict mark starts
                written = list(self._batch(batch, rationale, stop=lambda text: prefix in text))
            texts = [
                None if w is None or w.text is None else w.text.split(prefix)[0].rstrip()
                for w in written
            ]
            continuations = [
                prefix if t is None else f"{t}\n{prefix}" if t else prefix for t in texts
            ]
            inputs = self._encode(batch, continuations)
            logits = self.net(**inputs).logits[:, -1, :].float()  # left-padded: last is real
            probs = torch.softmax(logits, dim=-1)[:, ids].cpu()
            seconds = (time.perf_counter() - began) / len(batch)
            for row, text in enumerate(texts):
                mass = float(probs[row].sum())
                shares = (
                    probs[row] / mass if mass > 0 else torch.full_like(probs[row], 1 / len(ids))
                )
                generated = written[row]
                out.append(
                    VerdictProbabilities(
                        probabilities={k: float(v) for k, v in zip(letters, shares, strict=True)},
                        mass=mass,
                        rationale=text,
                        prompt_tokens=int(inputs["attention_mask"][row].sum()),
                        completion_tokens=generated.completion_tokens or 0 if generated else 0,
                        seconds=seconds,
                    )
                )
        return out

    def _letter_ids(self, prefix: str, letters: tuple[str, ...]) -> list[int]:
        """The token each verdict letter starts with right after ``prefix``."""
        base = self.tokenizer.encode(prefix, add_special_tokens=False)
        ids = []
        for letter in letters:
            tokens = self.tokenizer.encode(prefix + letter, add_special_tokens=False)
            if tokens[: len(base)] != base or len(tokens) <= len(base):
                raise UsageError(
                    f"--verdict probs: this tokenizer merges {prefix!r} with {letter!r}, so "
                    "the verdict letter has no token of its own after the prefix"
                )
            ids.append(tokens[len(base)])
        if len(set(ids)) != len(ids):
            raise UsageError(f"--verdict probs: the letters {letters} share a first token")
        return ids

    def _encode(
        self, batch: list[Conversation], continuations: list[str] | None = None
    ) -> dict[str, torch.Tensor]:
        """Token ids (left-padded) ready for generation, or, with ``continuations``, for
        continuing an assistant answer that starts with that text."""
        encoded = encode_chat(self.tokenizer, self.processor, batch, continuations=continuations)
        return {key: value.to(self.device) for key, value in encoded.items()}


def load_media_judge(
    source: str, trust_remote_code: bool, options: dict[str, Any]
) -> tuple[Any, Any, frozenset[str]]:
    """A vision-language (``AutoModelForImageTextToText``) or omni (its thinker) chat model,
    its processor, and the media kinds the processor reads (``train r1`` loads its judges so)."""
    from transformers import AutoConfig, AutoModelForImageTextToText

    from omnirm.models.checkpoint import load_processor, thinker_class
    from omnirm.models.inputs import processor_modalities

    processor = load_processor(source, trust_remote_code)
    hf_config = AutoConfig.from_pretrained(source, trust_remote_code=trust_remote_code)
    if getattr(hf_config, "thinker_config", None) is not None:
        net = thinker_class(hf_config, source).from_pretrained(source, **options)
    else:
        net = AutoModelForImageTextToText.from_pretrained(source, **options)
    return net, processor, processor_modalities(processor) - {"mesh"}


def encode_chat(
    tokenizer: Any,
    processor: Any,
    batch: list[Conversation],
    *,
    continuations: list[str] | None = None,
    answers: list[str] | None = None,
    padding_side: str = "left",
) -> dict[str, torch.Tensor]:
    """The conversations as model inputs (padded on ``padding_side``), through the
    tokenizer's chat template, or the processor's with the media parts: up to where the
    assistant's answer starts; with ``continuations``, with an assistant answer that starts
    with that text and goes on; with ``answers``, answered and closed."""
    tail = continuations if continuations is not None else answers
    if tail is not None:
        batch = [
            [*conversation, {"role": "assistant", "content": text}]
            for conversation, text in zip(batch, tail, strict=True)
        ]
    template: dict[str, Any] = (
        {"add_generation_prompt": True}
        if tail is None
        else {"add_generation_prompt": False, "continue_final_message": continuations is not None}
    )
    if processor is None:
        texts = [[as_text_message(m) for m in conversation] for conversation in batch]
        return dict(
            tokenizer.apply_chat_template(
                texts,
                **template,
                tokenize=True,
                return_dict=True,
                return_tensors="pt",
                padding=True,
                tokenizer_kwargs={"padding_side": padding_side},
            )
        )
    messages = [[_processor_message(processor, m) for m in c] for c in batch]
    return dict(
        processor.apply_chat_template(
            messages,
            **template,
            tokenize=True,
            return_dict=True,
            return_tensors="pt",
            processor_kwargs={"padding": True, "padding_side": padding_side},
        )
    )


def _processor_message(processor: Any, message: dict[str, Any]) -> dict[str, Any]:
    content = message["content"]
    if isinstance(content, str):
        return {"role": message["role"], "content": [{"type": "text", "text": content}]}
    return {"role": message["role"], "content": [_processor_part(processor, p) for p in content]}


def _processor_part(processor: Any, part: dict[str, Any]) -> dict[str, Any]:
    kind = part["type"]
    if kind == "video":
        return {"type": "video", "video": part["frames"]}
    if kind == "audio":
        rate = int(processor.feature_extractor.sampling_rate)
        audio = part["audio"]
        if int(part["sampling_rate"]) != rate:
            from omnirm.media import resample

            audio = resample(audio, int(part["sampling_rate"]), rate)
        return {"type": "audio", "audio": audio}
    return part


def as_text_message(message: dict[str, Any]) -> dict[str, str]:
    """A message for a text-only chat template (contents must be strings there)."""
    content = message["content"]
    if isinstance(content, list):
        media = sorted({p["type"] for p in content if p["type"] != "text"})
        if media:
            raise UsageError(f"this judge model reads text only, not {', '.join(media)}")
        content = "".join(p["text"] for p in content)
    return {"role": message["role"], "content": content}


class StopWhen:
    """A stopping criterion for ``generate``: a row is done once ``found`` is true of the text
    it generated (only the last ``window`` tokens are decoded at each step)."""

    def __init__(
        self, tokenizer: Any, start: int, found: Callable[[str], bool], window: int = 32
    ) -> None:
        self.tokenizer, self.start, self.found, self.window = tokenizer, start, found, window

    def __call__(self, input_ids: torch.Tensor, scores: Any, **kwargs: Any) -> torch.Tensor:
        generated = input_ids[:, self.start :]
        done = [
            self.found(self.tokenizer.decode(row[-self.window :], skip_special_tokens=True))
            for row in generated.tolist()
        ]
        return torch.tensor(done, dtype=torch.bool, device=input_ids.device)


def _eos_ids(net: Any, tokenizer: Any) -> set[int]:
    ids = getattr(getattr(net, "generation_config", None), "eos_token_id", None)
    found = set(ids if isinstance(ids, list) else [ids] if ids is not None else [])
    if tokenizer.eos_token_id is not None:
        found.add(int(tokenizer.eos_token_id))
    return found
