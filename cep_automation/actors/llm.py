"""``llm.ingest``: a course PDF → structured course data and Meta ad copy, stored on the upload."""

from __future__ import annotations

import uuid
from typing import Any

from psycopg.types.json import Jsonb
from pydantic import BaseModel

from cep_automation.db import connection
from cep_automation.domain import course_content
from cep_automation.domain.pdf import parse_pdf
from cep_automation.errors import PermanentError, Postponed
from cep_automation.plugins.kinds import LLM, Completion
from cep_automation.runtime import integrations, spend
from cep_automation.runtime.actor import job
from cep_automation.runtime.job import JobHandle, current_job, is_last_attempt
from cep_automation.settings import get_settings


class LLMIngestPayload(BaseModel):
    upload_id: uuid.UUID
    course_id: int | None = None
    model: str | None = None


def set_upload(upload_id: str, **fields: Any) -> None:
    """Update the upload record (status, result, error, tokens, cost, model)."""
    if "result" in fields:
        fields["result"] = Jsonb(fields["result"])
    columns = ", ".join(f"{name} = %({name})s" for name in fields)
    with connection() as conn:
        conn.execute(f"UPDATE uploads SET {columns}, updated_at = now() WHERE id = %(id)s",  # names are ours
                     {**fields, "id": upload_id})



def ask(llm: LLM, model: str, system: str, prompt: str, handle: JobHandle) -> Completion:
    """One LLM call within the daily caps: checked before, charged as soon as it answers."""
    spend.check(kind=spend.LLM)
    answer = llm.complete_json(model, system, prompt)
    provider = answer.model.partition("/")[0] if "/" in answer.model else llm.name
    spend.charge(provider, answer.model, kind=spend.LLM, usd=answer.cost_usd,
                 tokens=answer.prompt_tokens + answer.completion_tokens, job="llm.ingest", message_id=handle.message_id)
    return answer


def ingest(upload: dict[str, Any], model: str, handle: JobHandle) -> dict[str, Any]:
    llm = integrations.require(LLM, doing="ask a language model")
    spend.check(kind=spend.LLM)  # before parsing: a job over the cap waits without doing any work
    parsed = parse_pdf(upload["file_path"])
    handle.log(f"PDF parsed: {parsed.pages} pages, {len(parsed.text)} characters, {parsed.tables} tables")
    handle.progress(30)
    first = ask(llm, model, course_content.COURSE_SYSTEM, course_content.course_prompt(parsed.text), handle)
    course = course_content.checked(course_content.CourseData, first.data, "course data")
    handle.progress(60)
    second = ask(llm, model, course_content.ADS_SYSTEM, course_content.ads_prompt(course), handle)
    ads = course_content.checked(course_content.AdSet, second.data, "ad copy")
    handle.progress(80)
    return {"course": course.model_dump(), "ads": ads.model_dump()["ads"], "pages": parsed.pages,
            "tokens": sum(c.prompt_tokens + c.completion_tokens for c in (first, second)),
            "cost_usd": round(first.cost_usd + second.cost_usd, 6)}


def ingest_key(payload: dict[str, Any]) -> str:
    """One run per upload and model: asking again with another model is a new job."""
    return f"llm.ingest:{payload['upload_id']}:{payload.get('model') or 'default'}"


@job("llm.ingest", schema=LLMIngestPayload, idempotency_key=ingest_key)
def llm_ingest(upload_id: str, course_id: int | None = None, model: str | None = None) -> dict[str, Any]:
    """Extract course data and ads from an uploaded PDF; errors are written on the upload."""
    handle = current_job()
    with connection() as conn:
        upload = conn.execute("SELECT id::text, file_path, status FROM uploads WHERE id = %s",
                              (str(upload_id),)).fetchone()
    if upload is None:
        raise PermanentError(f"upload {upload_id} not found")
    model = model or get_settings().llm_default_model
    set_upload(upload["id"], status="processing", model=model, error=None)
    handle.progress(10)
    try:
        result = ingest(upload, model, handle)
    except Postponed as exc:  # waiting (a daily cap, a provider's rate) is not failing
        set_upload(upload["id"], status="processing", error=f"waiting: {exc}")
        raise
    except Exception as exc:
        final = isinstance(exc, PermanentError) or is_last_attempt()
        set_upload(upload["id"], status="failed" if final else "processing",
                   error=str(exc) if final else f"attempt failed, retrying: {exc}")
        raise
    set_upload(upload["id"], status="completed", result={"course": result["course"], "ads": result["ads"]},
               tokens_used=result["tokens"], cost_usd=result["cost_usd"], error=None)
    if course_id is not None:
        result["course_id"] = course_id
    handle.progress(100)
    return result
