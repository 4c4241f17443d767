"""A fake OpenAI-compatible server on loopback, for tests and benchmarks.

It speaks just enough of POST /v1/chat/completions for the real `openai` client: captions for requests
that carry an image, a JSON dialogue of CONVERSATION_TURNS turns for conversation requests (schema name
"conversation", or a prompt asking for {"turns": …}), JSON instructions for the others (the type comes
from the JSON-schema name or the first type slug in the prompt, the count from "exactly N"). Faults are
configurable per test:

    with FakeOpenAI(latency=0.02, faults={"429": 0.1, "500": 0.05}) as fake:
        fake.base_url              # "http://127.0.0.1:PORT/v1"
        fake.script(["500", "ok"]) # the next requests' outcomes, in order, before the random faults
        fake.requests              # the log: FakeRequest(at, path, model, outcome, kind)

Outcomes: "ok", "400" (a bad request: not worth retrying), "401" (a wrong key), "404" (an unknown model),
"429" (with Retry-After), "500", "hang" (sleeps past the client's timeout), "malformed"
(a 200 whose body is not JSON), "bad_content" (instruction content that is not JSON), "fenced" (JSON in a
```json fence with prose around it), "mcq_bad" (an MCQ whose answer letter is not among its options),
"too_many" (the seed questions of the prompt copied back, then twice the N asked for), "too_few" (N - 1).
For a conversation: "bad_content", "fenced" and "mcq_bad" likewise; "too_many" answers 8 turns (more than
the 6 allowed), "too_few" 2 (fewer than the 3 asked for). `requests[i].prompt` keeps each request's text.

The verifier's requests (an image and the "verdicts" schema, or the prompt's `{"verdicts": …}` shape) get
one verdict per item id found in the prompt's item lines: `unsupported_share` of the ids (chosen by a
stable hash of the id, so a test can count them by hand with `fake_verdict(id, share)`) are
"unsupported" (category "object"), the rest "supported"; "too_few" leaves the last item out and
"bad_content" cuts the JSON in half.

With `api_key="…"`, every request whose bearer token differs gets a 401, as OpenAI answers a wrong or
missing key; `auth_seen` logs the Authorization headers that arrived.
"""

from __future__ import annotations

import json
import random
import re
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

TYPES = ("judgement", "multiple_choice", "long_vqa", "short_vqa")
CONVERSATION_TURNS = 4
OUTCOMES = (
    "ok", "400", "401", "404", "429", "500", "hang", "malformed", "bad_content", "fenced", "mcq_bad", "too_many",
    "too_few",
)  # fmt: skip

CAPTION_WORDS = (
    "The photograph shows a quiet scene in soft daylight. In the foreground a wooden table holds a white "
    "ceramic cup, a folded newspaper and a pair of round glasses with thin metal frames. Behind the table a "
    "large window lets in pale light that falls across the left side of the frame, leaving the right side "
    "in gentle shadow. Through the glass one can see the outline of a tree with bare branches and part of "
    "a brick building across the street. The wall next to the window is painted a muted green and carries a "
    "small framed print of a sailing boat on a calm sea. On the windowsill there are three small potted "
    "plants, the middle one noticeably taller than the others, with broad dark leaves. A grey cat sits on a "
    "chair to the right of the table, looking towards the camera with its tail wrapped around its paws. "
    "The floor is made of light oak boards that run from the bottom edge of the picture towards the window. "
    "No people are visible, and no text can be read anywhere in the image apart from the masthead of the "
    "newspaper, which is too small and blurred to make out. The overall mood is calm, domestic and unhurried."
)


@dataclass
class FakeRequest:
    at: float  # time.time() when the request arrived
    path: str
    model: str
    kind: str  # "caption" or "instructions" or "?"
    outcome: str
    schema_name: str = ""  # response_format.json_schema.name, when structured output was asked for
    image_url: str = ""  # the data URL of a caption request (first 64 characters)
    prompt: str = ""  # the text of the request's messages


class FakeOpenAI:
    def __init__(
        self,
        *,
        latency: float | tuple[float, float] = 0.0,
        faults: dict[str, float] | None = None,
        retry_after: float = 1,
        hang_seconds: float = 30.0,
        seed: int = 1234,
        usage: tuple[int, int] = (120, 240),
        api_key: str | None = None,
        unsupported_share: float = 0.0,
    ):
        self.api_key = api_key
        self.unsupported_share = unsupported_share
        self.auth_seen: list[str] = []
        self.latency = latency
        self.faults = dict(faults or {})
        self.retry_after = retry_after
        self.hang_seconds = hang_seconds
        self.usage = usage
        self.requests: list[FakeRequest] = []
        self._script: list[str] = []
        self._lock = threading.Lock()
        self._rng = random.Random(seed)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle ------------------------------------------------------------------------------
    def start(self) -> FakeOpenAI:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # quiet
                pass

            def do_POST(self) -> None:
                fake._handle(self)

            def do_GET(self) -> None:
                self._reply(200, {"object": "list", "data": [{"id": "fake-model", "object": "model"}]})

            def _reply(self, status: int, body, headers: dict | None = None) -> None:
                raw = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(raw)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeOpenAI:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        assert self._server, "start() the fake first"
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    # --- configuration --------------------------------------------------------------------------
    def script(self, outcomes: list[str]) -> None:
        """Force the outcomes of the next requests, in order (then the random faults apply again)."""
        unknown = set(outcomes) - set(OUTCOMES)
        assert not unknown, f"unknown outcomes {unknown}"
        with self._lock:
            self._script.extend(outcomes)

    def outcomes(self) -> list[str]:
        return [r.outcome for r in self.requests]

    def max_in_window(self, window: float) -> int:
        """The most requests that arrived within any `window` seconds (sliding over the log)."""
        times = sorted(r.at for r in self.requests)
        best, start = 0, 0
        for end, t in enumerate(times):
            while t - times[start] >= window:
                start += 1
            best = max(best, end - start + 1)
        return best

    # --- the protocol ---------------------------------------------------------------------------
    def _pick_outcome(self) -> str:
        with self._lock:
            if self._script:
                return self._script.pop(0)
            roll = self._rng.random()
        acc = 0.0
        for name, p in self.faults.items():
            acc += p
            if roll < acc:
                return name
        return "ok"

    def _sleep_latency(self) -> None:
        lat = self.latency
        if isinstance(lat, tuple):
            with self._lock:
                lat = self._rng.uniform(*lat)
        if lat:
            time.sleep(lat)

    def _handle(self, handler) -> None:
        arrived = time.time()
        length = int(handler.headers.get("Content-Length") or 0)
        try:
            payload = json.loads(handler.rfile.read(length) or b"{}")
        except ValueError:
            handler._reply(400, {"error": {"message": "request body is not JSON", "type": "invalid_request"}})
            return
        if not handler.path.endswith("/chat/completions"):
            handler._reply(404, {"error": {"message": f"no route {handler.path}", "type": "not_found"}})
            return
        kind, type_, n = _describe(payload)
        auth = handler.headers.get("Authorization", "")
        with self._lock:
            self.auth_seen.append(auth)
        if self.api_key is not None and auth != f"Bearer {self.api_key}":
            outcome = "401"
        else:
            outcome = self._pick_outcome()
        schema_name = ((payload.get("response_format") or {}).get("json_schema") or {}).get("name", "")
        with self._lock:
            self.requests.append(
                FakeRequest(
                    arrived,
                    handler.path,
                    payload.get("model", ""),
                    kind,
                    outcome,
                    schema_name,
                    _image_url(payload),
                    _prompt_text(payload),
                )
            )
        if outcome == "429":
            handler._reply(
                429,
                {"error": {"message": "Rate limit reached (fake)", "type": "rate_limit_exceeded"}},
                {"Retry-After": str(self.retry_after)},
            )
            return
        if outcome == "401":
            handler._reply(
                401,
                {"error": {"message": "Incorrect API key provided (fake)", "type": "invalid_request_error"}},
            )
            return
        if outcome == "404":
            handler._reply(
                404,
                {
                    "error": {
                        "message": f"The model `{payload.get('model')}` does not exist (fake)",
                        "type": "invalid_request_error",
                    }
                },
            )
            return
        if outcome == "400":
            handler._reply(
                400, {"error": {"message": "Invalid request (fake)", "type": "invalid_request_error"}}
            )
            return
        if outcome == "hang":
            time.sleep(self.hang_seconds)
        self._sleep_latency()
        if outcome == "500":
            handler._reply(
                500, {"error": {"message": "The server had an error (fake)", "type": "server_error"}}
            )
            return
        if outcome == "malformed":
            handler._reply(200, b'{"id": "chatcmpl-broken", "choices": [{"message": ')
            return
        if kind == "verify":
            ids = _item_ids(payload)
            if outcome == "too_few":
                ids = ids[:-1]
            content = json.dumps({"verdicts": [_verdict(item_id, self.unsupported_share) for item_id in ids]})
            if outcome == "bad_content":
                content = content[: len(content) // 2]
        elif kind == "caption":
            content = CAPTION_WORDS
        elif kind == "conversation":
            count = {"too_many": 8, "too_few": 2}.get(outcome, CONVERSATION_TURNS)
            content = json.dumps({"turns": _turns(count, mcq_bad=outcome == "mcq_bad")})
            if outcome == "bad_content":
                content = content[: len(content) // 2]
            elif outcome == "fenced":
                content = f"Here is the conversation:\n```json\n{content}\n```\nEnjoy."
        else:
            count = {"too_many": 2 * n, "too_few": max(0, n - 1)}.get(outcome, n)
            with self._lock:
                items = _instructions(type_ or "short_vqa", count, self._rng, mcq_bad=outcome == "mcq_bad")
            if outcome == "too_many":
                items = _seed_copies(payload) + items
            content = json.dumps({"instructions": items})
            if outcome == "bad_content":
                content = content[: len(content) // 2]
            elif outcome == "fenced":
                content = f"Here are the questions you asked for:\n```json\n{content}\n```\nHope this helps."
        tin, tout = self.usage
        handler._reply(
            200,
            {
                "id": f"chatcmpl-fake-{len(self.requests)}",
                "object": "chat.completion",
                "created": int(arrived),
                "model": payload.get("model", "fake-model"),
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": content},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {"prompt_tokens": tin, "completion_tokens": tout, "total_tokens": tin + tout},
            },
        )


def _image_url(payload: dict) -> str:
    for message in payload.get("messages", []):
        if isinstance(message.get("content"), list):
            for part in message["content"]:
                if part.get("type") == "image_url":
                    return (part.get("image_url") or {}).get("url", "")[:64]
    return ""


def _prompt_text(payload: dict) -> str:
    texts = []
    for message in payload.get("messages", []):
        content = message.get("content")
        if isinstance(content, str):
            texts.append(content)
        elif isinstance(content, list):
            texts.extend(p.get("text", "") for p in content if p.get("type") == "text")
    return "\n".join(texts)


def _turns(n: int, *, mcq_bad: bool = False) -> list[dict]:
    """A dialogue of n turns: a description, then follow-ups of each type (the third turn an MCQ)."""
    turns = [
        {
            "type": "long_vqa",
            "question": "What is happening in the picture?",
            "options": [],
            "answer": "A grey cat sits on a chair beside a wooden table in a quiet room.",
        }
    ]
    follow_ups = [
        {"type": "short_vqa", "question": "What colour is the cat?", "options": [], "answer": "grey"},
        {
            "type": "multiple_choice",
            "question": "What lies on the table besides the cup?",
            "options": ["a newspaper", "a laptop", "a vase"],
            "answer": "E" if mcq_bad else "A",
        },
        {"type": "judgement", "question": "Is the cat sitting on the table?", "options": [], "answer": "No"},
        {
            "type": "long_vqa",
            "question": "Why does the room look calm?",
            "options": [],
            "answer": "Soft daylight falls through the window and nothing in the room is moving.",
        },
    ]
    while len(turns) < n:
        turn = dict(follow_ups[(len(turns) - 1) % len(follow_ups)])
        if len(turns) > len(follow_ups):
            turn["question"] = f"{turn['question'][:-1]}, looking again ({len(turns)})?"
        turns.append(turn)
    return turns[:n]


def _describe(payload: dict) -> tuple[str, str | None, int]:
    """(kind, instruction type, N) from a chat-completions request."""
    texts, has_image = [], False
    for message in payload.get("messages", []):
        content = message.get("content")
        if isinstance(content, str):
            texts.append(content)
        elif isinstance(content, list):
            for part in content:
                if part.get("type") == "image_url":
                    has_image = True
                elif part.get("type") == "text":
                    texts.append(part.get("text", ""))
    schema_name = ((payload.get("response_format") or {}).get("json_schema") or {}).get("name", "")
    if has_image and (schema_name == "verdicts" or '{"verdicts"' in "\n".join(texts)):
        return "verify", None, 0
    if has_image:
        return "caption", None, 0
    text = "\n".join(texts)
    type_ = None
    schema_name = ((payload.get("response_format") or {}).get("json_schema") or {}).get("name", "")
    if schema_name == "conversation" or '{"turns"' in text:
        return "conversation", None, CONVERSATION_TURNS
    for t in TYPES:
        if t in schema_name:
            type_ = t
    if type_ is None:
        match = re.search(r"\b(" + "|".join(TYPES) + r")\b", text)
        type_ = match.group(1) if match else None
    match = re.search(r"exactly (\d+)", text)
    n = int(match.group(1)) if match else 3
    return "instructions", type_, n


def fake_verdict(item_id: int, unsupported_share: float) -> str:
    """The fake verifier's verdict for an item: unsupported for a stable `unsupported_share` of ids."""
    return "unsupported" if (item_id * 2654435761) % 1000 < unsupported_share * 1000 else "supported"


def _verdict(item_id: int, unsupported_share: float) -> dict:
    verdict = fake_verdict(item_id, unsupported_share)
    if verdict == "unsupported":
        return {
            "id": item_id,
            "verdict": verdict,
            "reason": "the image shows no such thing (fake)",
            "category": "object",
        }
    return {"id": item_id, "verdict": verdict, "reason": "the image shows it (fake)", "category": ""}


def _item_ids(payload: dict) -> list[int]:
    """The ids of the items a verification prompt lists (one JSON object per line with an "id")."""
    ids = []
    for message in payload.get("messages", []):
        content = message.get("content")
        parts = (
            [content]
            if isinstance(content, str)
            else [p.get("text", "") for p in content or [] if p.get("type") == "text"]
        )
        for text in parts:
            for line in text.splitlines():
                line = line.strip()
                if not line.startswith('{"id"'):
                    continue
                try:
                    ids.append(int(json.loads(line)["id"]))
                except (ValueError, KeyError, TypeError):
                    continue
    return ids


def _seed_copies(payload: dict) -> list[dict]:
    """The seed questions among the prompt's examples (one JSON object per line), as items: what a model
    does when it copies the examples it was shown back into its answer."""
    items = []
    for message in payload.get("messages", []):
        content = message.get("content")
        for line in (content if isinstance(content, str) else "").splitlines():
            line = line.strip()
            if not line.startswith("{"):
                continue
            try:
                data = json.loads(line)
            except ValueError:
                continue
            if isinstance(data, dict) and "question" in data:
                items.append({"options": [], **data})
    return items


def _instructions(type_: str, n: int, rng: random.Random, *, mcq_bad: bool = False) -> list[dict]:
    colours = ["red", "green", "blue", "grey", "white", "black"]
    items = []
    for i in range(n):
        if type_ == "judgement":
            items.append(
                {
                    "question": f"Is there a cat number {i} in the picture?",
                    "answer": "Yes" if i % 2 == 0 else "No",
                }
            )
        elif type_ == "multiple_choice":
            options = rng.sample(colours, 4)
            answer = "E" if mcq_bad else "ABCD"[rng.randrange(4)]
            items.append({"question": f"What colour is object {i}?", "options": options, "answer": answer})
        elif type_ == "long_vqa":
            items.append(
                {
                    "question": f"Describe what lies on the table ({i}).",
                    "answer": "The table holds a white cup, a folded newspaper and a pair of glasses.",
                }
            )
        else:
            items.append({"question": f"What animal sits on chair {i}?", "answer": "a grey cat"})
    return items


def main() -> None:  # pragma: no cover - handy for poking at it by hand
    import argparse

    parser = argparse.ArgumentParser(description="Run the fake OpenAI server in the foreground.")
    parser.add_argument("--latency", type=float, default=0.5)
    args = parser.parse_args()
    fake = FakeOpenAI(latency=args.latency).start()
    print(fake.base_url, flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        fake.stop()


if __name__ == "__main__":  # pragma: no cover
    main()
