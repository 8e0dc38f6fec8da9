"""Rejection sampling (``--stage rs``): the judge being trained writes its own SFT data.

Every record with a usable label is judged ``rs_samples`` times in both orders by the current
model, through the same :class:`~omnirm.judging.judge.Judge` as ``omnirm score --judge`` (same
conversations, verdict parsing and answer cache), sampling at ``rs_temperature`` with seed
``seed + k`` for sample ``k``. A sample is kept when the verdicts of both orders are right (a
tie record needs ``[[C]]`` in both). Each kept sample becomes one line of ``rs.jsonl``: the
record as read, with the ``ab`` answer as its ``rationale`` (its verdict marks are dropped when
SFT trains on it, and its mentions of A and B swapped for the other order) and ``scored_by``
saying which model (with a digest of its weights), which sample and which sampling settings.
The SFT stage that follows trains on these lines.

The file is resumable as ``score``'s outputs are (:mod:`omnirm.resume`): a rerun with
``--resume`` skips records that have lines and refuses lines written by another model or with
other settings. A record none of whose samples was kept has no line, so a resumed run judges it
again — from the answer cache, without generating.

Runs on the main process only (the other processes wait): the file is written in one place.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from omnirm import console
from omnirm.errors import UsageError
from omnirm.jsonl import JsonlWriter, display_name
from omnirm.judging.conversations import ConversationBuilder
from omnirm.records import TIE, InvalidRecord, Record, iter_records
from omnirm.train.r1.config import R1Config
from omnirm.train.r1.policy import Policy

GENERATED_BY = "omnirm train r1 --stage rs"


def rs_path(config: R1Config, label: str) -> Path:
    """Where the rs stage ``label`` writes: ``--rs-output`` (``rs-2`` → ``NAME-2.jsonl``),
    else ``OUTPUT/<label>.jsonl``."""
    if config.rs_output is None:
        return Path(config.output) / f"{label}.jsonl"
    given = Path(config.rs_output)
    if label == "rs":
        return given
    return given.with_name(f"{given.stem}{label.removeprefix('rs')}{given.suffix}")


def weights_digest(net: Any) -> str:
    """A SHA-256 over the model's parameters and buffers (names, shapes, values)."""
    import torch

    digest = hashlib.sha256()
    for name, tensor in sorted(net.state_dict().items()):
        data = tensor.detach().to("cpu").contiguous().view(-1)
        digest.update(f"{name}{tuple(tensor.shape)}{data.dtype}".encode())
        digest.update(data.view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def usable(record: Record, ties: bool) -> bool:
    """Whether a record gives training examples: two responses and a pairwise label."""
    return record.num_responses == 2 and (
        record.preference in (0, 1) or (record.preference == TIE and ties)
    )


def rejection_sample(
    config: R1Config,
    policy: Policy,
    builder: ConversationBuilder,
    label: str,
    reference: str,
    *,
    resume: bool,
    replace: bool = False,
) -> dict[str, Any]:
    """Run the rs stage ``label`` with ``policy`` (see the module docs); returns its metrics
    entry (records judged, samples kept, answers asked and cached, seconds)."""
    import time

    from omnirm.judging.cache import AnswerCache, default_cache_path
    from omnirm.judging.judge import Judge, JudgeSettings, verdict_outcome
    from omnirm.models.backends.base import Sampling
    from omnirm.models.backends.hf import HFBackend
    from omnirm.on_error import ErrorPolicy
    from omnirm.resume import ResumableOutput, value_hash

    began = time.perf_counter()
    path = rs_path(config, label)
    shown = display_name(config.data)
    digest = weights_digest(policy.net)
    fingerprint = {"backend": "hf", "model": reference, "weights_sha256": digest}
    backend = HFBackend.in_memory(
        policy.net,
        policy.tokenizer,
        name=reference,
        fingerprint=fingerprint,
        batch_size=config.batch_size,
        processor=policy.processor,
        modalities=policy.modalities,
    )
    sampling = {
        "temperature": config.rs_temperature,
        "top_p": config.top_p,
        "max_new_tokens": config.max_completion_length,
        "seed": config.seed,
    }
    settings = {
        "samples": config.rs_samples,
        "ties": config.ties,
        "criteria": config.criteria,
        "answer_format": config.answer_format,
    }
    stamp = value_hash({"judge": fingerprint, **sampling, **settings})
    provenance = {
        "generated_by": GENERATED_BY,
        "stage": label,
        "model": reference,
        "weights_sha256": digest,
        **sampling,
        **settings,
    }
    items: list[tuple[int, Record | InvalidRecord]] = []
    for line, item in iter_records(config.data, max_bytes=config.max_record_bytes):
        if isinstance(item, InvalidRecord):
            raise item.error
        if usable(item, config.ties):
            items.append((line, item))
    existing = path.is_file() and path.stat().st_size > 0
    if existing and not resume:
        if not replace:
            raise UsageError(
                f"--rs-output {path}: exists; pass --resume to continue it, --force to write "
                "it again, or choose another file"
            )
        existing = False  # the writer replaces it (after refusing an input file)
    cache = AnswerCache(config.cache or default_cache_path()) if config.use_cache else None
    judges = [
        Judge(
            backend,
            builder,
            JudgeSettings(
                ties=config.ties,
                answer_format="json" if config.answer_format == "json" else "marks",
                retries=0,
                criteria=config.criteria,
                sampling=Sampling(
                    max_new_tokens=config.max_completion_length,
                    temperature=config.rs_temperature,
                    top_p=config.top_p,
                    seed=config.seed + sample,
                ),
                window=max(1, config.batch_size),
            ),
            scored_by={},
            cache=cache,
            source=shown,
        )
        for sample in range(config.rs_samples)
    ]
    kept_lines = judged = 0
    was_training = policy.net.training
    policy.net.eval()
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with JsonlWriter(path, append=existing, flush_seconds=0, inputs=[config.data]) as sink:
            output = ResumableOutput(
                sink,
                stamp,
                path=path if existing else None,
                source=shown,
                provenance=provenance,
            )
            output.check_input(items)
            pending = list(output.pending(items))
            window = max(1, config.batch_size)
            with console.step_progress(len(pending), f"{label}: judging") as progress:
                for start in range(0, len(pending), window):
                    chunk = pending[start : start + window]
                    kept: dict[str, list[dict[str, Any]]] = {}
                    for sample, judge in enumerate(judges):
                        for out in judge.score(chunk, ErrorPolicy("fail")):
                            answers = {j["order"]: j for j in out["judgements"]}
                            gold = out["preference"]
                            right = all(
                                verdict_outcome(answers[o]["verdict"], o) == gold
                                for o in ("ab", "ba")
                            )
                            if right:
                                kept.setdefault(out["id"], []).append(
                                    _sft_line(out, answers, sample, provenance)
                                )
                    for _, record in chunk:
                        assert isinstance(record, Record)
                        for sft_record in kept.get(record.id, []):
                            output.write(sft_record)
                            kept_lines += 1
                    judged += len(chunk)
                    progress.update(judged, kept=float(kept_lines))
    finally:
        policy.net.train(was_training)
        if cache is not None:
            cache.close()
    asked = sum(j.report.asked for j in judges)
    cached = sum(j.report.cached for j in judges)
    console.info(
        f"{label}: {judged} records judged {config.rs_samples} times in both orders "
        f"({asked} answers generated, {cached} from the cache), {kept_lines} samples right in "
        f"both orders kept in {path}"
        + (f"; {output.skipped} records were done already" if output.skipped else "")
    )
    return {
        "stage": label,
        "step": 1,
        "records": judged,
        "records_done_before": output.skipped,
        "kept": kept_lines,
        "keep_rate": kept_lines / (judged * config.rs_samples) if judged else 0.0,
        "generated": asked,
        "cached": cached,
        "seconds": round(time.perf_counter() - began, 3),
        "path": str(path),
    }


def _sft_line(
    judged: dict[str, Any],
    answers: dict[str, dict[str, Any]],
    sample: int,
    provenance: dict[str, Any],
) -> dict[str, Any]:
    """An SFT record from a judged record: the input fields, the ``ab`` answer as rationale."""
    line = {
        k: v
        for k, v in judged.items()
        if k not in ("judgements", "usage", "scored_by", "predicted", "consistent", "rationale")
    }
    line["rationale"] = answers["ab"]["answer"]
    line["scored_by"] = {
        **provenance,
        "sample": sample,
        "answers": {o: answers[o]["answer"] for o in ("ab", "ba")},
    }
    return line
