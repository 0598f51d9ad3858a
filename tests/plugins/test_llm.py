"""The litellm integration against a fake OpenAI-compatible server: JSON answers, usage and cost, aliases,
error classes, rate limits, timeouts and the disabled reason."""

from __future__ import annotations

import sys

import pytest

from cep_automation.dev.embedded import free_port
from cep_automation.errors import PermanentError, TransientError
from cep_automation.plugins import llm
from cep_automation.plugins.llm import MODEL_ALIASES, LiteLLM
from cep_automation.testing.fake_openai import FakeOpenAI

ANSWER = {"title": "Curso de Marketing Digital", "hours": 40, "modules": ["SEO", "SEM"]}


@pytest.fixture(scope="module", autouse=True)
def litellm_imported():
    """Import litellm once for the module (it takes seconds), as the first call would."""
    return llm.import_litellm()


@pytest.fixture(autouse=True)
def no_keys(monkeypatch):
    for name in llm.KEY_VARIABLES:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def fake():
    with FakeOpenAI(ANSWER) as server:
        yield server


@pytest.fixture
def integration(fake, settings_for):
    return LiteLLM(settings_for(llm_api_base=fake.base_url))


def test_answer_is_parsed_with_usage_and_cost(fake, integration):
    completion = integration.complete_json("gpt-4", "Extract the course as JSON.", "Curso de 40 horas: SEO y SEM")
    assert completion.data == ANSWER
    assert completion.prompt_tokens > 0 and completion.completion_tokens > 0
    assert completion.cost_usd > 0  # gpt-4 is in litellm's bundled price map
    assert completion.model == "openai/gpt-4"
    (sent,) = fake.chat_requests
    assert [m["role"] for m in sent["messages"]] == ["system", "user"]
    assert sent["messages"][1]["content"] == "Curso de 40 horas: SEO y SEM"


@pytest.mark.parametrize(("model", "sent_as"), [
    ("gpt-4", "gpt-4"),
    ("claude-sonnet", MODEL_ALIASES["claude-sonnet"].partition("/")[2]),
    ("ollama-llama3", "llama3"),
    ("openai/gpt-4o-mini", "gpt-4o-mini"),
])
def test_aliases_reach_the_endpoint_as_model_names(fake, integration, model, sent_as):
    completion = integration.complete_json(model, "JSON please.", "hola")
    assert fake.chat_requests[-1]["model"] == sent_as
    assert completion.cost_usd >= 0


def test_aliases_resolve_to_litellm_ids():
    assert llm.resolve_model("gpt-4") == "openai/gpt-4"
    assert llm.resolve_model("claude-sonnet").startswith("anthropic/claude-sonnet")
    assert llm.resolve_model("ollama-llama3") == "ollama/llama3"
    assert llm.resolve_model("mistral/mistral-large-latest") == "mistral/mistral-large-latest"


def test_json_mode_is_requested_where_the_model_supports_it(fake, integration):
    integration.complete_json("openai/gpt-4o-mini", "JSON please.", "hola")
    integration.complete_json("gpt-4", "JSON please.", "hola")  # the original gpt-4 has no JSON mode
    json_mode, plain = fake.chat_requests
    assert json_mode["response_format"] == {"type": "json_object"}
    assert "response_format" not in plain


def test_unknown_alias_is_permanent_and_lists_the_aliases(fake, integration):
    with pytest.raises(PermanentError, match="gpt-4, claude-sonnet, ollama-llama3"):
        integration.complete_json("gpt-5-turbo-max", "s", "p")
    assert fake.requests == []


def test_invalid_json_is_permanent_with_an_excerpt(fake, integration):
    fake.content = "Claro, aquí tienes el curso: {title: Marketing"
    with pytest.raises(PermanentError, match="answer is not valid JSON: .*Claro, aquí tienes"):
        integration.complete_json("gpt-4", "s", "p")


def test_json_that_is_not_an_object_is_permanent_and_a_code_fence_is_tolerated(fake, integration):
    fake.content = "[1, 2]"
    with pytest.raises(PermanentError, match="not an object"):
        integration.complete_json("gpt-4", "s", "p")
    fake.content = '```json\n{"ok": 1}\n```'
    assert integration.complete_json("gpt-4", "s", "p").data == {"ok": 1}


def test_rate_limit_is_transient_with_retry_after_and_not_retried_by_litellm(fake, integration):
    fake.fail_with("rate_limit_exceeded", retry_after="7", times=3)
    with pytest.raises(TransientError, match="Rate limit") as error:
        integration.complete_json("gpt-4", "s", "p")
    assert error.value.retry_after == 7
    assert len(fake.requests) == 1  # our Retries middleware retries, not litellm


def test_server_error_is_transient(fake, integration):
    fake.fail_with("server_error")
    with pytest.raises(TransientError):
        integration.complete_json("gpt-4", "s", "p")


def test_invalid_key_is_permanent_and_the_key_is_masked(fake, integration):
    fake.fail_with("invalid_api_key")
    with pytest.raises(PermanentError, match="Incorrect API key") as error:
        integration.complete_json("gpt-4", "s", "p")
    assert "cdef" not in str(error.value)


@pytest.mark.parametrize("code", ["model_not_found", "context_length_exceeded"])
def test_unknown_model_and_context_too_long_are_permanent(fake, integration, code):
    fake.fail_with(code)
    with pytest.raises(PermanentError):
        integration.complete_json("gpt-4", "s", "p")


def test_timeout_is_transient(fake, settings_for):
    fake.delay_next(3.0)
    with pytest.raises(TransientError, match="(?i)timed out"):
        LiteLLM(settings_for(llm_api_base=fake.base_url), timeout=0.5).complete_json("gpt-4", "s", "p")


def test_unreachable_endpoint_is_transient(settings_for):
    integration = LiteLLM(settings_for(llm_api_base=f"http://127.0.0.1:{free_port()}/v1"), timeout=5)
    with pytest.raises(TransientError):
        integration.complete_json("gpt-4", "s", "p")


def test_api_base_gets_the_openai_key_or_a_placeholder(fake, integration, monkeypatch):
    integration.complete_json("gpt-4", "s", "p")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-key-123")
    integration.complete_json("gpt-4", "s", "p")
    assert [r.headers["authorization"] for r in fake.requests] == [
        f"Bearer {llm.PLACEHOLDER_KEY}", "Bearer sk-test-key-123"]


def test_disabled_without_keys_or_endpoint(settings_for, monkeypatch):
    integration = LiteLLM(settings_for())
    reason = integration.disabled_reason()
    assert not integration.enabled
    assert "OPENAI_API_KEY" in reason and "ANTHROPIC_API_KEY" in reason and "LLM_API_BASE" in reason
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test")
    assert integration.enabled
    assert LiteLLM(settings_for(llm_api_base="http://127.0.0.1:1/v1")).enabled


def test_missing_litellm_names_the_extra(integration, monkeypatch):
    monkeypatch.setitem(sys.modules, "litellm", None)  # as if it were not installed
    with pytest.raises(PermanentError, match=r"pip install 'cep-automation\[llm\]'"):
        integration.complete_json("gpt-4", "s", "p")


def test_plugin_registers_the_integration(settings_for):
    registered = []
    llm.register_integrations(register=registered.append, settings=settings_for())
    assert [(i.kind, i.name) for i in registered] == [("llm", "litellm")]


def test_tokens_per_minute_are_shared_and_a_call_over_them_postpones_the_job(fake, settings_for, redis_client):
    from cep_automation.errors import Postponed

    limited = LiteLLM(settings_for(llm_api_base=fake.base_url, llm_tokens_per_minute=1_500), limit_wait_s=0)
    limited.complete_json("gpt-4", "JSON please.", "hola")  # about 1,000 tokens counted: within the minute's 1,500
    with pytest.raises(Postponed, match=r"llm.tokens openai: over its limit \(1500 per 60 s\)") as error:
        limited.complete_json("gpt-4", "JSON please.", "hola otra vez")
    assert 0 < error.value.retry_after <= 60
    assert len(fake.chat_requests) == 1  # the second call never reached the provider
