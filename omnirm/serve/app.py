"""The reward server: :func:`create_app` (a FastAPI application around one scorer) and
:func:`serve` (open the scorer, run uvicorn until SIGTERM or Ctrl-C, drain, close).

Endpoints (see :mod:`omnirm.serve.protocols` for the shapes): ``POST /score``,
``POST /openrlhf``, ``POST /classify``, ``GET /health``, ``GET /metrics``. With an API key
every endpoint but ``/health`` wants ``Authorization: Bearer KEY``.
"""

from __future__ import annotations

import hmac
import os
import signal
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Annotated, Any

import orjson
from fastapi import Depends, FastAPI, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ValidationError

from omnirm import console
from omnirm.errors import RecordError, UsageError
from omnirm.options import JudgeOptions, MediaOptions, ModelOptions, ServeOptions
from omnirm.records import InvalidRecord, Record
from omnirm.scorer import Scorer
from omnirm.serve.batcher import (
    TEXTS_NEED_A_MODEL,
    Arrival,
    Batcher,
    Outcome,
    Payload,
    QueueFull,
    ShuttingDown,
    score_payloads,
)
from omnirm.serve.metrics import ServeMetrics
from omnirm.serve.protocols import (
    ApiError,
    ClassifyItem,
    ClassifyRequest,
    ClassifyResponse,
    OpenRLHFRequest,
    OpenRLHFResponse,
    ScoreRequest,
    ScoreResponse,
    activation,
    classify_record,
    first_reward,
    openrlhf_records,
    parse_records,
    record_errors,
)

#: Connections served at once; more are answered 503 by uvicorn (with the request size limit,
#: this bounds the memory that request bodies can take).
MAX_CONNECTIONS = 256


async def read_json(request: Request, limit: int) -> Any:
    """The request's JSON body, read at most ``limit`` bytes far (413 beyond), 400 if not JSON."""
    declared = request.headers.get("content-length", "")
    too_large = ApiError(
        413,
        f"the request body is over {limit} bytes (--max-request-bytes)",
        "request_too_large",
    )
    if declared.isdigit() and int(declared) > limit:
        raise too_large
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise too_large
    try:
        return orjson.loads(bytes(body))
    except orjson.JSONDecodeError as error:
        raise ApiError(400, f"the body is not JSON: {error}", "invalid_json") from None


def validated(model: type[BaseModel], value: Any) -> Any:
    try:
        return model.model_validate(value)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "body"
        raise ApiError(400, f"{where}: {first['msg']}", "invalid_request") from None


def json_response(body: dict[str, Any]) -> Response:
    """JSON out through orjson, without a second validation pass (the shapes are built here)."""
    return Response(orjson.dumps(body), media_type="application/json")


class _Observe:
    """ASGI middleware: counts every HTTP request by endpoint and status, and times it."""

    def __init__(self, app: Any, metrics: ServeMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.monotonic()
        status = [500]

        async def sending(message: Any) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            self.metrics.observe_request(scope["path"], status[0], time.monotonic() - started)


async def _arriving(request: Request) -> AsyncIterator[Arrival]:
    """A scoring request, counted as on its way to the batcher until it is queued."""
    arrival = request.app.state.batcher.arrival()
    try:
        yield arrival
    finally:
        arrival.done()


Arriving = Annotated[Arrival, Depends(_arriving)]


def create_app(
    scorer: Scorer,
    options: ServeOptions,
    *,
    api_key: str | None = None,
) -> FastAPI:
    """The application around ``scorer`` (opened and closed by the caller). Its batcher starts
    with the application's lifespan and is drained when it ends."""
    from omnirm.scorer import fingerprint_digest

    metrics = ServeMetrics.create(options.max_batch_size)
    state: dict[str, Batcher] = {}
    fingerprint = fingerprint_digest(scorer.fingerprint())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        batcher = Batcher(
            partial(score_payloads, scorer, fingerprint=fingerprint),
            max_batch_size=options.max_batch_size,
            max_wait_ms=options.max_wait_ms,
            max_queue=options.max_queue,
            metrics=metrics,
        )
        batcher.start()
        state["batcher"] = app.state.batcher = batcher
        try:
            yield
        finally:
            await batcher.close()

    app = FastAPI(
        title="omnirm reward server",
        summary=f"Rewards from {scorer.label}",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, error: ApiError) -> JSONResponse:
        return JSONResponse(error.body(), status_code=error.status, headers=error.headers)

    app.add_middleware(_Observe, metrics=metrics)

    async def authorized(request: Request) -> None:
        if api_key is None:
            return
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            token.strip().encode(), api_key.encode()
        ):
            raise ApiError(
                401,
                "missing or wrong API key: send Authorization: Bearer KEY",
                "unauthorized",
                headers={"WWW-Authenticate": "Bearer"},
            )

    async def run(payloads: Sequence[Payload], arrival: Arrival) -> list[Outcome]:
        if len(payloads) > options.max_queue:
            raise ApiError(
                413,
                f"the request holds {len(payloads)} records; the server queues at most "
                f"{options.max_queue} (--max-queue): send smaller requests",
                "request_too_large",
            )
        if not payloads:
            arrival.done()
            return []
        try:
            return await state["batcher"].submit(payloads, arrival)
        except QueueFull:
            raise ApiError(
                429,
                f"the queue is full ({options.max_queue} records at most, --max-queue): "
                "retry later",
                "queue_full",
                headers={"Retry-After": "1"},
            ) from None
        except ShuttingDown:
            raise ApiError(
                503, "the server is shutting down", "shutting_down", headers={"Retry-After": "1"}
            ) from None
        except RecordError as error:
            raise ApiError(400, str(error), "invalid_request") from None
        except Exception as error:  # the scorer failed: the client gets a 500, the server lives
            console.error(f"the scorer failed: {error!r}")
            raise ApiError(500, f"the scorer failed: {error}", "scorer_error") from None

    async def body(request: Request) -> Any:
        return await read_json(request, options.max_request_bytes)

    @app.get("/health")
    async def health() -> JSONResponse:
        batcher = state.get("batcher")
        ready = batcher is not None and not batcher.closing
        return JSONResponse(
            {
                "status": "ok" if ready else "draining",
                "scorer": scorer.label,
                "kind": scorer.kind,
                "pairwise": scorer.pairwise,
                "queue": batcher.depth if batcher is not None else 0,
            },
            status_code=200 if ready else 503,
        )

    @app.get("/metrics", dependencies=[Depends(authorized)])
    async def prometheus() -> Response:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.post("/score", dependencies=[Depends(authorized)], response_model=ScoreResponse)
    async def score(request: Request, arrival: Arriving) -> Response:
        raw = await body(request)
        parsed = validated(ScoreRequest, {"records": raw} if isinstance(raw, list) else raw)
        items = parse_records(parsed.records)
        keep = parsed.on_error == "record"
        bad = [
            (f"records[{i}]", item) for i, item in enumerate(items) if not isinstance(item, Record)
        ]
        if bad and not keep:
            raise record_errors(bad)
        records = [item for item in items if isinstance(item, Record)]
        outcomes = iter(await run(records, arrival))
        out: list[dict[str, Any]] = []
        failed: list[tuple[str, RecordError]] = []
        for index, (value, item) in enumerate(zip(parsed.records, items, strict=True)):
            result: Outcome = item if isinstance(item, RecordError) else next(outcomes)
            if isinstance(result, RecordError):
                failed.append((f"records[{index}]", result))
                out.append(InvalidRecord(0, result, value).to_error_record())
            else:
                assert isinstance(result, dict)
                out.append(result)
        if failed and not keep:
            raise record_errors(failed)
        return json_response({"records": out})

    @app.post("/openrlhf", dependencies=[Depends(authorized)], response_model=OpenRLHFResponse)
    async def openrlhf(request: Request, arrival: Arriving) -> Response:
        parsed = validated(OpenRLHFRequest, await body(request))
        items = openrlhf_records(parsed)
        bad = [
            (f"query[{i}]", item) for i, item in enumerate(items) if not isinstance(item, Record)
        ]
        if bad:
            raise record_errors(bad)
        outcomes = await run([item for item in items if isinstance(item, Record)], arrival)
        rewards: list[float] = []
        failed: list[tuple[str, RecordError]] = []
        for index, outcome in enumerate(outcomes):
            try:
                if isinstance(outcome, RecordError):
                    raise outcome
                assert isinstance(outcome, dict)
                rewards.append(first_reward(outcome))
            except RecordError as error:
                failed.append((f"query[{index}]", error))
        if failed:
            raise record_errors(failed)
        return json_response(
            {"rewards": rewards, "scores": rewards, "extra_logs": {"omnirm_reward": rewards}}
        )

    @app.post("/classify", dependencies=[Depends(authorized)], response_model=ClassifyResponse)
    async def classify(request: Request, arrival: Arriving) -> Response:
        parsed = validated(ClassifyRequest, await body(request))
        payloads: list[Payload]
        if parsed.messages is not None:
            record = classify_record(parsed.messages)
            if isinstance(record, RecordError):
                raise record_errors([("messages", record)])
            payloads = [record]
        elif parsed.input is not None:
            if scorer.kind != "model":
                raise ApiError(400, TEXTS_NEED_A_MODEL + ": send 'messages'", "invalid_request")
            payloads = [parsed.input] if isinstance(parsed.input, str) else list(parsed.input)
        else:
            raise ApiError(400, "give 'input' (texts) or 'messages'", "invalid_request")
        rewards: list[float] = []
        failed: list[tuple[str, RecordError]] = []
        for index, outcome in enumerate(await run(payloads, arrival)):
            try:
                if isinstance(outcome, RecordError):
                    raise outcome
                reward = first_reward(outcome) if isinstance(outcome, dict) else float(outcome)
                rewards.append(reward)
            except RecordError as error:
                failed.append((f"input[{index}]", error))
        if failed:
            raise record_errors(failed)
        data = [
            ClassifyItem(
                index=index,
                label="reward",
                probs=[activation(reward, parsed.use_activation)],
                num_classes=1,
            ).model_dump()
            for index, reward in enumerate(rewards)
        ]
        return json_response(
            {
                "id": f"classify-{uuid.uuid4().hex}",
                "object": "list",
                "created": int(time.time()),
                "model": parsed.model or scorer.label,
                "data": data,
                "usage": {"prompt_tokens": 0, "total_tokens": 0},
            }
        )

    return app


def _server_class() -> type:
    import uvicorn

    class Server(uvicorn.Server):
        """uvicorn's server, saying where it listens once it accepts connections."""

        def __init__(self, config: Any, announced: str) -> None:
            super().__init__(config)
            self.announced = announced

        async def startup(self, sockets: Any = None) -> None:
            await super().startup(sockets)
            if self.started:
                console.stderr_console().print(self.announced, highlight=False, soft_wrap=True)

    return Server


def _ignore_signal(signum: int, frame: Any) -> None:
    """SIGTERM after uvicorn drained: the server is done, exit 0."""


def serve(
    model: str | Path | None = None,
    judge: str | JudgeOptions | None = None,
    *,
    options: ModelOptions | None = None,
    media: MediaOptions | None = None,
    server: ServeOptions | None = None,
) -> int:
    """``omnirm serve``: open the reward model ``model`` (or the judge ``judge``) as ``score``
    does and answer HTTP on ``server.host:server.port`` until SIGTERM (drained, exit 0) or
    Ctrl-C (130); the URL goes to stderr once requests are taken.

    >>> serve("rm/", server=ServeOptions(port=8000))  # doctest: +SKIP
    """
    import logging
    import threading

    import uvicorn

    from omnirm.scorer import load_scorer

    server = (server or ServeOptions()).check()
    api_key = None
    if server.auth_key_env is not None:
        api_key = os.environ.get(server.auth_key_env, "")
        if not api_key:
            raise UsageError(
                f"--auth-key-env {server.auth_key_env}: that environment variable is not set "
                "or empty"
            )
    if options is not None and options.batch_size < 1:
        raise UsageError("--batch-size must be at least 1")
    scorer = load_scorer(model, judge, media=media, options=options)
    try:
        config = uvicorn.Config(
            create_app(scorer, server, api_key=api_key),
            host=server.host,
            port=server.port,
            log_config=None,
            log_level="info" if console.verbosity() >= 1 else "warning",
            access_log=console.verbosity() >= 1,
            timeout_graceful_shutdown=max(1, round(server.drain_seconds)),
            limit_concurrency=MAX_CONNECTIONS,
            lifespan="on",
        )
        sock = config.bind_socket()
        host, port = sock.getsockname()[:2]
        url = f"http://{host if ':' not in host else f'[{host}]'}:{port}"
        announced = (
            f"omnirm serve: {scorer.label} on {url} (POST /score /openrlhf /classify, "
            "GET /health /metrics)"
        )
        if console.verbosity() >= 1:
            logging.basicConfig(level=logging.INFO, format="%(message)s")
        main_thread = threading.current_thread() is threading.main_thread()
        previous = signal.signal(signal.SIGTERM, _ignore_signal) if main_thread else None
        try:
            _server_class()(config, announced).run(sockets=[sock])
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)
            sock.close()
    finally:
        scorer.close()
    for line in scorer.summary():
        console.info(line)
    return 0
