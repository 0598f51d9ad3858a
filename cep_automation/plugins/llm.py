"""Built-in LLM integration through litellm: one JSON answer per call, with tokens and cost.

litellm takes seconds to import, so it is imported on the first call only. Retries are ours (the
Retries middleware), so litellm is told not to retry; its exceptions become TransientError (rate
limits, timeouts, connection and server errors) or PermanentError (auth, bad request, unknown model,
context too long). With ``LLM_API_BASE`` set, every call goes to that OpenAI-compatible endpoint.
"""

from __future__ import annotations

import json
import os
import re
from types import ModuleType
from typing import Any

from cep_automation import telemetry
from cep_automation.errors import PermanentError, Postponed, TransientError
from cep_automation.flow import Limit, hold
from cep_automation.plugins.hookspecs import Register, hookimpl
from cep_automation.plugins.http import retry_after_seconds
from cep_automation.plugins.kinds import LLM, Completion
from cep_automation.redact import redact
from cep_automation.settings import Settings

# The seed's model choices; anything containing "/" is taken as a litellm "provider/model" id.
MODEL_ALIASES = {
    "gpt-4": "openai/gpt-4",
    "claude-sonnet": "anthropic/claude-sonnet-4-5",
    "ollama-llama3": "ollama/llama3",
}
KEY_VARIABLES = ("OPENAI_API_KEY", "ANTHROPIC_API_KEY")
TIMEOUT_S = 100.0  # below llm.ingest's 120 s time limit, so the actor sees our error, not a kill
LIMIT_WAIT_S = 10.0  # a call waits this long for its provider's rate, then the job is postponed (not failed)
ANSWER_TOKENS_ESTIMATE = 1_000  # the answer's tokens, counted against the limit before they are known
PLACEHOLDER_KEY = "not-needed"  # local OpenAI-compatible servers (Ollama, vLLM) ignore the key
_TRANSIENT = ("RateLimitError", "Timeout", "APIConnectionError", "ServiceUnavailableError", "InternalServerError",
              "BadGatewayError")
_PERMANENT = ("AuthenticationError", "PermissionDeniedError", "BadRequestError", "NotFoundError",
              "ContextWindowExceededError", "UnprocessableEntityError")
_API_KEY = re.compile(r"\bsk-[A-Za-z0-9_*\-]{4,}")
_FENCE = re.compile(r"^```(?:json)?\s*(.*?)\s*```$", re.S)


def import_litellm() -> ModuleType:
    """litellm, imported on first use, never fetching its cost map from the internet."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    try:
        import litellm
    except ImportError:
        raise PermanentError("litellm is not installed: pip install 'cep-automation[llm]'") from None
    litellm.suppress_debug_info = True
    return litellm


def resolve_model(model: str) -> str:
    """The litellm id for an alias or an explicit ``provider/model``."""
    if "/" in model:
        return model
    if model in MODEL_ALIASES:
        return MODEL_ALIASES[model]
    raise PermanentError(f"unknown LLM model {model!r}; use one of {', '.join(MODEL_ALIASES)} or 'provider/model'")


def llm_error(exc: Exception) -> Exception:
    """Our error for a litellm exception, by class name (its own or a base's), else by HTTP status."""
    names = {cls.__name__ for cls in type(exc).__mro__}
    what = "litellm: " + _API_KEY.sub("sk-***", redact(str(exc)))[:300]
    status = getattr(exc, "status_code", None)
    if names & set(_PERMANENT):
        return PermanentError(what)
    if names & set(_TRANSIENT) or not isinstance(status, int) or status >= 500 or status == 429:
        return TransientError(what, retry_after=_retry_after(exc))
    return PermanentError(what)


def _retry_after(exc: Exception) -> float | None:
    response = getattr(exc, "response", None)  # an httpx.Response: headers.get is case-insensitive too
    return retry_after_seconds(response) if response is not None and hasattr(response, "headers") else None


def parse_json_object(content: str | None) -> dict[str, Any]:
    """The answer as a JSON object (a surrounding Markdown code fence is tolerated)."""
    text = (content or "").strip()
    fenced = _FENCE.match(text)
    try:
        data = json.loads(fenced.group(1) if fenced else text)
    except ValueError:
        raise PermanentError(f"answer is not valid JSON: {redact(text[:120])!r}") from None
    if not isinstance(data, dict):
        raise PermanentError(f"answer is JSON but not an object: {redact(text[:120])!r}")
    return data


class LiteLLM(LLM):
    """Calls any litellm model and returns its answer as a JSON object.

    Parameters:
      settings: uses ``llm_api_base`` (an OpenAI-compatible endpoint for every call); API keys are
        read from the environment as litellm reads them (``OPENAI_API_KEY``, ``ANTHROPIC_API_KEY``).
      timeout: seconds for one call.
    Raises:
      PermanentError: unknown alias, invalid JSON, authentication, bad request, unknown model,
        context window exceeded, litellm not installed.
      TransientError: rate limits (with ``retry_after``), timeouts, connection and server errors.
    """

    name = "litellm"

    def __init__(self, settings: Any, *, timeout: float = TIMEOUT_S, limit_wait_s: float = LIMIT_WAIT_S) -> None:
        super().__init__(settings)
        self.timeout, self.limit_wait_s = timeout, limit_wait_s

    def disabled_reason(self) -> str | None:
        if getattr(self.settings, "llm_api_base", None) or any(os.environ.get(v) for v in KEY_VARIABLES):
            return None
        return f"not configured: set {' or '.join(KEY_VARIABLES)} (or LLM_API_BASE)"

    def limits(self) -> tuple[Limit, Limit]:
        """Requests and tokens per minute, per provider, shared by every worker (flow control)."""
        requests_per_minute = self.settings.llm_requests_per_minute
        tokens_per_minute = self.settings.llm_tokens_per_minute
        return (Limit("llm.requests", rate=requests_per_minute, period_s=60, burst=max(1, requests_per_minute // 10),
                      wait_s=self.limit_wait_s),
                Limit("llm.tokens", rate=tokens_per_minute, period_s=60, burst=tokens_per_minute,
                      wait_s=self.limit_wait_s))

    def complete_json(self, model: str, system: str, prompt: str) -> Completion:
        litellm = import_litellm()
        call = self.call_arguments(litellm, resolve_model(model))
        messages = [{"role": "system", "content": system + "\nAnswer with one JSON object only."},
                    {"role": "user", "content": prompt}]
        requests_limit, tokens_limit = self.limits()
        provider = call["model"].partition("/")[0] or "default"
        # Tokens are known after the call: take the prompt's estimate (4 characters a token) and the answer's share
        tokens = min(tokens_limit.burst, (len(system) + len(prompt)) // 4 + ANSWER_TOKENS_ESTIMATE)
        try:
            with hold(requests_limit, provider), hold(tokens_limit, provider, cost=max(1, tokens)), (
                    telemetry.span(f"LLM {provider}", **{"gen_ai.request.model": call["model"]})
                    if telemetry.ACTIVE else telemetry.NO_SPAN):
                response = litellm.completion(messages=messages, timeout=self.timeout, num_retries=0, **call)
        except Postponed:
            raise
        except Exception as exc:
            raise llm_error(exc) from None
        data = parse_json_object(response.choices[0].message.content)
        usage = getattr(response, "usage", None)
        return Completion(data=data, prompt_tokens=int(getattr(usage, "prompt_tokens", 0) or 0),
                          completion_tokens=int(getattr(usage, "completion_tokens", 0) or 0),
                          cost_usd=_cost(litellm, response), model=call["model"])

    def call_arguments(self, litellm: ModuleType, model: str) -> dict[str, Any]:
        """``model`` (and endpoint) for litellm, plus ``response_format`` where the model supports it."""
        call: dict[str, Any] = {"model": model}
        if self.settings.llm_api_base:
            call = {"model": "openai/" + model.partition("/")[2], "api_base": self.settings.llm_api_base,
                    "api_key": os.environ.get("OPENAI_API_KEY") or PLACEHOLDER_KEY}
        provider, _, name = call["model"].partition("/")
        try:
            supported = litellm.get_supported_openai_params(model=name, custom_llm_provider=provider) or []
        except Exception:  # an unknown provider: let the call itself report it
            supported = []
        if "response_format" in supported:
            call["response_format"] = {"type": "json_object"}
        return call


def _cost(litellm: ModuleType, response: Any) -> float:
    """The call's cost in USD from litellm's bundled price map; 0.0 for models it does not price."""
    try:
        return float(litellm.completion_cost(completion_response=response) or 0.0)
    except Exception:
        return 0.0


@hookimpl(trylast=True)
def register_integrations(register: Register, settings: Settings) -> None:
    register(LiteLLM(settings))
