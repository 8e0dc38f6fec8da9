"""What the endpoints take and give, and how each request becomes records for the scorer.

- ``POST /score``: omnirm records — a JSON list, or ``{"records": [...], "on_error":
  "fail"|"record"}`` — validated as the command line validates them (one response is enough:
  a reward model scores it alone); answered ``{"records": [...]}`` with the fields ``omnirm
  score`` adds.
- ``POST /openrlhf``: OpenRLHF's remote reward protocol (:class:`OpenRLHFRequest` →
  :class:`OpenRLHFResponse`); each query becomes a one-response record (:func:`openrlhf_records`).
- ``POST /classify``: vLLM's classification API (:class:`ClassifyRequest` →
  :class:`ClassifyResponse`): texts scored as whole sequences, or one chat ``messages`` list
  scored as a record.
"""

from __future__ import annotations

import json
import math
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from omnirm.errors import RecordError
from omnirm.records import Record, parse_record

#: The fields a JSON-object label may not set: the response comes from the query.
_LABEL_FORBIDDEN = ("responses",)


class ApiError(Exception):
    """An error answered as ``{"error": {"message", "type", "code", "records"?}}``."""

    def __init__(
        self,
        status: int,
        message: str,
        kind: str,
        *,
        records: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.kind = kind
        self.records = records
        self.headers = headers

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"message": self.message, "type": self.kind, "code": self.status}
        if self.records:
            error["records"] = self.records
        return {"error": error}


def record_errors(errors: list[tuple[str, RecordError]]) -> ApiError:
    """A 400 for records that failed: each named by where it was in the request, its id and
    field, and the first message in the summary."""
    first_where, first = errors[0]
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return ApiError(
        400,
        f"{first_where}: {first}{more}",
        "invalid_record",
        records=[{"where": where, **error.to_dict()} for where, error in errors],
    )


# --------------------------------------------------------------------------------------------
# /score
# --------------------------------------------------------------------------------------------


class ScoreRequest(BaseModel):
    """``POST /score``'s object form (a bare list is the same with ``on_error`` "fail")."""

    model_config = ConfigDict(extra="forbid")

    records: list[Any]
    on_error: Literal["fail", "record"] = Field(
        "fail",
        description="fail: any bad record fails the request (400); record: a bad record comes "
        "back in its place with an 'error' key, as omnirm score --on-error record writes it.",
    )


class ScoreResponse(BaseModel):
    records: list[dict[str, Any]]


def parse_records(values: list[Any]) -> list[Record | RecordError]:
    """Each value validated as a record (one response or more); a bad one becomes its error,
    its line unset (positions in a request are named by the caller)."""
    out: list[Record | RecordError] = []
    for value in values:
        try:
            out.append(parse_record(value, min_responses=1))
        except RecordError as error:
            out.append(error)
    return out


# --------------------------------------------------------------------------------------------
# OpenRLHF: --reward.remote_url http://HOST:PORT/openrlhf
# --------------------------------------------------------------------------------------------


class OpenRLHFRequest(BaseModel):
    """One rollout batch: ``query[i]`` is ``prompts[i]`` followed by the policy's response."""

    query: list[str]
    prompts: list[str]
    labels: list[Any] | None = None


class OpenRLHFResponse(BaseModel):
    rewards: list[float]
    scores: list[float]
    extra_logs: dict[str, list[float]]


def label_fields(label: Any) -> dict[str, Any]:
    """The record fields a label sets: null or "" none; a JSON object (or a string holding
    one) its keys — ``criteria``, ``id``, ``prompt`` (content parts with media, standing in for
    the prompt text), ``messages``, ``task`` and any pass-through key — except ``responses``;
    any other string is the criterion."""
    if label is None or label == "":
        return {}
    fields = label
    if isinstance(label, str):
        fields = None
        if label.lstrip().startswith("{"):
            try:
                fields = json.loads(label)
            except json.JSONDecodeError:
                fields = None
        if not isinstance(fields, dict):
            return {"criteria": label}
    if not isinstance(fields, dict):
        raise RecordError(
            f"expected a string, a JSON object or null, got {type(label).__name__}",
            field="label",
        )
    for key in _LABEL_FORBIDDEN:
        if key in fields:
            raise RecordError(
                f"a label may not set {key!r}: the response is the query after its prompt",
                field=f"label.{key}",
            )
    return fields


def openrlhf_records(request: OpenRLHFRequest) -> list[Record | RecordError]:
    """One record per query: id ``query-INDEX`` (or the label's), the prompt text (or the
    label's prompt), the response = the query with its prompt removed from the front."""
    count = len(request.query)
    if len(request.prompts) != count:
        raise ApiError(
            400,
            f"prompts has {len(request.prompts)} items for {count} queries",
            "invalid_request",
        )
    labels = request.labels if request.labels is not None else [None] * count
    if len(labels) != count:
        raise ApiError(
            400, f"labels has {len(labels)} items for {count} queries", "invalid_request"
        )
    out: list[Record | RecordError] = []
    for index, (query, prompt, label) in enumerate(
        zip(request.query, request.prompts, labels, strict=True)
    ):
        record_id = f"query-{index}"
        try:
            fields = label_fields(label)
            record_id = fields.get("id", record_id)
            if not query.startswith(prompt):
                raise RecordError(
                    "the query does not begin with its prompt: the response is read as the "
                    "query after the prompt",
                    field="query",
                )
            record = {"id": record_id, "prompt": prompt, "responses": [query[len(prompt) :]]}
            out.append(parse_record({**record, **fields}, min_responses=1))
        except RecordError as error:
            out.append(error.located(record_id=str(record_id)))
    return out


def first_reward(scored: dict[str, Any]) -> float:
    """The reward of a one-response record; a judge's missing score is a record error."""
    reward = (scored.get("rewards") or [None])[0]
    if not isinstance(reward, int | float) or not math.isfinite(reward):
        raise RecordError(
            f"no reward for the response (got {reward!r})",
            record_id=scored.get("id"),
            field="rewards",
        )
    return float(reward)


# --------------------------------------------------------------------------------------------
# vLLM /classify (verl's discriminative reward model path)
# --------------------------------------------------------------------------------------------


class ClassifyRequest(BaseModel):
    """vLLM's classification request: ``input`` (texts laid out as the model reads them, e.g.
    rendered with its chat template) or ``messages`` (one conversation ending with the
    assistant's response, scored as a record). ``use_activation`` (default true, as vLLM):
    ``probs`` holds the sigmoid of the reward; false: the reward itself."""

    model_config = ConfigDict(extra="allow")

    model: str | None = None
    input: str | list[str] | None = None
    messages: list[dict[str, Any]] | None = None
    use_activation: bool | None = None


class ClassifyItem(BaseModel):
    index: int
    label: str
    probs: list[float]
    num_classes: int


class ClassifyResponse(BaseModel):
    id: str
    object: str = "list"
    created: int
    model: str
    data: list[ClassifyItem]
    usage: dict[str, int]


def classify_record(messages: list[dict[str, Any]]) -> Record | RecordError:
    """A chat ``messages`` list as a one-response record: the last turn (the assistant's) is
    the response, the turns before it the history."""
    if not messages or messages[-1].get("role") != "assistant":
        return RecordError(
            "the last message must be the assistant's response to score", field="messages"
        )
    record = {
        "id": "classify-0",
        "messages": list(messages[:-1]),
        "responses": [messages[-1].get("content")],
    }
    try:
        return parse_record(record, min_responses=1)
    except RecordError as error:
        return error


def activation(reward: float, use_activation: bool | None) -> float:
    """``probs`` of one reward: the sigmoid unless ``use_activation`` is false (as vLLM)."""
    if use_activation is False:
        return reward
    return (
        1.0 / (1.0 + math.exp(-reward))
        if reward >= 0
        else math.exp(reward) / (1 + math.exp(reward))
    )
