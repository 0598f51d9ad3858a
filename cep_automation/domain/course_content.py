"""Course data and Meta ad copy from a course PDF's text: prompts, and the checks the answer must pass."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError, field_validator

from cep_automation.errors import PermanentError

# Meta's limits for a lead ad (characters).
PRIMARY_TEXT_MAX, HEADLINE_MAX, DESCRIPTION_MAX = 125, 40, 30
_EMAIL = re.compile(r"[\w.%+-]+@[\w.-]+\.[A-Za-z]{2,}")
_PHONE = re.compile(r"(?:\+\d{1,3}[ -]?)?(?:\d[ -]?){9,}")

COURSE_SYSTEM = (
    "You extract structured data from Spanish vocational training course documents. Answer with one JSON "
    "object only, with keys: title (string), objectives (list of strings), modules (list of strings), "
    "hours (number), modality (one of presencial, telematico, semipresencial), requirements (list of strings), "
    "offer_type (one of telematico, ocupados, desempleados, privados)."
)
ADS_SYSTEM = (
    "You write Meta lead ads in Spanish for a training school. Answer with one JSON object only: "
    '{"ads": [{"primary_text": ..., "headline": ..., "description": ...}]} with 3 variants. Limits: '
    f"primary_text at most {PRIMARY_TEXT_MAX} characters, headline at most {HEADLINE_MAX}, description at most "
    f"{DESCRIPTION_MAX}. Never include personal data (names of people, emails, phone numbers)."
)


class CourseData(BaseModel):
    title: str = Field(min_length=3)
    objectives: list[str] = Field(min_length=1)
    modules: list[str] = Field(min_length=1)
    hours: float = Field(gt=0, le=5000)
    modality: Literal["presencial", "telematico", "semipresencial"]
    requirements: list[str] = []
    offer_type: Literal["telematico", "ocupados", "desempleados", "privados"]


class Ad(BaseModel):
    primary_text: str = Field(min_length=1, max_length=PRIMARY_TEXT_MAX)
    headline: str = Field(min_length=1, max_length=HEADLINE_MAX)
    description: str = Field(min_length=1, max_length=DESCRIPTION_MAX)

    @field_validator("primary_text", "headline", "description")
    @classmethod
    def _no_personal_data(cls, value: str) -> str:
        if _EMAIL.search(value) or _PHONE.search(value):
            raise ValueError("contains personal data (an email or a phone number)")
        return value


class AdSet(BaseModel):
    ads: list[Ad] = Field(min_length=1)


def course_prompt(text: str) -> str:
    return f"Course document:\n\n{text}"


def ads_prompt(course: CourseData) -> str:
    return f"Course data:\n{course.model_dump_json()}"


def checked(model: type[BaseModel], data: dict[str, Any], what: str) -> Any:
    """Validate the model's answer; a bad one is a permanent error naming each problem."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or what}: {e['msg']}" for e in exc.errors())
        raise PermanentError(f"{what} from the model is invalid: {problems}") from None
