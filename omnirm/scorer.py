"""The scoring seam: one :class:`Scorer` interface for reward models and generative judges, the
one loop that streams records through a scorer in windows, and :func:`load_scorer`.

Everything that scores a stream of records — ``score``, ``bench``, ``bon``, training's eval
rewards — goes through a :class:`Scorer`; :func:`load_scorer` opens one:

- :class:`~omnirm.runners.ModelScorer` (``kind == "model"``): a reward model folder, hub id, or
  the embedded default model; batches of sequences on :class:`~omnirm.scoring.RewardScorer`;
- :class:`~omnirm.runners.JudgeScorer` (``kind == "judge"``): a generative judge on one backend
  (``hf:``, ``openai:``, ``vllm:``) through :class:`~omnirm.judging.judge.Judge`.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeVar, runtime_checkable

from omnirm.on_error import ErrorPolicy
from omnirm.options import JudgeOptions, MediaOptions, ModelOptions
from omnirm.records import InvalidRecord, Record

if TYPE_CHECKING:
    from omnirm.media.paths import MediaResolver

Item = tuple[int, Record | InvalidRecord]  # (input line, record or what makes it invalid)
Items = Iterable[Item]
R = TypeVar("R")


@runtime_checkable
class Scorer(Protocol):
    """What every scorer offers.

    - ``kind``: ``"model"`` (rewards per response) or ``"judge"`` (a generative judge);
      ``pairwise``: whether it gives a verdict per pair rather than a score per response;
      ``label``: ``model:NAME`` or ``judge:SPEC``; ``verb``: for progress bars.
    - ``score(items, policy)``: scored records (dicts) in input order; bad ones go to ``policy``.
    - ``fingerprint()``: what identifies the scores it produces (model files, backend,
      settings): ``bench`` keys its score cache with it and ``--resume`` checks it.
    - ``describe()``: the protocol lines printed with a benchmark report.
    - ``provenance()``: the ``scored_by`` block; ``summary()``: lines for stderr.
    """

    kind: Literal["model", "judge"]
    pairwise: bool
    label: str
    verb: str

    def score(self, items: Items, policy: ErrorPolicy) -> Iterator[dict[str, Any]]: ...

    def fingerprint(self) -> dict[str, Any]: ...

    def describe(self) -> dict[str, str]: ...

    def provenance(self) -> dict[str, Any]: ...

    def summary(self) -> list[str]: ...

    def close(self) -> None: ...


#: A window of records that takes less than this is followed by one twice as large.
WINDOW_SECONDS = 1.0


def windowed(
    items: Items,
    compute: Callable[[list[Item]], R],
    emit: Callable[[list[Item], R], Iterator[dict[str, Any]]],
    *,
    first: int,
    largest: int,
) -> Iterator[dict[str, Any]]:
    """The one windowing loop: ``items`` gathered into windows, each ``compute`` d at once, then
    ``emit`` ted (which applies the error policy, in input order) before the next is read.

    The first window holds ``first`` items; the next ones double while computing one takes under
    :data:`WINDOW_SECONDS`, up to ``largest`` (``first == largest`` keeps a fixed size), so output
    starts after the first batches and keeps coming every few seconds even from a slow scorer.
    """
    size = first
    window: list[Item] = []
    for item in items:
        window.append(item)
        if len(window) >= size:
            started = time.monotonic()
            results = compute(window)
            if time.monotonic() - started < WINDOW_SECONDS:
                size = min(largest, size * 2)
            yield from emit(window, results)
            window = []
    if window:
        yield from emit(window, compute(window))


def fingerprint_digest(fingerprint: dict[str, Any]) -> str:
    """A short stable hash of a fingerprint (for cache file names)."""
    text = json.dumps(fingerprint, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def load_scorer(
    model: str | Path | None = None,
    judge: str | JudgeOptions | None = None,
    *,
    media: MediaOptions | None = None,
    source: str | Path | None = None,
    name: str | None = None,
    options: ModelOptions | None = None,
) -> Scorer:
    """A reward model (``model``: a folder, a hub id, or None for the embedded default model)
    or a generative judge (``judge``: a spec such as ``hf:PATH`` or full :class:`JudgeOptions`).
    Media resolve against ``media.root``, else the folder of ``source`` (the input, named in
    error messages as ``name``, by default its file name). Close it when done (or use it as ``with contextlib.closing(...)``).

    >>> scorer = load_scorer(options=ModelOptions(device="cpu"))  # doctest: +SKIP
    >>> scorer.kind
    'model'
    """
    from omnirm.jsonl import display_name

    if name is None and source is not None:
        name = display_name(source)
    resolver = (media or MediaOptions()).resolver(source)
    return open_scorer(model, judge, resolver=resolver, name=name, options=options)


def open_scorer(
    model: str | Path | None = None,
    judge: str | JudgeOptions | None = None,
    *,
    resolver: MediaResolver,
    name: str | None = None,
    options: ModelOptions | None = None,
) -> Scorer:
    """:func:`load_scorer` with a media resolver already made (several scorers share one)."""
    from omnirm.errors import UsageError
    from omnirm.runners import JudgeScorer, ModelScorer

    if model is not None and judge is not None:
        raise UsageError(
            "give either --model (a reward model) or --judge SPEC (a generative judge), not both"
        )
    if judge is not None:
        if isinstance(judge, str):
            judge = JudgeOptions(spec=judge)
        return JudgeScorer(judge, resolver, name)
    return ModelScorer(model, resolver, name, options or ModelOptions())
