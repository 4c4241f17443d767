"""The one module that imports `openai`: one function per call kind, explicit timeout, no client retries.

Retries live in one layer (generation/services/runner.py), so the client is built with max_retries=0 and
every failure is translated into one of three small exceptions here: RateLimited (429, with the server's
Retry-After), TransientError (5xx, timeouts, connection errors, a body that is not JSON) and
PermanentError (everything else: 400, 401, 403, 404, 422 …).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

import openai

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


def make_client(*, base_url: str, api_key_env: str, timeout: float) -> openai.AsyncOpenAI:
    """An async client for one endpoint. The key is read from the named environment variable only."""
    return openai.AsyncOpenAI(
        base_url=base_url,
        api_key=os.environ.get(api_key_env or "", "") or MISSING_KEY,
        max_retries=0,
        timeout=timeout,
    )


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


async def _chat(client: openai.AsyncOpenAI, **kwargs) -> LLMResult:
    started = time.monotonic()
    try:
        response = await client.chat.completions.create(**kwargs)
    except openai.RateLimitError as e:
        raise RateLimited(f"429 rate limited: {e.message}", _retry_after(e)) from e
    except openai.APIStatusError as e:
        if e.status_code >= 500 or e.status_code in (408, 409):
            raise TransientError(f"{e.status_code} from the model server: {e.message}") from e
        raise PermanentError(f"{e.status_code} from the model server: {e.message}") from e
    except openai.APITimeoutError as e:
        raise TransientError(f"timed out after {client.timeout} s") from e
    except openai.APIConnectionError as e:
        raise TransientError(f"connection error: {e}") from e
    except (ValueError, openai.APIResponseValidationError) as e:
        # A 200 whose body is not the JSON the protocol promises: a broken proxy or server hiccup.
        raise TransientError(f"malformed response body: {str(e)[:200]}") from e
    latency_ms = int((time.monotonic() - started) * 1000)
    if not getattr(response, "choices", None):
        raise TransientError("malformed response: no choices")
    text = response.choices[0].message.content or ""
    usage = response.usage
    return LLMResult(
        text=text,
        tokens_in=getattr(usage, "prompt_tokens", 0) or 0,
        tokens_out=getattr(usage, "completion_tokens", 0) or 0,
        model=response.model or kwargs["model"],
        latency_ms=latency_ms,
    )


async def describe_image(
    client: openai.AsyncOpenAI, *, model: str, prompt: str, image_data_url: str, max_tokens: int | None = None
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
    client: openai.AsyncOpenAI,
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
