"""``openai:MODEL``: a judge behind any OpenAI-compatible ``/chat/completions`` server.

This covers OpenAI itself and local servers such as vLLM, ``transformers serve``, llama.cpp and
Ollama. The base URL comes from ``base_url``, else ``$OPENAI_BASE_URL``, else
``https://api.openai.com/v1``. The API key is read from the environment variable named by
``api_key_env``, and when it is unset no ``Authorization`` header is sent (local servers need
none).

Media in the neutral conversation format (see :mod:`omnirm.models.backends.base`) are sent inline:

- an image becomes an ``image_url`` part holding a ``data:image/png;base64,…`` URL;
- a video becomes the text "Video (N frames, sampled at X fps):" followed by one image part per
  frame;
- audio becomes an ``input_audio`` part holding base64 16-bit PCM WAV.

The server decides what it accepts; a refusal (HTTP 400) ends up in the answer's ``error``.

HTTP is the official ``openai`` client's: keep-alive connection pooling, and retries with
exponential backoff and jitter on 408, 409, 429, 5xx, connection errors and timeouts, honouring
``Retry-After``. What omnirm adds: ``concurrency`` requests in flight at once (threads sharing one
client), the reply read leniently (text in parts, the served model id, token counts), a malformed
200 reply asked again twice at most, any other 4xx failing only its own answer, except 401/403,
which raise :class:`~omnirm.errors.UsageError` because every request would fail the same way.
"""

from __future__ import annotations

import json
import os
import threading
import time
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from omnirm import __version__, console
from omnirm.errors import UsageError
from omnirm.models.backends.base import Conversation, Generation, JudgeBackend, Sampling
from omnirm.models.backends.messages import to_chat_messages

if TYPE_CHECKING:
    import openai

DEFAULT_BASE_URL = "https://api.openai.com/v1"
_MALFORMED_RETRIES = 2  # a 200 with an unreadable body is asked again at most this often
_EXCERPT = 300  # characters of a server's error body quoted in messages


@dataclass
class _Outcome:
    """One request (the client's own retries included): an answer, or what went wrong."""

    generation: Generation | None = None
    error: str = ""
    malformed: bool = False


class OpenAIBackend(JudgeBackend):
    """Chat completions from an OpenAI-compatible server (see the module docs)."""

    kind = "openai"
    answers_concurrently = True

    def __init__(
        self,
        model: str,
        *,
        base_url: str | None = None,
        api_key_env: str = "OPENAI_API_KEY",
        concurrency: int = 4,
        timeout: float = 120.0,
        max_retries: int = 5,
        image_format: str = "png",
    ) -> None:
        """``timeout`` bounds connecting and each wait for data (seconds); ``max_retries``
        counts the requests after the first (the client backs off between them, or waits as
        ``Retry-After`` says); ``image_format`` is ``png`` or ``jpeg``."""
        if not model:
            raise UsageError("--judge openai:MODEL: the model name is empty")
        url = (base_url or os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL).rstrip("/")
        if not url.startswith(("http://", "https://")):
            raise UsageError(
                f"base URL {url!r}: expected http://… or https://… (e.g. http://localhost:8000/v1)"
            )
        if concurrency < 1:
            raise UsageError(f"concurrency must be at least 1, got {concurrency}")
        if timeout <= 0:
            raise UsageError(f"timeout must be positive, got {timeout}")
        if max_retries < 0:
            raise UsageError(f"max_retries must be 0 or more, got {max_retries}")
        fmt = {"jpg": "jpeg"}.get(image_format.lower(), image_format.lower())
        if fmt not in ("png", "jpeg"):
            raise UsageError(f"image_format must be png or jpeg, got {image_format!r}")
        self._model = model
        self.base_url = url
        self.api_key_env = api_key_env
        self.concurrency = concurrency
        self.timeout = float(timeout)
        self.max_retries = max_retries
        self.image_format = fmt
        #: the model id in the server's first reply (e.g. a dated snapshot of ``model``); it is
        #: not part of :meth:`fingerprint`, which the judge takes before the first request
        self.server_model: str | None = None
        self._api_key = os.environ.get(api_key_env) or None
        self._max_tokens_field = "max_tokens"
        #: set once the server refuses ``response_format``: the answers' own checks remain
        self._schema_refused = False
        self._client: openai.OpenAI | None = None
        self._lock = threading.Lock()
        self._abort = threading.Event()

    @property
    def model(self) -> str:
        return self._model

    @property
    def modalities(self) -> frozenset[str]:
        return frozenset({"image", "video", "audio"})

    @property
    def constrains_json(self) -> bool:
        return True

    def fingerprint(self) -> dict[str, Any]:
        return {"backend": "openai", "base_url": self.base_url, "model": self._model}

    def generate(self, conversations: list[Conversation], sampling: Sampling) -> list[Generation]:
        if not conversations:
            return []
        self._abort.clear()
        workers = min(self.concurrency, len(conversations))
        if workers == 1:
            return [self._answer(c, sampling) for c in conversations]
        pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="omnirm-openai")
        futures = [pool.submit(self._answer, c, sampling) for c in conversations]
        try:
            done, _ = wait(futures, return_when=FIRST_EXCEPTION)
            for future in futures:
                error = future.exception() if future in done else None
                if error is not None:
                    raise error
            return [future.result() for future in futures]
        except BaseException:
            self._abort.set()  # requests not yet sent are not sent
            raise
        finally:
            pool.shutdown(wait=not self._abort.is_set(), cancel_futures=True)

    def close(self) -> None:
        """Close the client's connections (a new client opens if the backend is used again)."""
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()

    # -- one conversation -----------------------------------------------------------------------

    def _answer(self, conversation: Conversation, sampling: Sampling) -> Generation:
        """Ask until answered or given up; never raises but UsageError."""
        began = time.perf_counter()
        messages = to_openai_messages(conversation, self.image_format)
        malformed = 0
        while True:
            if self._abort.is_set():
                return Generation(None, seconds=time.perf_counter() - began, error="cancelled")
            outcome = self._attempt(messages, sampling)
            if outcome.generation is not None:
                outcome.generation.seconds = time.perf_counter() - began
                return outcome.generation
            if not outcome.malformed or malformed >= _MALFORMED_RETRIES:
                return Generation(None, seconds=time.perf_counter() - began, error=outcome.error)
            malformed += 1
            console.debug(_escape(f"openai: {outcome.error}; asking again"))

    def _request(self, messages: list[dict[str, Any]], sampling: Sampling) -> dict[str, Any]:
        request = {
            "model": self._model,
            "messages": messages,
            self._max_tokens_field: sampling.max_new_tokens,
            "temperature": sampling.temperature,
            "top_p": sampling.top_p,
            "seed": sampling.seed,
        }
        if sampling.json_schema is not None and not self._schema_refused:
            request["response_format"] = {
                "type": "json_schema",
                "json_schema": {
                    "name": "answer",
                    "schema": json.loads(sampling.json_schema),
                    "strict": True,
                },
            }
        return {key: value for key, value in request.items() if value is not None}

    def _attempt(self, messages: list[dict[str, Any]], sampling: Sampling) -> _Outcome:
        """One request through the client (which retries what is worth retrying)."""
        import openai

        url = f"{self.base_url}/chat/completions"
        request = self._request(messages, sampling)
        gave_up = f" (gave up after {self.max_retries + 1} attempts)"
        try:
            # no key: send no Authorization header at all (local servers need none)
            no_auth = {"Authorization": openai.Omit()} if self._api_key is None else None
            completions = self._openai().chat.completions
            raw = completions.with_raw_response.create(**request, extra_headers=no_auth)
        except openai.APITimeoutError:
            return _Outcome(error=f"no reply from {url} within {self.timeout:g} s{gave_up}")
        except openai.APIConnectionError as error:
            return _Outcome(error=f"cannot reach {url}: {_cause(error)}{gave_up}")
        except openai.APIStatusError as error:
            status = error.status_code
            message = _server_message(error.response)
            if status in (401, 403):
                raise UsageError(self._refused(url, status, message)) from None
            if status == 400 and "max_completion_tokens" in message and "max_tokens" in request:
                # newer OpenAI models take only max_completion_tokens: switch, for later requests
                self._max_tokens_field = "max_completion_tokens"
                return self._attempt(messages, sampling)
            if status == 400 and "response_format" in request and _about_schema(message):
                # a server without structured outputs: ask without, for later requests too
                console.debug(_escape(f"openai: {url} refused response_format ({message})"))
                self._schema_refused = True
                return self._attempt(messages, sampling)
            retried = status in (408, 409, 429) or status >= 500
            hint = " (is the base URL right? It usually ends in /v1)" if status == 404 else ""
            return _Outcome(
                error=f"HTTP {status} from {url}: {message}{hint}{gave_up if retried else ''}"
            )
        return self._parse(raw.http_response)

    def _parse(self, response: Any) -> _Outcome:
        """The answer in a 2xx reply, or a "malformed reply" outcome worth asking again."""
        try:
            data = json.loads(response.content)
        except ValueError:
            return _malformed(f"not JSON: {_excerpt(response.text)!r}")
        if not isinstance(data, dict):
            return _malformed(f"expected a JSON object, got {type(data).__name__}")
        choices = data.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            detail = _excerpt(str(data.get("error"))) if data.get("error") else "no choices"
            return _malformed(detail)
        message = choices[0].get("message")
        if not isinstance(message, dict):
            return _malformed("choices[0] has no message")
        content = message.get("content")
        if isinstance(content, list):  # some servers answer in parts
            content = "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
        if not isinstance(content, str):
            refusal = message.get("refusal")
            if refusal:
                return _Outcome(error=f"the model refused: {_excerpt(str(refusal))}")
            return _malformed("choices[0].message.content is missing")
        reported = data.get("model")
        if self.server_model is None and isinstance(reported, str):
            self.server_model = reported
            if reported != self._model:
                console.debug(_escape(f"openai: {self._model} is served as {reported}"))
        usage = data.get("usage")
        if not isinstance(usage, dict):
            usage = {}
        return _Outcome(
            generation=Generation(
                text=content,
                prompt_tokens=_count(usage.get("prompt_tokens")),
                completion_tokens=_count(usage.get("completion_tokens")),
            )
        )

    def _refused(self, url: str, status: int, message: str) -> str:
        if self._api_key is None:
            advice = (
                f"the environment variable {self.api_key_env} is not set; set it to your API key"
            )
        else:
            advice = f"the API key in the environment variable {self.api_key_env} was refused"
        return f"{url} answered HTTP {status} ({message}): {advice}"

    def _openai(self) -> openai.OpenAI:
        """The one client all threads share (it pools connections), opened on first use."""
        with self._lock:
            if self._client is None:
                import openai

                # without a key the placeholder keeps the client from reading $OPENAI_API_KEY
                # (the user named another variable); each request omits the header then
                self._client = openai.OpenAI(
                    api_key=self._api_key or "unused",
                    base_url=self.base_url,
                    timeout=self.timeout,
                    max_retries=self.max_retries,
                    default_headers={"User-Agent": f"omnirm/{__version__}"},
                )
            return self._client


# -- conversion ----------------------------------------------------------------------------------


def to_openai_messages(
    conversation: Conversation, image_format: str = "png"
) -> list[dict[str, Any]]:
    """Neutral chat messages as OpenAI chat-completions messages (media inlined as base64)."""
    images: Literal["png", "jpeg"] = "jpeg" if image_format == "jpeg" else "png"
    return to_chat_messages(conversation, images=images, videos="frames", backend="openai")


# -- replies -------------------------------------------------------------------------------------


def _about_schema(message: str) -> bool:
    """Whether a 400's message is about the structured-output request."""
    lowered = message.lower()
    return any(word in lowered for word in ("response_format", "json_schema", "structured"))


def _malformed(detail: str) -> _Outcome:
    return _Outcome(error=f"malformed reply: {detail}", malformed=True)


def _server_message(response: Any) -> str:
    """The error message in a server's reply body (OpenAI, FastAPI or plain text)."""
    try:
        data = json.loads(response.content)
    except ValueError:
        data = None
    if isinstance(data, dict):
        error = data.get("error")
        if isinstance(error, dict) and error.get("message"):
            return _excerpt(str(error["message"]))
        for key in ("error", "detail", "message"):
            if data.get(key):
                return _excerpt(str(data[key]))
    return _excerpt(response.text) or getattr(response, "reason_phrase", "") or "no body"


def _cause(error: BaseException) -> str:
    """The underlying reason of a connection error (the client's own message is generic)."""
    cause = error.__cause__ or error.__context__
    return str(cause) if cause is not None and str(cause) else str(error)


def _excerpt(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _EXCERPT else text[:_EXCERPT] + "…"


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)
