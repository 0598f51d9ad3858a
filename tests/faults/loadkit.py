"""The load of the fault tests: leads in PostgreSQL, a plain producer, and what became of each lead.

"What became of it" is read from both ends: the requests the fake APIs acted on (:func:`effects_at_fakes`)
and PostgreSQL's effects ledger, audit log and dead letters (:func:`read_ledger`). Nothing here asserts.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import psycopg
from dramatiq import Message
from dramatiq.brokers.redis import RedisBroker
from psycopg.rows import dict_row

from cep_automation.testing.sandbox import LIST_ID

ADVISOR_TEMPLATE = "lead_advisor_notice"
STEPS = ("mailchimp", "whatsapp_lead", "confirmation_email", "whatsapp_advisor", "crm:webhook", "live_stats",
         "sequences")


@dataclass(frozen=True)
class Lead:
    """One test lead with consent and a campus: every step of ``lead.created`` does real work for it."""

    id: str
    name: str
    email: str
    phone: str
    advisor_phone: str

    @property
    def wa_id(self) -> str:
        return re.sub(r"\D", "", self.phone)


def insert_leads(conn: psycopg.Connection[Any], count: int, campuses: int = 3) -> list[Lead]:
    """``count`` leads spread over ``campuses`` campuses (each with its advisor), with unique names and contacts."""
    tag = secrets.token_hex(3)
    base = 10_000_000 + secrets.randbelow(80_000_000)
    runs = []
    for i in range(campuses):
        advisor = f"+3469{(base + i) % 10_000_000:07d}"
        campus = conn.execute("INSERT INTO campuses (name, advisor_phone) VALUES (%s, %s) RETURNING id",
                              (f"Campus {tag} {i}", advisor)).fetchone()["id"]
        course = conn.execute("INSERT INTO courses (title, offer_type) VALUES (%s, %s) RETURNING id",
                              (f"Curso {i}", ("ocupados", "desempleados", "privados")[i % 3])).fetchone()["id"]
        run = conn.execute("INSERT INTO course_runs (course_id, campus_id) VALUES (%s, %s) RETURNING id",
                           (course, campus)).fetchone()["id"]
        runs.append((run, advisor))
    leads = []
    for i in range(count):
        run, advisor = runs[i % campuses]
        name, email, phone = f"Lead {tag} {i:03d}", f"lead{i:03d}.{tag}@example.com", f"+346{(base + i):08d}"
        lead_id = conn.execute(
            "INSERT INTO leads (name, email, phone, source, course_run_id, consent_at)"
            " VALUES (%s, %s, %s, 'web', %s, now()) RETURNING id::text", (name, email, phone, run)).fetchone()["id"]
        leads.append(Lead(lead_id, name, email, phone, advisor))
    return leads


class Producer:
    """A plain ``RedisBroker`` (no middleware) that sends ``lead.created`` as any producer would."""

    def __init__(self, redis_url: str, namespace: str) -> None:
        self.broker = RedisBroker(url=redis_url, namespace=namespace, middleware=[], maintenance_chance=0)

    def send(self, actor: str, queue: str = "leads", **kwargs: Any) -> Message[Any]:
        options = {"idempotency_key": f"{actor}:{kwargs['lead_id']}"} if "lead_id" in kwargs else {}
        return self.broker.enqueue(Message(queue_name=queue, actor_name=actor, args=(), kwargs=kwargs,
                                           options=options))

    def send_leads(self, leads: Iterable[Lead]) -> dict[str, str]:
        """Lead id → message id."""
        return {lead.id: self.send("lead.created", lead_id=lead.id).message_id for lead in leads}

    def close(self) -> None:
        self.broker.close()


@dataclass
class Effects:
    """What the fakes received, per lead."""

    whatsapp_lead: Counter[str] = field(default_factory=Counter)  # lead id → accepted messages to the lead
    whatsapp_advisor: Counter[str] = field(default_factory=Counter)  # lead id → accepted notices to its advisor
    emails: Counter[str] = field(default_factory=Counter)  # lead id → Mandrill messages
    crm_posts: Counter[str] = field(default_factory=Counter)  # lead id → CRM webhook deliveries received
    members: set[str] = field(default_factory=set)  # lead ids with a Mailchimp member

    def of(self, lead: Lead) -> tuple[int, int, int, int, bool]:
        return (self.whatsapp_lead[lead.id], self.whatsapp_advisor[lead.id], self.emails[lead.id],
                self.crm_posts[lead.id], lead.id in self.members)


def effects_at_fakes(sandbox: Any, leads: list[Lead]) -> Effects:
    by_wa = {lead.wa_id: lead.id for lead in leads}
    by_name = {lead.name: lead.id for lead in leads}
    by_email = {lead.email.lower(): lead.id for lead in leads}
    lead_ids = {lead.id for lead in leads}
    seen = Effects()
    for message in list(sandbox.whatsapp.messages):
        if message["template"] == ADVISOR_TEMPLATE and message["params"][0] in by_name:
            seen.whatsapp_advisor[by_name[message["params"][0]]] += 1
        elif message["to"] in by_wa:
            seen.whatsapp_lead[by_wa[message["to"]]] += 1
    for sent in list(sandbox.mandrill.sent):
        for to in sent["message"]["to"]:
            if to["email"].lower() in by_email:
                seen.emails[by_email[to["email"].lower()]] += 1
    for request in list(sandbox.crm.requests):
        external = (request.json or {}).get("external_id") if request.method == "POST" else None
        if external in lead_ids:
            seen.crm_posts[external] += 1
    members = sandbox.mailchimp.members[LIST_ID]
    seen.members = {lead.id for lead in leads if hashlib.md5(lead.email.encode()).hexdigest() in members}
    return seen


@dataclass
class Ledger:
    """What PostgreSQL says about each lead: steps in the effects ledger, audit rows, dead letters."""

    steps: dict[str, set[str]]  # lead id → recorded steps
    audit: dict[str, list[dict[str, Any]]]  # lead id → audit rows in order
    letters: dict[str, dict[str, Any]]  # message id → dead letter

    def completed(self, lead: Lead) -> int:
        """How many ``completed`` audit rows the lead's job has."""
        return sum(1 for row in self.audit.get(lead.id, []) if row["status"] == "completed")

    def finished(self, lead: Lead) -> bool:
        """Completed by the audit log, or by the effects ledger: a worker killed right after a job completes
        takes the audit rows it had not written yet with it (they are written in batches)."""
        return bool(self.completed(lead)) or self.steps[lead.id] >= set(STEPS)


def read_ledger(database_url: str, leads: list[Lead]) -> Ledger:
    ids = [lead.id for lead in leads]
    with psycopg.connect(database_url, row_factory=dict_row, connect_timeout=5) as conn:
        steps: dict[str, set[str]] = {lead_id: set() for lead_id in ids}
        for row in conn.execute("SELECT job_key, step FROM effects WHERE job_key = ANY(%s)",
                                ([f"lead.created:{i}" for i in ids],)):
            steps[row["job_key"].partition(":")[2]].add(row["step"])
        audit: dict[str, list[dict[str, Any]]] = {}
        for row in conn.execute("SELECT entity_id, message_id, status, attempt, metadata FROM audit_log"
                                " WHERE action = 'lead.automated' AND entity_id = ANY(%s) ORDER BY id", (ids,)):
            audit.setdefault(row["entity_id"], []).append(row)
        letters = {row["message_id"]: row for row in conn.execute(
            "SELECT * FROM dead_letters WHERE actor = 'lead.created' AND payload->'kwargs'->>'lead_id' = ANY(%s)",
            (ids,))}
    return Ledger(steps, audit, letters)


def settled(database_url: str, leads: list[Lead], messages: dict[str, str]) -> Ledger | None:
    """The ledger once every lead has a ``completed`` audit row or a dead letter; None before that."""
    ledger = read_ledger(database_url, leads)
    return ledger if not unsettled(ledger, leads, messages) else None


def unsettled(ledger: Ledger, leads: list[Lead], messages: dict[str, str], *, audited: bool = True) -> list[Lead]:
    """Leads neither completed nor dead-lettered (yet, or for good: lost). ``audited=False`` takes the effects
    ledger's word for completion when a killed worker took the audit row along."""
    done = ledger.completed if audited else ledger.finished
    return [lead for lead in leads if not done(lead) and messages[lead.id] not in ledger.letters]


def stories(ledger: Ledger, leads: list[Lead], messages: dict[str, str]) -> list[str]:
    """What PostgreSQL knows of each lead, one line each: audit statuses, dead letter, steps done."""
    lines = []
    for lead in leads:
        rows = ledger.audit.get(lead.id, [])
        audit = ", ".join(f"{row['status']}#{row['attempt']}" for row in rows) or "no audit row"
        letter = ledger.letters.get(messages[lead.id])
        dead = f"dead letter {letter['error_type']}" if letter else "no dead letter"
        lines.append(f"message {messages[lead.id]}: {audit}; {dead}; steps {sorted(ledger.steps[lead.id])}")
    return lines


def states_completed(leads: list[Lead], messages: dict[str, str], *, timeout: float = 10) -> bool:
    """Wait until every lead's job state says "completed"; fails past ``timeout``. Job state and audit rows go in
    batches of their own (records/state_writer.py, records/audit.py), so a job's state may land a moment after its
    audit row: a state still "active" past ``timeout`` is a job state lost."""
    from cep_automation.records import job_state
    from cep_automation.testing import wait_for

    return wait_for(lambda: all(job_state.get_job(messages[lead.id]).state == "completed" for lead in leads),
                    timeout=timeout, what='every job state to say "completed"')


def broker_holds_nothing(redis_client: Any, namespace: str) -> bool:
    """No message of the lead queues is left anywhere in Redis: queued, delayed, fetched, or in the DLQ spool."""
    pending = [f"{namespace}:leads.msgs", f"{namespace}:leads.DQ.msgs"]
    return not any(redis_client.hlen(name) for name in pending) and not redis_client.llen(f"{namespace}:dlq:spool")


def wait_settled(database_url: str, leads: list[Lead], messages: dict[str, str], redis_client: Any, namespace: str,
                 *, timeout: float = 180, idle_s: float = 10, poke: Callable[[], Any] | None = None,
                 audited: bool = True, broker_empty: Callable[[], bool] | None = None) -> Ledger:
    """Wait until every lead is completed or dead-lettered, or until the broker has held no message of them for
    ``idle_s`` (what is still unsettled then is lost: the test's asserts say so without waiting the timeout).
    ``poke`` runs at each poll (e.g. the janitor that requeues a dead worker's messages); ``broker_empty`` says
    whether the broker holds none (default: the Redis broker's queues and the dead-letter spool)."""
    deadline, idle_since = time.monotonic() + timeout, None
    while True:
        if poke is not None:
            poke()
        ledger = read_ledger(database_url, leads)
        if not unsettled(ledger, leads, messages, audited=audited) or time.monotonic() > deadline:
            return ledger
        if broker_empty() if broker_empty is not None else broker_holds_nothing(redis_client, namespace):
            idle_since = idle_since or time.monotonic()
            if time.monotonic() - idle_since > idle_s:
                return ledger
        else:
            idle_since = None
        time.sleep(0.2)


def live_count(redis_client: Any, namespace: str) -> int:
    """The live counter (leads per campus and day) summed over every day and campus."""
    total = 0
    for name in redis_client.scan_iter(match=f"{namespace}:stats:live:*"):
        total += sum(int(v) for v in redis_client.hgetall(name).values())
    return total
