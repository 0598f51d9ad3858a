"""Sequences declared as data: a TOML file the school edits, validated at start-up with every problem listed.

A sequence is a named list of steps. Each step waits (``after`` a duration from its base, or ``days`` after it
``at`` a local time), sends through a channel (an email template through Mandrill, a WhatsApp template, a
Mailchimp tag, a notice to the campus advisor, a CRM task), only ``when`` its conditions hold, with parameters
taken from the lead, its course and its run (``{lead.first_name}``, ``{course.title}``, ``{run.starts_on}`` …).
The base of a sequence's waits is the lead's entry, or the start of the course run it asked about.

The shipped file (``default.toml``) holds CEP's ``nurture`` and ``course_start``; ``CEP_SEQUENCES_FILE`` points
to the school's own copy.
"""

from __future__ import annotations

import datetime as dt
import re
import tomllib
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from cep_automation.errors import CepError

DEFAULT_FILE = Path(__file__).with_name("default.toml")
CHANNELS = ("email", "whatsapp", "mailchimp_tag", "advisor_notice", "crm_task")
OFFER_TYPES = ("telematico", "ocupados", "desempleados", "privados")
# What a template parameter may name: nothing else of the lead (no email or phone in a message body).
FIELDS = ("lead.name", "lead.first_name", "course.title", "course.offer_type", "campus.name", "run.starts_on",
          "run.days_to_start")
PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
DURATION = re.compile(r"^\s*(\d+)\s*([smhd])\s*$")
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


class SequenceFileError(CepError):
    """The sequences file is missing, is not TOML, or declares something invalid; the message lists it all."""

    def __init__(self, path: Path, problems: list[str]) -> None:
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"the sequences file {path} has {len(problems)} problem(s):\n{lines}\n"
                         "Fix the file (docs/sequences.md describes it) or unset CEP_SEQUENCES_FILE to use the "
                         "shipped one.")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Wait(Strict):
    """``after = "2d"`` (a duration from the base), or ``days = N`` (negative: before the base) ``at = "10:00"``
    local time."""

    after: str | None = None
    days: int | None = Field(None, ge=-365, le=365)
    at: dt.time | None = None

    @field_validator("after")
    @classmethod
    def _duration(cls, value: str | None) -> str | None:
        if value is not None and not DURATION.match(value):
            raise ValueError("a duration such as 30m, 12h or 2d")
        return value

    @model_validator(mode="after")
    def _one_form(self) -> Wait:
        if (self.after is None) == (self.days is None):
            raise ValueError('give either after = "2d" or days = N (with at = "HH:MM")')
        if self.after is not None and self.at is not None:
            raise ValueError("at goes with days, not with after")
        return self

    def due(self, base: dt.datetime, zone: dt.tzinfo) -> dt.datetime:
        """When the step falls due for a base instant (before quiet hours move it)."""
        if self.after is not None:
            match = DURATION.match(self.after)
            assert match is not None  # checked when the file was read
            return base + dt.timedelta(seconds=int(match.group(1)) * UNITS[match.group(2)])
        assert self.days is not None
        day = base.astimezone(zone).date() + dt.timedelta(days=self.days)
        if self.at is None:
            return base + dt.timedelta(days=self.days)
        return dt.datetime.combine(day, self.at).replace(tzinfo=zone).astimezone(dt.UTC)


class Conditions(Strict):
    """When a step runs; a step whose conditions fail is skipped, saying which."""

    offer_types: tuple[Literal["telematico", "ocupados", "desempleados", "privados"], ...] | None = None
    campuses: tuple[str, ...] | None = None  # campus names; "Telemático" for online runs
    has: tuple[Literal["email", "phone"], ...] = ()
    consent: bool | None = None  # None: required for marketing channels, not for advisor notices or CRM tasks
    before_run_start: bool = False  # only while the lead's course run has not started


class Step(Strict):
    name: str
    wait: Wait
    channel: Literal["email", "whatsapp", "mailchimp_tag", "advisor_notice", "crm_task"]
    template: str | None = None  # Mandrill or WhatsApp template name
    tag: str | None = None  # Mailchimp tag
    title: str | None = None  # CRM task title
    params: dict[str, str] | list[str] = Field(default_factory=dict)
    when: Conditions = Conditions()

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not NAME.match(value):
            raise ValueError("lower-case letters, digits and _, starting with a letter")
        return value

    @model_validator(mode="after")
    def _channel_needs(self) -> Step:
        need = {"email": "template", "whatsapp": "template", "advisor_notice": "template", "mailchimp_tag": "tag",
                "crm_task": "title"}[self.channel]
        if not getattr(self, need):
            raise ValueError(f"a {self.channel} step needs {need}")
        texts = list(self.params.values()) if isinstance(self.params, dict) else list(self.params)
        for text in [*texts, self.title or "", self.tag or ""]:
            for field in PLACEHOLDER.findall(text):
                if field not in FIELDS:
                    raise ValueError(f"unknown parameter {{{field}}}: use one of " + ", ".join(f"{{{f}}}"
                                                                                          for f in FIELDS))
        return self

    @property
    def marketing(self) -> bool:
        """Whether the step contacts the lead for marketing (and so needs consent unless it says otherwise)."""
        return self.channel in ("email", "whatsapp", "mailchimp_tag")

    @property
    def needs_consent(self) -> bool:
        return self.marketing if self.when.consent is None else self.when.consent


class Sequence(Strict):
    name: str
    description: str = ""
    base: Literal["entry", "run_start"] = "entry"
    enter_on: tuple[Literal["lead.created"], ...] = ("lead.created",)  # () : entered by an operator only
    steps: tuple[Step, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_steps(self) -> Sequence:
        names = [step.name for step in self.steps]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise ValueError(f"step names must be unique; repeated: {', '.join(repeated)}")
        return self

    def step(self, name: str) -> Step:
        for step in self.steps:
            if step.name == name:
                return step
        raise KeyError(f"sequence {self.name} has no step {name!r}")


def parse(text: str, path: Path) -> dict[str, Sequence]:
    """The sequences of a file's text; :class:`SequenceFileError` lists every problem with where it is."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SequenceFileError(path, [f"not valid TOML: {exc}"]) from None
    unknown = sorted(set(data) - {"sequences"})
    problems = [f"{name}: not a section (only [sequences.NAME] tables)" for name in unknown]
    tables = data.get("sequences")
    if not isinstance(tables, Mapping) or not tables:
        problems.append("no [sequences.NAME] table: declare at least one sequence")
        raise SequenceFileError(path, problems)
    found: dict[str, Sequence] = {}
    for name, body in tables.items():
        if not NAME.match(name):
            problems.append(f"sequences.{name}: a sequence name is lower-case letters, digits and _")
            continue
        try:
            found[name] = Sequence.model_validate({"name": name, **(body if isinstance(body, Mapping) else {})})
        except ValidationError as exc:
            problems.extend(f"sequences.{name}.{_where(error['loc'], body)}: {error['msg']}"
                            for error in exc.errors())
    if problems:
        raise SequenceFileError(path, problems)
    return found


def _where(location: tuple[int | str, ...], body: Any) -> str:
    """``steps[2] (day5_whatsapp).wait`` rather than ``steps.2.wait``: the step's name helps find it."""
    parts: list[str] = []
    node = body
    for item in location:
        if isinstance(item, int):
            label = f"[{item + 1}]"
            if isinstance(node, list) and item < len(node) and isinstance(node[item], Mapping):
                label += f" ({node[item].get('name', '?')})"
                node = node[item]
            parts[-1:] = [(parts[-1] if parts else "") + label]
            continue
        parts.append(str(item))
        node = node.get(item) if isinstance(node, Mapping) else None
    return ".".join(parts) or "(sequence)"


def load(path: str | Path | None = None) -> dict[str, Sequence]:
    """Read and validate a sequences file (the shipped one when ``path`` is None)."""
    where = Path(path) if path else DEFAULT_FILE
    try:
        text = where.read_text(encoding="utf-8")
    except OSError as exc:
        raise SequenceFileError(where, [f"cannot be read: {exc.strerror or exc}"]) from None
    return parse(text, where)


@lru_cache(maxsize=1)
def configured() -> dict[str, Sequence]:
    """The process's sequences, from ``CEP_SEQUENCES_FILE`` or the shipped file, read once."""
    from cep_automation.settings import get_settings

    return load(get_settings().cep_sequences_file)


def sequence(name: str) -> Sequence:
    """One configured sequence; an unknown name is an operator's error, said as such."""
    found = configured()
    if name not in found:
        raise KeyError(f"no sequence {name!r}: the sequences are {', '.join(sorted(found))}")
    return found[name]
