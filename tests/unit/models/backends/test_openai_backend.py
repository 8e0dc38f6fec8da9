"""OpenAIBackend against a scripted HTTP server on 127.0.0.1: retries, errors, order, media.

The scripted server only stands in for error paths and request inspection; a real server with
a real model is exercised in ``tests/integration/test_openai_server.py``.
"""

from __future__ import annotations

import base64
import io
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np
import pytest
import soundfile
from PIL import Image

from omnirm.errors import UsageError
from omnirm.models.backends.base import Conversation, Sampling, open_backend
from omnirm.models.backends.openai import OpenAIBackend

KEY_ENV = "OMNIRM_TEST_OPENAI_KEY"


@dataclass
class Reply:
    status: int = 200
    body: Any = None  # dict → JSON; str/bytes sent as they are; None → a normal answer
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


def answer(text: str = "[[A]]", model: str = "served-model") -> dict[str, Any]:
    return {
        "id": "x",
        "object": "chat.completion",
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}}],
        "usage": {"prompt_tokens": 11, "completion_tokens": 3, "total_tokens": 14},
    }


Script = Callable[[int, dict[str, Any]], Reply]


class FakeServer:
    """Answers POST /v1/chat/completions with ``script(request_index, body)``; records requests."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.requests: list[tuple[dict[str, str], dict[str, Any]]] = []
        self.lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as real servers

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                body = json.loads(raw)
                with owner.lock:
                    index = len(owner.requests)
                    # header names are case-insensitive: keep them lower-cased
                    owner.requests.append(({k.lower(): v for k, v in self.headers.items()}, body))
                reply = owner.script(index, body)
                time.sleep(reply.delay)
                payload = reply.body if reply.body is not None else answer()
                if isinstance(payload, (dict, list)):
                    payload = json.dumps(payload)
                data = payload.encode() if isinstance(payload, str) else payload
                try:
                    self.send_response(reply.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:  # the client gave up waiting (timeout test)
                    pass

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.httpd.block_on_close = False
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    @property
    def count(self) -> int:
        return len(self.requests)

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def serve() -> Iterator[Callable[[Script], FakeServer]]:
    servers: list[FakeServer] = []

    def start(script: Script) -> FakeServer:
        servers.append(FakeServer(script))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


@pytest.fixture(autouse=True)
def _no_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(KEY_ENV, raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)


def backend(server: FakeServer, **options: Any) -> OpenAIBackend:
    settings: dict[str, Any] = {"api_key_env": KEY_ENV, "timeout": 5.0}
    settings.update(options)
    return OpenAIBackend("judge-model", base_url=server.url, **settings)


def ask(text: str = "Which is better?") -> Conversation:
    return [{"role": "user", "content": text}]


SAMPLING = Sampling(max_new_tokens=16, temperature=0.0, top_p=1.0, seed=0)


# -- success and request shape --------------------------------------------------------------------


def test_answer_tokens_and_request_fields(serve: Callable[[Script], FakeServer]) -> None:
    server = serve(lambda i, body: Reply())
    judge = backend(server)
    [got] = judge.generate([ask()], SAMPLING)
    assert got.text == "[[A]]" and got.error is None
    assert (got.prompt_tokens, got.completion_tokens) == (11, 3)
    assert got.seconds > 0
    headers, body = server.requests[0]
    assert body == {
        "model": "judge-model",
        "messages": [{"role": "user", "content": "Which is better?"}],
        "max_tokens": 16,
        "temperature": 0.0,
        "top_p": 1.0,
        "seed": 0,
    }
    assert "authorization" not in headers  # no key set: none sent
    assert judge.server_model == "served-model"
    assert judge.fingerprint() == {
        "backend": "openai",
        "base_url": server.url,
        "model": "judge-model",
    }
    judge.close()


def test_seed_none_omitted_and_missing_usage(serve: Callable[[Script], FakeServer]) -> None:
    reply = {"choices": [{"message": {"role": "assistant", "content": "ok"}}]}
    server = serve(lambda i, body: Reply(body=reply))
    [got] = backend(server).generate([ask()], Sampling(seed=None))
    assert got.text == "ok" and got.prompt_tokens is None and got.completion_tokens is None
    assert "seed" not in server.requests[0][1]


def test_authorization_header_iff_key_set(
    serve: Callable[[Script], FakeServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    server = serve(lambda i, body: Reply())
    monkeypatch.setenv(KEY_ENV, "sk-test-123")
    backend(server).generate([ask()], SAMPLING)
    assert server.requests[0][0]["authorization"] == "Bearer sk-test-123"
    monkeypatch.delenv(KEY_ENV)
    backend(server).generate([ask()], SAMPLING)
    assert "authorization" not in server.requests[1][0]


def test_other_key_variables_not_read(
    serve: Callable[[Script], FakeServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    # the user named KEY_ENV: a key in $OPENAI_API_KEY must not leak to this server
    monkeypatch.setenv("OPENAI_API_KEY", "sk-not-for-this-server")
    server = serve(lambda i, body: Reply())
    backend(server).generate([ask()], SAMPLING)
    assert "authorization" not in server.requests[0][0]


def test_text_parts_sent_as_one_string(serve: Callable[[Script], FakeServer]) -> None:
    server = serve(lambda i, body: Reply())
    conversation: Conversation = [
        {"role": "system", "content": "Be fair."},
        {
            "role": "user",
            "content": [{"type": "text", "text": "A: "}, {"type": "text", "text": "x"}],
        },
    ]
    backend(server).generate([conversation], SAMPLING)
    messages = server.requests[0][1]["messages"]
    assert messages == [
        {"role": "system", "content": "Be fair."},
        {"role": "user", "content": "A: x"},
    ]


# -- retries --------------------------------------------------------------------------------------


def test_429_retried_after_retry_after(serve: Callable[[Script], FakeServer]) -> None:
    def script(i: int, body: dict[str, Any]) -> Reply:
        if i == 0:
            return Reply(429, {"error": {"message": "slow down"}}, {"Retry-After": "1.5"})
        return Reply()

    server = serve(script)
    began = time.perf_counter()
    # the client's own first backoff is under a second: waiting 1.5 s proves Retry-After was used
    [got] = backend(server).generate([ask()], SAMPLING)
    elapsed = time.perf_counter() - began
    assert got.text == "[[A]]" and server.count == 2
    assert 1.5 <= elapsed < 10
    assert got.seconds >= 1.5  # the time includes the wait


def test_500_gives_up_after_max_retries(serve: Callable[[Script], FakeServer]) -> None:
    server = serve(lambda i, body: Reply(500, "internal oops"))
    [got] = backend(server, max_retries=2).generate([ask()], SAMPLING)
    assert got.text is None and server.count == 3
    assert got.error is not None
    assert "HTTP 500" in got.error and "internal oops" in got.error
    assert "gave up after 3 attempts" in got.error


def test_503_then_success(serve: Callable[[Script], FakeServer]) -> None:
    server = serve(lambda i, body: Reply(503) if i < 2 else Reply())
    [got] = backend(server, max_retries=3).generate([ask()], SAMPLING)
    assert got.text == "[[A]]" and server.count == 3


def test_timeout_retried_then_error(serve: Callable[[Script], FakeServer]) -> None:
    server = serve(lambda i, body: Reply(delay=1.5))
    began = time.perf_counter()
    [got] = backend(server, timeout=0.25, max_retries=1).generate([ask()], SAMPLING)
    assert got.text is None and got.error is not None
    assert "no reply" in got.error and "0.25 s" in got.error
    assert "gave up after 2 attempts" in got.error
    assert server.count == 2
    assert time.perf_counter() - began < 1.4  # did not wait for the server's answer


def test_connection_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    judge = OpenAIBackend("m", base_url=f"http://127.0.0.1:{port}/v1", max_retries=1, timeout=2.0)
    [got] = judge.generate([ask()], SAMPLING)
    assert got.text is None and got.error is not None
    assert "cannot reach" in got.error and "gave up after 2 attempts" in got.error


def test_malformed_reply_retried_twice_then_error(serve: Callable[[Script], FakeServer]) -> None:
    server = serve(lambda i, body: Reply(200, "<html>proxy says hi</html>"))
    [got] = backend(server, max_retries=5).generate([ask()], SAMPLING)
    assert got.text is None and got.error is not None
    assert got.error.startswith("malformed reply: not JSON")
    assert server.count == 3


def test_malformed_then_good(serve: Callable[[Script], FakeServer]) -> None:
    server = serve(lambda i, body: Reply(200, {"choices": []}) if i == 0 else Reply())
    [got] = backend(server).generate([ask()], SAMPLING)
    assert got.text == "[[A]]" and server.count == 2


# -- structured outputs ---------------------------------------------------------------------------


def test_json_schema_sent_as_response_format(serve: Callable[[Script], FakeServer]) -> None:
    from omnirm.data.criteria import CRITERION_SCHEMA

    server = serve(lambda i, body: Reply(body=answer('{"criterion": "Be brief.", "reason": ""}')))
    judge = backend(server)
    assert judge.constrains_json
    [got] = judge.generate([ask()], Sampling(max_new_tokens=16, json_schema=CRITERION_SCHEMA))
    assert got.text == '{"criterion": "Be brief.", "reason": ""}'
    _, body = server.requests[0]
    assert body["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "answer", "schema": json.loads(CRITERION_SCHEMA), "strict": True},
    }
    schema = body["response_format"]["json_schema"]["schema"]
    assert schema["required"] == ["criterion", "reason"] and not schema["additionalProperties"]
    judge.generate([ask()], SAMPLING)  # no schema: no response_format
    assert "response_format" not in server.requests[1][1]


def test_server_refusing_response_format_is_asked_without(
    serve: Callable[[Script], FakeServer],
) -> None:
    refusal = {"error": {"message": "response_format json_schema is not supported"}}

    def script(i: int, body: dict[str, Any]) -> Reply:
        return Reply(400, refusal) if "response_format" in body else Reply()

    server = serve(script)
    judge = backend(server)
    sampling = Sampling(max_new_tokens=16, json_schema='{"type": "object"}')
    [first] = judge.generate([ask()], sampling)
    [second] = judge.generate([ask()], sampling)
    assert first.text == second.text == "[[A]]"
    # refused once, then never sent again
    assert ["response_format" in body for _, body in server.requests] == [True, False, False]


# -- errors that are not retried ------------------------------------------------------------------


def test_400_not_retried_message_kept(serve: Callable[[Script], FakeServer]) -> None:
    error = {"error": {"message": "Invalid image data", "type": "invalid_request_error"}}
    server = serve(lambda i, body: Reply(400, error))
    [got] = backend(server).generate([ask()], SAMPLING)
    assert got.text is None and server.count == 1
    assert got.error is not None
    assert "HTTP 400" in got.error and "Invalid image data" in got.error


def test_404_hints_at_base_url(serve: Callable[[Script], FakeServer]) -> None:
    server = serve(lambda i, body: Reply(404, {"detail": "Not Found"}))
    [got] = backend(server).generate([ask()], SAMPLING)
    assert got.error is not None and "Not Found" in got.error and "/v1" in got.error
    assert server.count == 1


@pytest.mark.parametrize("status", [401, 403])
def test_auth_refused_raises_usage_error(
    serve: Callable[[Script], FakeServer], status: int
) -> None:
    server = serve(lambda i, body: Reply(status, {"error": {"message": "Incorrect API key"}}))
    judge = backend(server, concurrency=3)
    with pytest.raises(UsageError, match=KEY_ENV) as raised:
        judge.generate([ask(str(i)) for i in range(6)], SAMPLING)
    assert "not set" in str(raised.value) and "Incorrect API key" in str(raised.value)
    assert server.count < 6 + 1  # stopped rather than retried


def test_refused_key_message(
    serve: Callable[[Script], FakeServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KEY_ENV, "sk-bad")
    server = serve(lambda i, body: Reply(401, {"error": {"message": "bad key"}}))
    with pytest.raises(UsageError, match=f"key in the environment variable {KEY_ENV} was refused"):
        backend(server).generate([ask()], SAMPLING)


def test_switches_to_max_completion_tokens(serve: Callable[[Script], FakeServer]) -> None:
    message = "Unsupported parameter: 'max_tokens'. Use 'max_completion_tokens' instead."

    def script(i: int, body: dict[str, Any]) -> Reply:
        return Reply(400, {"error": {"message": message}}) if "max_tokens" in body else Reply()

    server = serve(script)
    judge = backend(server)
    assert [g.text for g in judge.generate([ask(), ask()], SAMPLING)] == ["[[A]]", "[[A]]"]
    assert server.requests[-1][1]["max_completion_tokens"] == 16
    judge.generate([ask()], SAMPLING)  # later requests use the new field at once
    assert "max_tokens" not in server.requests[-1][1]


# -- concurrency ----------------------------------------------------------------------------------


def test_order_kept_under_concurrency(serve: Callable[[Script], FakeServer]) -> None:
    import threading

    # all four requests must be in the server at once to pass the barrier (one at a time, the
    # first would wait alone until the barrier's timeout breaks it)
    together = threading.Barrier(4, timeout=30)

    def script(i: int, body: dict[str, Any]) -> Reply:
        n = int(body["messages"][0]["content"])
        together.wait()
        return Reply(body=answer(f"answer {n}"), delay=0.2 * (3 - n))  # the last answers first

    server = serve(script)
    got = backend(server, concurrency=4).generate([ask(str(n)) for n in range(4)], SAMPLING)
    assert [g.text for g in got] == [f"answer {n}" for n in range(4)]
    assert not together.broken
    assert got[0].seconds > got[3].seconds


def test_empty_input() -> None:
    assert OpenAIBackend("m", base_url="http://127.0.0.1:9/v1").generate([], SAMPLING) == []


# -- media ----------------------------------------------------------------------------------------


def decode_image(part: dict[str, Any], mime: str = "image/png") -> Image.Image:
    assert part["type"] == "image_url"
    url = part["image_url"]["url"]
    prefix = f"data:{mime};base64,"
    assert url.startswith(prefix)
    return Image.open(io.BytesIO(base64.b64decode(url[len(prefix) :])))


def test_media_conversion(serve: Callable[[Script], FakeServer]) -> None:
    server = serve(lambda i, body: Reply())
    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 255, (30, 40, 3), dtype=np.uint8))
    frames = rng.integers(0, 255, (3, 16, 24, 3), dtype=np.uint8)
    audio = (0.5 * np.sin(np.linspace(0, 200, 8000))).astype(np.float32)
    conversation: Conversation = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Look:"},
                {"type": "image", "image": image},
                {"type": "video", "frames": frames, "fps": 2.0},
                {"type": "audio", "audio": audio, "sampling_rate": 16000},
            ],
        }
    ]
    backend(server).generate([conversation], SAMPLING)
    parts = server.requests[0][1]["messages"][0]["content"]
    assert [p["type"] for p in parts] == [
        "text",
        "image_url",
        "text",
        *["image_url"] * 3,
        "input_audio",
    ]
    assert parts[0] == {"type": "text", "text": "Look:"}
    decoded = decode_image(parts[1])
    assert decoded.size == (40, 30)
    assert np.array_equal(np.asarray(decoded), np.asarray(image))  # PNG is lossless
    assert parts[2]["text"] == "Video (3 frames, sampled at 2 fps):"
    for k, part in enumerate(parts[3:6]):
        assert np.array_equal(np.asarray(decode_image(part)), frames[k])
    sound = parts[6]["input_audio"]
    assert sound["format"] == "wav"
    wav = base64.b64decode(sound["data"])
    info = soundfile.info(io.BytesIO(wav))
    assert (info.frames, info.samplerate, info.channels, info.subtype) == (8000, 16000, 1, "PCM_16")
    samples, _ = soundfile.read(io.BytesIO(wav), dtype="float32")
    assert np.abs(samples - audio).max() < 1e-3


def test_jpeg_images(serve: Callable[[Script], FakeServer]) -> None:
    server = serve(lambda i, body: Reply())
    image = Image.new("RGB", (20, 10), (200, 10, 10))
    conversation: Conversation = [
        {
            "role": "user",
            "content": [{"type": "image", "image": image}, {"type": "text", "text": "?"}],
        }
    ]
    backend(server, image_format="jpg").generate([conversation], SAMPLING)
    part = server.requests[0][1]["messages"][0]["content"][0]
    assert decode_image(part, "image/jpeg").size == (20, 10)


# -- construction ---------------------------------------------------------------------------------


def test_open_backend_picks_known_options(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", "http://localhost:8000/v1/")
    judge = open_backend("openai:gpt-4o", concurrency=2, device="cuda", timeout=None)
    assert isinstance(judge, OpenAIBackend)
    assert judge.model == "gpt-4o" and judge.kind == "openai"
    assert judge.concurrency == 2 and judge.timeout == 120.0
    assert judge.base_url == "http://localhost:8000/v1"
    assert judge.modalities == frozenset({"image", "video", "audio"})


def test_default_base_url() -> None:
    assert OpenAIBackend("gpt-4o").base_url == "https://api.openai.com/v1"


@pytest.mark.parametrize(
    "options",
    [
        {"base_url": "localhost:8000/v1"},
        {"concurrency": 0},
        {"timeout": 0},
        {"max_retries": -1},
        {"image_format": "gif"},
    ],
)
def test_bad_settings(options: dict[str, Any]) -> None:
    with pytest.raises(UsageError):
        OpenAIBackend("m", **options)
