"""Scoring on a Ray cluster with Ray Data (``pip install 'omnirm[ray]'``).

:class:`RecordScorer` is a callable class for ``Dataset.map_batches``: Ray runs it as a pool of
actors, each loading the reward model or judge once::

    import ray
    from omnirm.integrations.ray import RecordScorer

    ds = ray.data.read_text("pairs.jsonl")                     # one row per line: "text"
    scored = ds.map_batches(
        RecordScorer,
        fn_constructor_kwargs={"model": "/shared/rm", "column": "text"},
        concurrency=4,           # actors (newer Ray: compute=ActorPoolStrategy(size=4))
        num_gpus=1,              # per actor
        batch_size=64,
        batch_format="pyarrow",  # or "pandas", "numpy"
    )
    scored.write_parquet("/shared/scored/")

**Columns.** A record crosses as one column (``record`` by default, or ``column=``) holding the
record as a JSON string (or a dict); a batch without that column takes each row's columns as
the record's fields (``id``, ``prompt``, ``responses`` …, as ``read_json`` or ``read_parquet``
of omnirm records give them). Results are two columns: ``id`` and ``record``, the scored record
as the JSON line ``omnirm score`` writes (``rewards``, ``predicted``, ``margin``, ``scored_by``
with its fingerprint and input hash …). JSON strings rather than one column per field because
records are nested and vary from row to row (text or a list of content parts, media of several
kinds, ``predicted`` 0, 1 or "tie"), which Arrow's one-type-per-column blocks refuse.

Bad records follow ``on_error``: ``fail`` raises (the Ray job fails), ``skip`` drops them,
``record`` returns them with an ``error`` key. Line numbers in errors count rows within the
batch; the record id names the record. Model folders, media and caches must be reachable at the
same paths from every node.

**vLLM on GPU clusters.** Ray Data's LLM processors (``ray.data.llm``) run a vLLM engine per
actor; :func:`judge_requests` gives the chat messages omnirm's judge would send for a record
(the same prompt templates, orders and media), and :func:`read_answers` turns the generated
texts back into omnirm's verdict fields (see the README, "Scaling out").
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from omnirm.errors import RecordError, UsageError
from omnirm.on_error import ErrorPolicy, OnError
from omnirm.options import JudgeOptions, MediaOptions, ModelOptions
from omnirm.records import InvalidRecord, Record, parse_record

Item = tuple[int, Record | InvalidRecord]


class _Lines:
    def __init__(self) -> None:
        self.lines: list[dict[str, Any]] = []

    def write(self, obj: Any) -> None:
        self.lines.append(obj)


def _rows(batch: Any, column: str) -> list[Any]:
    """The batch's records: ``column``'s values, else each row's columns as a dict."""
    import pyarrow as pa

    if isinstance(batch, pa.Table):
        if column in batch.column_names:
            return list(batch.column(column).to_pylist())
        return list(batch.to_pylist())
    if isinstance(batch, dict):  # batch_format="numpy": column → array
        if column in batch:
            return [_plain(value) for value in batch[column]]
        names = list(batch)
        count = len(batch[names[0]]) if names else 0
        return [{name: _plain(batch[name][i]) for name in names} for i in range(count)]
    # pandas
    if column in batch.columns:
        return [_plain(value) for value in batch[column].tolist()]
    return [{k: _plain(v) for k, v in row.items()} for row in batch.to_dict("records")]


def _plain(value: Any) -> Any:
    """numpy values (arrays of a list column, numpy scalars) as plain Python values."""
    if hasattr(value, "tolist"):
        return _plain(value.tolist())
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _items(rows: Sequence[Any]) -> Iterator[Item]:
    from omnirm.jsonl import InvalidJson

    for line, row in enumerate(rows, start=1):
        value = row
        if isinstance(row, bytes | str):
            if not row.strip():
                continue
            try:
                value = orjson.loads(row)
            except orjson.JSONDecodeError as exc:
                text = row.decode(errors="replace") if isinstance(row, bytes) else row
                yield (
                    line,
                    InvalidRecord(line, InvalidJson(f"invalid JSON: {exc}", text, line=line)),
                )
                continue
        try:
            yield line, parse_record(value)
        except RecordError as error:
            yield line, InvalidRecord(line, error.located(line=line), value)


class RecordScorer:
    """Scores batches of records for ``Dataset.map_batches`` (see the module docs): the reward
    ``model`` (a folder or hub id; None with no ``judge``: the embedded default model) or the
    ``judge`` (a spec such as ``hf:PATH``, or full :class:`~omnirm.options.JudgeOptions`),
    loaded once per actor with ``options`` and ``media`` (dataclasses or dicts of their
    fields). ``column`` holds the records; ``on_error``: ``fail``, ``skip`` or ``record``."""

    def __init__(
        self,
        model: str | None = None,
        judge: str | JudgeOptions | dict[str, Any] | None = None,
        *,
        options: ModelOptions | dict[str, Any] | None = None,
        media: MediaOptions | dict[str, Any] | None = None,
        on_error: OnError | str = OnError.FAIL,
        column: str = "record",
    ) -> None:
        from omnirm.scorer import fingerprint_digest, load_scorer

        if isinstance(options, dict):
            options = ModelOptions(**options)
        if isinstance(media, dict):
            media = _media_options(media)
        if isinstance(judge, dict):
            judge = JudgeOptions(**judge)
        self.scorer = load_scorer(model, judge, media=media, options=options)
        self.digest = fingerprint_digest(self.scorer.fingerprint())
        self.on_error = OnError(on_error)
        self.column = column

    def score_rows(self, rows: Sequence[Any]) -> list[dict[str, Any]]:
        """The rows' records scored (stamped as ``omnirm score`` stamps them), in order; error
        records among them with ``on_error == "record"``."""
        from omnirm.resume import ResumableOutput

        sink = _Lines()
        out = ResumableOutput(sink, self.digest, provenance=self.scorer.provenance())
        policy = ErrorPolicy(self.on_error, out.errors)
        for record in self.scorer.score(out.pending(_items(rows)), policy):
            out.write(record)
        return sink.lines

    def __call__(self, batch: Any) -> Any:
        """A batch (pyarrow Table, pandas DataFrame or dict of numpy arrays) → the same kind,
        with columns ``id`` and ``record`` (the scored record as JSON)."""
        from omnirm.jsonl import dumps

        lines = self.score_rows(_rows(batch, self.column))
        ids = [line.get("id") if isinstance(line.get("id"), str) else None for line in lines]
        columns: dict[str, list[Any]] = {"id": ids, "record": [dumps(line) for line in lines]}
        return _like(batch, columns)

    def __del__(self) -> None:
        scorer = getattr(self, "scorer", None)
        if scorer is not None:
            scorer.close()


def _media_options(fields: dict[str, Any]) -> MediaOptions:
    from omnirm.media.limits import MediaLimits

    given: dict[str, Any] = dict(fields)
    if given.get("root") is not None:
        given["root"] = Path(given["root"])
    if isinstance(given.get("limits"), dict):
        given["limits"] = MediaLimits(**given["limits"])
    return MediaOptions(**given)


def _like(batch: Any, columns: dict[str, list[Any]]) -> Any:
    import pyarrow as pa

    if isinstance(batch, pa.Table):
        return pa.table({"id": pa.array(columns["id"], pa.string()), "record": columns["record"]})
    if isinstance(batch, dict):
        import numpy as np

        return {name: np.array(values, dtype=object) for name, values in columns.items()}
    import pandas as pd

    return pd.DataFrame(columns)


# -- judges on Ray Data's vLLM processors -------------------------------------------------------


def judge_requests(
    record: Record | dict[str, Any],
    *,
    mode: str = "pairwise",
    orders: str = "both",
    criteria: str | None = None,
    prompt_template: str | Path | None = None,
    ties: bool = False,
    answer_format: str = "marks",
    media: MediaOptions | None = None,
    modalities: Iterable[str] = ("image", "video", "audio"),
) -> list[dict[str, Any]]:
    """The requests omnirm's judge makes for ``record``, as OpenAI-style chat messages (media
    inlined as base64) for ``ray.data.llm``'s processors or any chat endpoint: a list of
    ``{"label": "ab" | "ba" | "response I", "messages": [...]}``. ``mode``, ``orders``,
    ``criteria``, ``prompt_template``, ``ties`` and ``answer_format`` (``marks``: ``[[A]]``, or
    ``json``) are those of ``omnirm score --judge``;
    ``modalities`` are the media the judge model reads. Answer them in order and read the
    answers with :func:`read_answers`."""
    from omnirm.judging.conversations import ConversationBuilder
    from omnirm.judging.judge import judge_conversations
    from omnirm.models.backends.openai import to_openai_messages
    from omnirm.prompts.templates import default_template, load_template

    if mode not in ("pairwise", "pointwise"):
        raise UsageError(f"mode {mode!r}: pairwise or pointwise")
    if orders not in ("both", "ab"):
        raise UsageError(f"orders {orders!r}: both or ab")
    template = load_template(prompt_template) if prompt_template else default_template(mode)  # type: ignore[arg-type]
    if template.mode != mode:
        raise UsageError(
            f"{prompt_template} is a {template.mode} template; pass mode={template.mode!r}"
        )
    record = record if isinstance(record, Record) else parse_record(record)
    builder = ConversationBuilder(
        template,
        (media or MediaOptions()).resolver(),
        frozenset(modalities),
        ties=ties,
        answer_format=answer_format,
    )
    return [
        {"label": label, "messages": to_openai_messages(conversation)}
        for label, conversation in judge_conversations(builder, record, mode, orders, criteria)
    ]


def read_answers(
    record: Record | dict[str, Any],
    requests: Sequence[dict[str, Any]],
    answers: Sequence[str | None],
    *,
    mode: str = "pairwise",
) -> dict[str, Any]:
    """``record`` with the fields omnirm's judge adds, read from the ``answers`` (generated
    texts, one per request of :func:`judge_requests`, None for a failed one) by omnirm's verdict
    parser: pairwise ``predicted`` (both orders combined: 0, 1, "tie" or None), ``consistent``
    and ``rationale``; pointwise ``rewards`` (and ``predicted`` for a pair); and per request
    ``judgements`` (label, verdict or score, answer). No retries: an answer without a verdict
    counts as none."""
    from omnirm.judging.judge import answer_fields, parse_answer, verdict_outcome

    if len(requests) != len(answers):
        raise UsageError(f"{len(requests)} requests but {len(answers)} answers")
    record = record if isinstance(record, Record) else parse_record(record)
    labels = [request["label"] for request in requests]
    parsed = [None if text is None else parse_answer(mode, text) for text in answers]
    out = record.to_dict()
    out.update(answer_fields(mode, labels, parsed, answers[0] if answers else None))
    judgements = []
    for label, value, text in zip(labels, parsed, answers, strict=True):
        if mode == "pointwise":
            judgements.append({"response": int(label.split()[-1]), "score": value, "answer": text})
        else:
            outcome = verdict_outcome(value, label)
            judgements.append(
                {"order": label, "verdict": value, "predicted": outcome, "answer": text}
            )
    out["judgements"] = judgements
    return out


# -- omnirm score --ray ---------------------------------------------------------------------------


def score_with_ray(
    source: str | Path,
    *,
    output: Path | None = None,
    model: str | None = None,
    judge: JudgeOptions | None = None,
    options: ModelOptions | None = None,
    media: MediaOptions | None = None,
    on_error: OnError | str = OnError.FAIL,
    address: str | None = None,
    concurrency: int = 1,
    num_gpus: float = 0.0,
    batch_size: int = 64,
) -> RayRun:
    """``omnirm score --ray``: ``source`` (JSONL, or Parquet: ``.parquet`` file or folder) scored
    by a pool of ``concurrency`` :class:`RecordScorer` actors (``num_gpus`` each) on the Ray
    cluster at ``address`` (None: a local one), written in input order to ``output``: JSONL,
    or Parquet when it ends in ``.parquet`` (columns ``id``, ``record``), through a temporary
    file renamed into place."""
    import logging
    import os
    import tempfile
    from dataclasses import replace

    from omnirm import console
    from omnirm.jsonl import STDIN, JsonlWriter, same_file
    from omnirm.options import default_media_root

    try:
        import ray
    except ImportError:
        raise UsageError("--ray needs Ray Data: pip install 'omnirm[ray]'") from None
    if str(source) == STDIN:
        raise UsageError("--ray reads a FILE (JSONL or Parquet), not standard input")
    path = Path(source)
    if not path.exists():
        raise UsageError(f"{source}: no such file")
    if concurrency < 1:
        raise UsageError("--ray-concurrency must be at least 1")
    if output is not None and same_file(output.resolve(), path):
        raise UsageError(f"-o {output} is the input file: write elsewhere")
    parquet_in = path.suffix == ".parquet" or path.is_dir()
    media = media or MediaOptions()
    # actors run elsewhere: the media root as an absolute path, fixed here
    media = replace(media, root=default_media_root(source, media.root).resolve())
    kwargs: dict[str, Any] = {
        "model": model,
        "judge": judge,
        "options": options,
        "media": media,
        "on_error": OnError(on_error).value,
        "column": "record" if parquet_in else "text",
    }
    if not ray.is_initialized():
        ray.init(
            address=address,
            include_dashboard=False,
            log_to_driver=console.verbosity() >= 1,
            logging_level=logging.ERROR if console.verbosity() < 1 else logging.INFO,
        )
    if console.verbosity() < 1:  # stderr: omnirm's lines, Ray's progress with -v
        logging.getLogger("ray.data").setLevel(logging.WARNING)
    context = ray.data.DataContext.get_current()
    context.execution_options.preserve_order = True  # the output in input order
    context.enable_progress_bars = console.verbosity() >= 1
    # Reading takes no CPU slot: actors holding every slot would leave none to read with.
    absolute = str(path.resolve())
    ds = (
        ray.data.read_parquet(absolute, num_cpus=0)
        if parquet_in
        else ray.data.read_text(absolute, num_cpus=0)
    )
    scored = ds.map_batches(
        RecordScorer,
        fn_constructor_kwargs=kwargs,
        compute=ray.data.ActorPoolStrategy(size=concurrency),
        num_gpus=num_gpus or None,
        batch_size=batch_size,
        batch_format="pyarrow",
    )
    batches: Iterable[Any] = scored.iter_batches(batch_format="pyarrow", batch_size=None)
    count = errors = 0
    if output is not None and output.suffix == ".parquet":
        import pyarrow.parquet as pq

        handle, temp = tempfile.mkstemp(dir=output.resolve().parent, prefix=f".{output.name}.")
        os.close(handle)
        try:
            writer = None
            for table in batches:
                if writer is None:
                    writer = pq.ParquetWriter(temp, table.schema)
                writer.write_table(table)
                count += table.num_rows
                errors += sum(
                    _is_error(orjson.loads(text)) for text in table.column("record").to_pylist()
                )
            if writer is not None:
                writer.close()
            else:  # no record at all: an empty file with the two columns
                import pyarrow as pa

                empty = pa.table(
                    {"id": pa.array([], pa.string()), "record": pa.array([], pa.string())}
                )
                pq.write_table(empty, temp)
            os.replace(temp, output)
        finally:
            Path(temp).unlink(missing_ok=True)
        return RayRun(count, errors)
    with JsonlWriter(output, inputs=[source]) as out:
        for table in batches:
            for text in table.column("record").to_pylist():
                line = orjson.loads(text)
                errors += 1 if _is_error(line) else 0
                out.write(line)
                count += 1
    return RayRun(count, errors)


def _is_error(line: dict[str, Any]) -> bool:
    return "scored_by" not in line and isinstance(line.get("error"), dict)


@dataclass
class RayRun:
    """What :func:`score_with_ray` wrote: lines, and error records among them."""

    lines: int
    errors: int


__all__ = ["RayRun", "RecordScorer", "judge_requests", "read_answers", "score_with_ray"]
