"""The one module that imports `openai`: one function per call kind, explicit timeout, no client retries.

Retries live in one layer (generation/services/runner.py), so the client is built with max_retries=0 and
every failure is translated into one of three small exceptions here: RateLimited (429, with the server's
Retry-After), TransientError (5xx, timeouts, connection errors, a body that is not JSON) and
PermanentError (everything else: 400, 401, 403, 404, 422 …). Every message names the endpoint's URL,
the model and the HTTP status, and a 401 says when the key variable is not set in this process.

Before a client is made, `validators.check_call_target` checks the URL (host name resolved) and the key
variable again, so no row — however old — can make a worker send a key where it must not go.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

import openai

from . import validators

# A client must have a key; servers such as vLLM or Ollama accept any, OpenAI answers 401 (permanent).
MISSING_KEY = "not-set"


@dataclass(frozen=True)
class LLMResult:
    text: str
    tokens_in: int
    tokens_out: int
    model: str
    latency_ms: int


class LLMError(Exception):
    """A failed model call. `tokens_in/out` are zero: a failed call is not billed by the APIs we use."""

    transient = False


class TransientError(LLMError):
    transient = True


class RateLimited(TransientError):
    def __init__(self, message: str, retry_after: float | None):
        super().__init__(message)
        self.retry_after = retry_after


class PermanentError(LLMError):
    pass


class EndpointRefused(PermanentError):
    """The endpoint's URL or key variable breaks the rules of generation/validators.py: nothing is sent."""


@dataclass
class Client:
    """An async client for one endpoint, with what its error messages name."""

    api: openai.AsyncOpenAI
    base_url: str
    key_env: str
    key_set: bool

    @property
    def timeout(self):
        return self.api.timeout

    async def close(self) -> None:
        await self.api.close()


def _key(api_key_env: str) -> tuple[str, bool]:
    value = os.environ.get(api_key_env or "", "")
    return value or MISSING_KEY, bool(value)


def make_client(*, base_url: str, api_key_env: str, timeout: float) -> Client:
    """An async client for one endpoint. The key is read from the named environment variable only, and
    only after the URL and the variable passed the rules (raises EndpointRefused otherwise)."""
    try:
        validators.check_call_target(base_url, api_key_env)
    except validators.EndpointNotAllowed as e:
        raise EndpointRefused(str(e)) from e
    key, key_set = _key(api_key_env)
    api = openai.AsyncOpenAI(base_url=base_url, api_key=key, max_retries=0, timeout=timeout)
    return Client(api=api, base_url=base_url, key_env=api_key_env, key_set=key_set)


def _where(base_url: str, model: str) -> str:
    return f"{base_url} (model {model})"


def _status_message(
    status: int, base_url: str, model: str, message: str, *, key_env: str, key_set: bool
) -> str:
    text = f"HTTP {status} from {_where(base_url, model)}: {message}"
    if status in (401, 403) and not key_set:
        text += f" — the key variable {key_env} is not set in the worker's environment"
    return text


def _retry_after(error: openai.APIStatusError) -> float | None:
    headers = error.response.headers if error.response is not None else {}
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = headers.get(name)
        if value:
            try:
                return max(0.0, float(value) * scale)
            except ValueError:
                return None  # an HTTP date; the caller falls back to its own backoff
    return None


async def _chat(client: Client, **kwargs) -> LLMResult:
    started = time.monotonic()
    model = kwargs["model"]
    try:
        response = await client.api.chat.completions.create(**kwargs)
    except openai.RateLimitError as e:
        raise RateLimited(
            f"HTTP 429 rate limited by {_where(client.base_url, model)}: {e.message}", _retry_after(e)
        ) from e
    except openai.APIStatusError as e:
        message = _status_message(
            e.status_code, client.base_url, model, e.message, key_env=client.key_env, key_set=client.key_set
        )
        if e.status_code >= 500 or e.status_code in (408, 409):
            raise TransientError(message) from e
        raise PermanentError(message) from e
    except openai.APITimeoutError as e:
        raise TransientError(f"timed out after {client.timeout} s: {_where(client.base_url, model)}") from e
    except openai.APIConnectionError as e:
        raise TransientError(f"connection error to {_where(client.base_url, model)}: {e}") from e
    except (ValueError, openai.APIResponseValidationError) as e:
        # A 200 whose body is not the JSON the protocol promises: a broken proxy or server hiccup.
        raise TransientError(
            f"malformed response body from {_where(client.base_url, model)}: {str(e)[:200]}"
        ) from e
    latency_ms = int((time.monotonic() - started) * 1000)
    if not getattr(response, "choices", None):
        raise TransientError(f"malformed response from {_where(client.base_url, model)}: no choices")
    text = response.choices[0].message.content or ""
    usage = response.usage
    return LLMResult(
        text=text,
        tokens_in=getattr(usage, "prompt_tokens", 0) or 0,
        tokens_out=getattr(usage, "completion_tokens", 0) or 0,
        model=response.model or model,
        latency_ms=latency_ms,
    )


async def describe_image(
    client: Client, *, model: str, prompt: str, image_data_url: str, max_tokens: int | None = None
) -> LLMResult:
    """Ask a vision model for a caption of one image (a data URL) following `prompt`."""
    kwargs = {}
    if max_tokens:
        kwargs["max_tokens"] = max_tokens
    return await _chat(
        client,
        model=model,
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": prompt},
                    {"type": "image_url", "image_url": {"url": image_data_url}},
                ],
            }
        ],
        **kwargs,
    )


async def write_json(
    client: Client,
    *,
    model: str,
    prompt: str,
    schema: dict | None,
    schema_name: str = "instructions",
    max_tokens: int | None = None,
) -> LLMResult:
    """Ask a text model for JSON; with `schema`, as structured output (response_format json_schema)."""
    kwargs = {}
    if max_tokens:
        kwargs["max_tokens"] = max_tokens
    if schema is not None:
        kwargs["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": schema_name, "schema": schema, "strict": False},
        }
    return await _chat(client, model=model, messages=[{"role": "user", "content": prompt}], **kwargs)


async def judge_image(
    client: Client,
    *,
    model: str,
    prompt: str,
    image_data_url: str,
    schema: dict | None,
    schema_name: str = "verdicts",
    max_tokens: int | None = None,
) -> LLMResult:
    """Ask a vision model for JSON about one image (the verifier): the image and `prompt`, with
    `schema` as structured output when the endpoint supports it."""
    kwargs = {}
    if max_tokens:
        kwargs["max_tokens"] = max_tokens
    if schema is not None:
        kwargs["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": schema_name, "schema": schema, "strict": False},
        }
    return await _chat(
        client,
        model=model,
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": prompt},
                    {"type": "image_url", "image_url": {"url": image_data_url}},
                ],
            }
        ],
        **kwargs,
    )


@dataclass(frozen=True)
class ConnectionReport:
    """What one test call found: where it went, the HTTP status (None: no answer), how long, what failed."""

    ok: bool
    url: str
    model: str
    status: int | None
    latency_ms: int
    error: str = ""


def probe_connection(*, base_url: str, api_key_env: str, model: str, timeout: float) -> ConnectionReport:
    """One cheap call (a one-token chat completion) that checks URL, key and model together. Synchronous:
    the admin who pressed "Test connection" waits for it, bounded by `timeout`; no retries."""
    url = f"{base_url.rstrip('/')}/chat/completions"
    try:
        validators.check_call_target(base_url, api_key_env)
    except validators.EndpointNotAllowed as e:
        return ConnectionReport(False, url, model, None, 0, str(e))
    key, key_set = _key(api_key_env)
    started = time.monotonic()

    def elapsed() -> int:
        return int((time.monotonic() - started) * 1000)

    client = openai.OpenAI(base_url=base_url, api_key=key, max_retries=0, timeout=timeout)
    try:
        raw = client.chat.completions.with_raw_response.create(
            model=model, messages=[{"role": "user", "content": "Reply with OK."}], max_tokens=1
        )
        raw.parse()
    except openai.APIStatusError as e:
        message = _status_message(
            e.status_code, base_url, model, e.message, key_env=api_key_env, key_set=key_set
        )
        return ConnectionReport(False, url, model, e.status_code, elapsed(), message)
    except openai.APITimeoutError:
        return ConnectionReport(False, url, model, None, elapsed(), f"no answer within {timeout} s")
    except openai.APIConnectionError as e:
        return ConnectionReport(False, url, model, None, elapsed(), f"connection error: {e.__cause__ or e}")
    except (ValueError, openai.APIResponseValidationError) as e:
        return ConnectionReport(False, url, model, 200, elapsed(), f"malformed response body: {str(e)[:200]}")
    finally:
        client.close()
    return ConnectionReport(True, url, model, raw.status_code, elapsed())
