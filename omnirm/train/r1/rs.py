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

**Every process judges** (``accelerate launch`` / ``torchrun``; one process alone is the same
with one share). The records still to judge are cut, in input order, into batches of
``batch_size`` records, and batch ``b`` goes to the process with index ``b % num_processes``:
whole batches, because sampling is seeded per batch
(:class:`~omnirm.models.backends.hf.HFBackend`), so that every batch is the one a single
process would judge — the same samples are kept with any number of processes (given the same
answer cache; the judge's windows do not grow with timing here), each process on its own
device. Each process appends its lines to its own shard, ``rank-R-of-N.jsonl`` in the hidden
folder ``.rs.jsonl.shards`` beside the file (:mod:`omnirm.distributed`'s names); after a
barrier the main process writes the file anew (a temporary file renamed into place) with the
lines of the file it continues and of every shard, in the input order of their records (a
record's lines in sample order), then removes the shards. The counts reported are totals over
the processes.

The file is resumable as ``score``'s outputs are (:mod:`omnirm.resume`): a rerun with
``--resume`` skips records that have lines — in the file or in the shards a stopped run left,
whatever its number of processes — and refuses lines written by another model or with other
settings. A run that stops (Ctrl-C, a crash, SIGKILL) keeps what its processes wrote in their
shards and leaves the file as it was; a rerun without ``--resume`` refuses the file or the
shards unless ``--force`` (which removes the shards and replaces the file at the end). A record
none of whose samples was kept has no line, so a resumed run judges it again — from the answer
cache, without generating.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from omnirm import console
from omnirm.errors import UsageError
from omnirm.jsonl import JsonlWriter, Sink, display_name
from omnirm.judging.conversations import ConversationBuilder
from omnirm.records import TIE, InvalidRecord, Record, iter_records
from omnirm.train.r1.config import R1Config
from omnirm.train.r1.policy import Policy

GENERATED_BY = "omnirm train r1 --stage rs"
SHARDS = "rank-*-of-*.jsonl"  # the processes' shards of an rs file (omnirm.distributed)


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
    accelerator: Any,
    resume: bool,
    replace: bool = False,
) -> dict[str, Any]:
    """Run the rs stage ``label`` with ``policy`` on this process's share of the records (every
    process of ``accelerator`` calls it; see the module docs); returns its metrics entry, the
    same on every process (records judged, samples kept, answers asked and cached: totals over
    the processes; seconds)."""
    import shutil
    import time

    from omnirm.distributed import ProcessGroup, World, shard_folder
    from omnirm.judging.cache import AnswerCache, default_cache_path
    from omnirm.judging.judge import Judge, JudgeSettings, verdict_outcome
    from omnirm.models.backends.base import Sampling
    from omnirm.models.backends.hf import HFBackend
    from omnirm.on_error import ErrorPolicy
    from omnirm.resume import ResumableOutput, value_hash

    began = time.perf_counter()
    path = rs_path(config, label)
    world = World(size=accelerator.num_processes, rank=accelerator.process_index)
    folder = shard_folder(path, ProcessGroup(world))
    shown = display_name(config.data)
    policy.net.to(accelerator.device)  # a first stage's model is still where it was loaded
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
    # every process looks before any writes: the file, and the shards of a stopped run
    existing = path.is_file() and path.stat().st_size > 0
    stopped = sorted(folder.glob(SHARDS))
    if (existing or stopped) and not resume and not replace:
        what = "exists" if existing else f"a stopped run left its lines in {folder}"
        raise UsageError(
            f"--rs-output {path}: {what}; pass --resume to continue it, --force to write it "
            "again, or choose another file"
        )
    earlier = path if existing and resume else None
    cache = AnswerCache(config.cache or default_cache_path()) if config.use_cache else None
    window = max(1, config.batch_size)
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
                window=window,
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
    final: JsonlWriter | None = None
    accelerator.wait_for_everyone()  # all have looked before the main process clears shards
    try:
        if world.main:  # the file is locked (and checked against the input) before any judging
            path.parent.mkdir(parents=True, exist_ok=True)
            final = JsonlWriter(path, inputs=[config.data], option="--rs-output")
            if not resume:
                shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir(parents=True, exist_ok=True)
        accelerator.wait_for_everyone()
        shard = folder / world.shard_name()
        with JsonlWriter(shard, append=True, inputs=[config.data]) as sink:
            output = ResumableOutput(
                sink,
                stamp,
                path=earlier,
                previous=stopped if resume else (),
                source=shown,
                provenance=provenance,
            )
            output.check_input(items)
            pending = list(output.pending(items))
            done_before = output.skipped
            accelerator.wait_for_everyone()  # all have read the earlier lines: shards grow now
            # whole batches are dealt out, so that each is the batch one process would judge
            # (sampling is seeded per batch): the same samples kept with any number of processes
            batches = [pending[start : start + window] for start in range(0, len(pending), window)]
            mine = list(world.take(batches))
            with console.step_progress(
                sum(map(len, mine)), world.label(f"{label}: judging"), enabled=world.main
            ) as progress:
                for chunk in mine:
                    kept: dict[str, list[dict[str, Any]]] = {}
                    for sample, judge in enumerate(judges):
                        for out in judge.score(chunk, ErrorPolicy("fail"), ramp_up=False):
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
        accelerator.wait_for_everyone()  # every shard is complete
        counts = {
            "judged": judged,
            "kept": kept_lines,
            "asked": sum(j.report.asked for j in judges),
            "cached": sum(j.report.cached for j in judges),
        }
        if world.size > 1:
            from accelerate.utils import gather_object

            shares = gather_object([counts])
            counts = {name: sum(share[name] for share in shares) for name in counts}
        if final is not None:
            merge_in_input_order(items, earlier, sorted(folder.glob(SHARDS)), final)
            final.close()
            shutil.rmtree(folder, ignore_errors=True)
    except BaseException:
        if final is not None and final.file is not None:
            final.file.discard()  # the file stays as it was; the shards stay for --resume
        raise
    finally:
        policy.net.train(was_training)
        if cache is not None:
            cache.close()
    judged, kept_lines = counts["judged"], counts["kept"]
    if world.main:
        console.info(
            f"{label}: {judged} records judged {config.rs_samples} times in both orders "
            f"({counts['asked']} answers generated, {counts['cached']} from the cache"
            + (f", by {world.size} processes" if world.size > 1 else "")
            + f"), {kept_lines} samples right in both orders kept in {path}"
            + (f"; {done_before} records were done already" if done_before else "")
        )
    return {
        "stage": label,
        "step": 1,
        "records": judged,
        "records_done_before": done_before,
        "kept": kept_lines,
        "keep_rate": kept_lines / (judged * config.rs_samples) if judged else 0.0,
        "generated": counts["asked"],
        "cached": counts["cached"],
        "seconds": round(time.perf_counter() - began, 3),
        "path": str(path),
    }


def merge_in_input_order(
    items: list[tuple[int, Record | InvalidRecord]],
    earlier: Path | None,
    shards: list[Path],
    sink: Sink,
) -> int:
    """Write the lines of ``earlier`` (the file a resumed run continues, or None) and of
    ``shards`` to ``sink`` in the order of their records in ``items``, a record's lines in the
    order they were written; returns how many. A shard's lines of a record that ``earlier``
    has are left out (a run stopped after it merged its shards, before it removed them)."""
    from omnirm.jsonl import iter_json_lines_at, read_json_line_at
    from omnirm.resume import item_hash, line_key

    exact: dict[tuple[str, str | None], int] = {}
    first: dict[str, int] = {}
    for position, (_, item) in enumerate(items):
        assert isinstance(item, Record)
        exact.setdefault((item.id, item_hash(item)), position)
        first.setdefault(item.id, position)
    sources = ([earlier] if earlier is not None else []) + shards
    merged_before: set[str] = set()
    order: list[tuple[int, int, int]] = []  # (record position, source, byte offset) per line
    for index, source in enumerate(sources):
        for number, offset, line in iter_json_lines_at(source, max_bytes=None):
            key = line_key(line) if isinstance(line, dict) else None
            if key is None or not isinstance(line, dict):
                raise UsageError(f"{source}:{number}: not a line of this file (no record id)")
            if source is earlier:
                merged_before.add(key)
            elif key in merged_before:
                continue
            stamp = (line.get("scored_by") or {}).get("input")
            at = exact.get((key, stamp), first.get(key))
            if at is None:
                raise UsageError(f"{source}:{number}: record {key!r} is not in the input")
            order.append((at, index, offset))
    order.sort()
    handles = [source.open("rb") for source in sources]
    try:
        for _, index, offset in order:
            sink.write(read_json_line_at(handles[index], offset))
    finally:
        for handle in handles:
            handle.close()
    return len(order)


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
