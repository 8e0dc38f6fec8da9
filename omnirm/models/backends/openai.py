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

Requests run ``concurrency`` at a time over keep-alive sessions. They are retried with
exponential backoff and jitter on 408, 429, 5xx, connection errors and timeouts, honouring
``Retry-After``. A malformed 200 reply is retried twice at most. Any other 4xx fails only its
own answer, except 401/403, which raise :class:`~omnirm.errors.UsageError` because every request
would fail the same way.
"""

from __future__ import annotations

import email.utils
import os
import queue
import random
import threading
import time
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any, Literal

import requests

from omnirm import __version__, console
from omnirm.errors import UsageError
from omnirm.models.backends.base import Conversation, Generation, JudgeBackend, Sampling
from omnirm.models.backends.messages import to_chat_messages

DEFAULT_BASE_URL = "https://api.openai.com/v1"
_MALFORMED_RETRIES = 2  # a 200 with an unreadable body is asked again at most this often
_MAX_RETRY_AFTER = 600.0  # seconds; a longer Retry-After is cut to this
_EXCERPT = 300  # characters of a server's error body quoted in messages


@dataclass
class _Outcome:
    """One HTTP attempt: an answer, or an error that may be worth retrying."""

    generation: Generation | None = None
    error: str = ""
    retry: bool = False
    retry_after: float | None = None
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
        backoff: float = 1.0,
        max_backoff: float = 60.0,
    ) -> None:
        """``timeout`` bounds connecting and each wait for data (seconds); ``max_retries``
        counts the requests after the first; ``backoff`` is the first retry's delay, which
        doubles per retry up to ``max_backoff``; ``image_format`` is ``png`` or ``jpeg``."""
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
        self.backoff = float(backoff)
        self.max_backoff = float(max_backoff)
        #: the model id in the server's first reply (e.g. a dated snapshot of ``model``); it is
        #: not part of :meth:`fingerprint`, which the judge takes before the first request
        self.server_model: str | None = None
        self._api_key = os.environ.get(api_key_env) or None
        self._max_tokens_field = "max_tokens"
        self._idle: queue.SimpleQueue[requests.Session] = queue.SimpleQueue()
        self._sessions: list[requests.Session] = []
        self._lock = threading.Lock()
        self._abort = threading.Event()

    @property
    def model(self) -> str:
        return self._model

    @property
    def modalities(self) -> frozenset[str]:
        return frozenset({"image", "video", "audio"})

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
            self._abort.set()  # requests still running stop before their next attempt
            raise
        finally:
            pool.shutdown(wait=not self._abort.is_set(), cancel_futures=True)

    def close(self) -> None:
        """Close the keep-alive sessions (new ones open if the backend is used again)."""
        with self._lock:
            sessions, self._sessions = self._sessions, []
        for session in sessions:
            session.close()
        while not self._idle.empty():
            self._idle.get_nowait()

    # -- one conversation -----------------------------------------------------------------------

    def _answer(self, conversation: Conversation, sampling: Sampling) -> Generation:
        """Ask until answered, retrying what is worth retrying; never raises but UsageError."""
        began = time.perf_counter()
        body = self._body(to_openai_messages(conversation, self.image_format), sampling)
        retries = malformed = 0
        while True:
            if self._abort.is_set():
                return Generation(None, seconds=time.perf_counter() - began, error="cancelled")
            outcome = self._attempt(body)
            if outcome.generation is not None:
                outcome.generation.seconds = time.perf_counter() - began
                return outcome.generation
            malformed += outcome.malformed
            gave_up = retries >= self.max_retries or malformed > _MALFORMED_RETRIES
            if not outcome.retry or gave_up:
                error = outcome.error
                if outcome.retry:
                    error += f" (gave up after {retries + 1} attempts)"
                return Generation(None, seconds=time.perf_counter() - began, error=error)
            retries += 1
            delay = outcome.retry_after
            if delay is None:
                delay = min(self.max_backoff, self.backoff * 2 ** (retries - 1))
                delay *= random.uniform(0.5, 1.0)
            console.debug(_escape(f"openai: {outcome.error}; retry {retries} in {delay:.2f} s"))
            if self._abort.wait(delay):
                return Generation(None, seconds=time.perf_counter() - began, error="cancelled")

    def _body(self, messages: list[dict[str, Any]], sampling: Sampling) -> dict[str, Any]:
        body = {
            "model": self._model,
            "messages": messages,
            self._max_tokens_field: sampling.max_new_tokens,
            "temperature": sampling.temperature,
            "top_p": sampling.top_p,
            "seed": sampling.seed,
        }
        return {key: value for key, value in body.items() if value is not None}

    def _attempt(self, body: dict[str, Any]) -> _Outcome:
        """One POST to ``/chat/completions`` and what became of it."""
        url = f"{self.base_url}/chat/completions"
        headers = {"Content-Type": "application/json", "User-Agent": f"omnirm/{__version__}"}
        if self._api_key is not None:
            headers["Authorization"] = f"Bearer {self._api_key}"
        session = self._session()
        try:
            response = session.post(url, json=body, headers=headers, timeout=self.timeout)
        except requests.Timeout:
            return _Outcome(error=f"no reply from {url} within {self.timeout:g} s", retry=True)
        except requests.RequestException as error:
            return _Outcome(error=f"cannot reach {url}: {error}", retry=True)
        finally:
            self._idle.put(session)
        status = response.status_code
        if 200 <= status < 300:
            return self._parse(response)
        message = _server_message(response)
        if status in (401, 403):
            raise UsageError(self._refused(url, status, message))
        if status in (408, 429) or status >= 500:
            retry_after = _retry_after(response.headers.get("Retry-After"))
            return _Outcome(
                error=f"HTTP {status} from {url}: {message}", retry=True, retry_after=retry_after
            )
        if status == 400 and "max_completion_tokens" in message and "max_tokens" in body:
            # newer OpenAI models take only max_completion_tokens: switch, for later requests too
            self._max_tokens_field = "max_completion_tokens"
            body["max_completion_tokens"] = body.pop("max_tokens")
            return self._attempt(body)
        hint = " (is the base URL right? It usually ends in /v1)" if status == 404 else ""
        return _Outcome(error=f"HTTP {status} from {url}: {message}{hint}")

    def _parse(self, response: requests.Response) -> _Outcome:
        """The answer in a 2xx reply, or a retryable "malformed reply" outcome."""
        try:
            data = response.json()
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

    def _session(self) -> requests.Session:
        try:
            return self._idle.get_nowait()
        except queue.Empty:
            session = requests.Session()
            with self._lock:
                self._sessions.append(session)
            return session


# -- conversion ----------------------------------------------------------------------------------


def to_openai_messages(
    conversation: Conversation, image_format: str = "png"
) -> list[dict[str, Any]]:
    """Neutral chat messages as OpenAI chat-completions messages (media inlined as base64)."""
    images: Literal["png", "jpeg"] = "jpeg" if image_format == "jpeg" else "png"
    return to_chat_messages(conversation, images=images, videos="frames", backend="openai")


# -- replies -------------------------------------------------------------------------------------


def _malformed(detail: str) -> _Outcome:
    return _Outcome(error=f"malformed reply: {detail}", retry=True, malformed=True)


def _server_message(response: requests.Response) -> str:
    """The error message in a server's reply body (OpenAI, FastAPI or plain text)."""
    try:
        data = response.json()
    except ValueError:
        data = None
    if isinstance(data, dict):
        error = data.get("error")
        if isinstance(error, dict) and error.get("message"):
            return _excerpt(str(error["message"]))
        for key in ("error", "detail", "message"):
            if data.get(key):
                return _excerpt(str(data[key]))
    return _excerpt(response.text) or response.reason or "no body"


def _excerpt(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _EXCERPT else text[:_EXCERPT] + "…"


def _retry_after(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (seconds or an HTTP date)."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = email.utils.parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError):
            return None
    return min(max(seconds, 0.0), _MAX_RETRY_AFTER)


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)
