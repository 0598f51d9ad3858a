"""A fake OpenAI-compatible chat API: ``POST /v1/chat/completions`` with a scripted JSON answer.

Point ``LLM_API_BASE`` at :attr:`FakeOpenAI.base_url` (litellm then calls it as ``openai/<model>``).
Errors use OpenAI's body ``{"error": {"message", "type", "param", "code"}}``; the helpers answer the
ones our integration must tell apart (429 with ``Retry-After``, 500, 401, 404, context length).
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from cep_automation.testing.fakes import FakeServer, Recorded, Reply

# (status, type, code, message) of each error helper, as the OpenAI API words them.
ERRORS: dict[str, tuple[int, str, str | None, str]] = {
    "rate_limit_exceeded": (429, "requests", "rate_limit_exceeded",
                            "Rate limit reached for gpt-4 in organization org-fake on requests per min (RPM): "
                            "Limit 500, Used 500, Requested 1. Please try again in 120ms."),
    "server_error": (500, "server_error", None,
                     "The server had an error while processing your request. Sorry about that!"),
    "invalid_api_key": (401, "invalid_request_error", "invalid_api_key",
                        "Incorrect API key provided: sk-fake***************cdef. You can find your API key at "
                        "https://platform.openai.com/account/api-keys."),
    "model_not_found": (404, "invalid_request_error", "model_not_found",
                        "The model `unknown` does not exist or you do not have access to it."),
    "context_length_exceeded": (400, "invalid_request_error", "context_length_exceeded",
                                "This model's maximum context length is 8192 tokens. However, your messages "
                                "resulted in 9000 tokens. Please reduce the length of the messages."),
}


def error_reply(code: str, headers: dict[str, str] | None = None, delay_s: float = 0.0) -> Reply:
    """OpenAI's error answer for one of :data:`ERRORS`."""
    status, kind, error_code, message = ERRORS[code]
    body = {"error": {"message": message, "type": kind, "param": None, "code": error_code}}
    return Reply(status, body, headers or {}, delay_s)


def count_tokens(text: str) -> int:
    """A rough token count (about four characters a token), enough for realistic ``usage``."""
    return max(1, len(text) // 4)


class FakeOpenAI(FakeServer):
    """OpenAI's chat completions on 127.0.0.1.

    Attributes:
      content: the assistant's answer; a dict or list is sent as JSON text, a str as is (so a test
        can script invalid JSON), a callable is given the request body and returns one of those.
      chat_requests: the JSON bodies of the chat completion requests received.
    """

    def __init__(self, content: Any = None) -> None:
        super().__init__()
        self.content: Any = {"ok": True} if content is None else content

    @property
    def base_url(self) -> str:
        """The value for ``LLM_API_BASE``."""
        return f"{self.url}/v1"

    @property
    def chat_requests(self) -> list[dict[str, Any]]:
        return [r.json for r in self.requests if r.path.endswith("/chat/completions")]

    def fail_with(self, code: str, *, retry_after: str | None = None, times: int = 1) -> None:
        """Answer the next ``times`` requests with a documented error (see :data:`ERRORS`)."""
        headers = {"Retry-After": retry_after} if retry_after is not None else {}
        reply = error_reply(code, headers)
        self.fail_next(reply.status, reply.body, reply.headers, times=times)

    def delay_next(self, delay_s: float) -> None:
        """Answer the next request normally, but only after ``delay_s`` seconds."""
        self.fail_next(200, self._completion({"model": "slow", "messages": []}), delay_s=delay_s)

    def handle(self, request: Recorded) -> Reply:
        if request.method == "POST" and request.path.endswith("/chat/completions"):
            return Reply(200, self._completion(request.json))
        if request.method == "GET" and request.path.endswith("/models"):
            return Reply(200, {"object": "list", "data": [{"id": "gpt-4", "object": "model", "owned_by": "fake"}]})
        return Reply(404, {"error": {"message": f"Invalid URL ({request.method} {request.path})",
                                     "type": "invalid_request_error", "param": None, "code": None}})

    def _completion(self, body: dict[str, Any]) -> dict[str, Any]:
        value = self.content(body) if callable(self.content) else self.content  # a function answers per request
        content = value if isinstance(value, str) else json.dumps(value)
        prompt = " ".join(str(m.get("content", "")) for m in body.get("messages", []))
        usage = {"prompt_tokens": count_tokens(prompt), "completion_tokens": count_tokens(content)}
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", ""),
            "system_fingerprint": "fp_fake",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content, "refusal": None},
                         "logprobs": None, "finish_reason": "stop"}],
            "usage": usage,
        }
