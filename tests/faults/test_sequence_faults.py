"""Sequences through real worker processes, with the faults production meets between and during steps.

Days cannot be waited in a test: ``bring_due`` (cep_automation/testing/sequences.py) moves a step's due time to
now, and ``schedules.release`` is sent as the scheduler would send it. Everything else is the real thing: the
Dramatiq CLI's forked worker processes on a Redis of the test's own (append-only file on), PostgreSQL, and the
fake providers counting what they receive.

In one run: step 1 (an email) is under way in every worker thread when the worker process is killed with -9;
step 2 (a WhatsApp reminder) is in Redis when Redis is killed and restarted, while WhatsApp answers 429 with
``Retry-After``; half the leads then enroll, and step 3 reaches only the other half. Each lead gets each of its
messages exactly once.
"""

from __future__ import annotations

import datetime as dt

import pytest
from faultkit import Gate

from cep_automation.sequences import lifecycle
from cep_automation.testing import wait_for
from cep_automation.testing.sequences import bring_due

pytestmark = pytest.mark.slow
THREADS = 4
SILENT_MS = 5000


def steps_in(db, name: str, status: str) -> int:
    return db.execute("SELECT count(*) AS n FROM sequence_steps WHERE name = %s AND status = %s",
                      (name, status)).fetchone()["n"]


def emails_to(sandbox, template: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for message in list(sandbox.mandrill.sent):
        if message["template_name"] == template:
            email = message["message"]["to"][0]["email"].lower()
            counts[email] = counts.get(email, 0) + 1
    return counts


def whatsapps(sandbox, template: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for message in list(sandbox.whatsapp.messages):
        if message.get("template") == template:
            counts[message["to"]] = counts.get(message["to"], 0) + 1
    return counts


@pytest.mark.parametrize("count", [40, pytest.param(400, marks=pytest.mark.heavy)])
def test_a_sequence_survives_kill_9_a_redis_restart_and_429s_sending_each_step_once(
        count, private_redis, db, sandbox, fault_env, workers, leads, producer, janitor):
    env = fault_env(REDIS_URL=private_redis.url, BROKER_URL=private_redis.url, CEP_MARKETING_HOURS="00:00-24:00",
                    WHATSAPP_RATE_LIMIT="1000")
    load = leads(db, count)
    db.execute("UPDATE course_runs SET starts_on = %s", (dt.date.today() + dt.timedelta(days=30),))
    worker = workers(env, threads=THREADS)
    send = producer(private_redis.url)
    send.send_leads(load)
    wait_for(lambda: db.execute("SELECT count(*) AS n FROM sequence_enrollments WHERE sequence = 'nurture'")
             .fetchone()["n"] == count, timeout=120, what="every lead to enter nurture")
    emails_before = len(sandbox.mandrill.sent)

    # Step 1, email: the worker process is killed with -9 while every thread waits on Mandrill
    for lead in load:
        bring_due(db, lead.id, "course_details")
    gate = Gate(sandbox.mandrill)
    gate.hold()
    send.send("schedules.release")
    wait_for(lambda: gate.held >= THREADS, timeout=60, what="every worker thread to wait on Mandrill")
    worker.kill_worker_process()
    worker.wait(timeout=60)
    gate.release(drop=False)  # Mandrill sends what it received, though nobody waits for the answer
    worker = workers(env, threads=THREADS)
    wait_for(lambda: janitor(SILENT_MS, private_redis.url) or steps_in(db, "course_details", "sent") == count,
             timeout=180, what="every course_details step to be sent")
    assert len(sandbox.mandrill.sent) > emails_before
    details = emails_to(sandbox, "nurture-course-details")
    assert details == {lead.email.lower(): 1 for lead in load}

    # Step 2, WhatsApp: Redis dies with the released steps in it and comes back; WhatsApp answers 429s meanwhile
    for lead in load:
        bring_due(db, lead.id, "whatsapp_reminder")
    sandbox.whatsapp.fail_with_code(130429, 429, times=count // 4, headers={"Retry-After": "1"})
    send.send("schedules.release")
    wait_for(lambda: released(db, "whatsapp_reminder") == count, timeout=60, what="the reminders to reach Redis")
    private_redis.kill()
    private_redis.start()
    wait_for(lambda: janitor(SILENT_MS, private_redis.url) or steps_in(db, "whatsapp_reminder", "sent") == count,
             timeout=240, what="every reminder to be sent")
    reminders = whatsapps(sandbox, "nurture_reminder")
    assert reminders == {lead.wa_id: 1 for lead in load}

    # Half the leads enroll; the last call reaches the others only, once each
    enrolled = load[: count // 2]
    for lead in enrolled:
        db.execute("UPDATE leads SET status = 'enrolled' WHERE id = %s", (lead.id,))
        with db.transaction():
            lifecycle.leave(db, [lead.id], "enrolled")
    for lead in load:
        bring_due(db, lead.id, "last_call")
    send.send("schedules.release")
    wait_for(lambda: steps_in(db, "last_call", "sent") == count - len(enrolled), timeout=120,
             what="the last calls to be sent")
    assert steps_in(db, "last_call", "cancelled") == len(enrolled)
    last = emails_to(sandbox, "nurture-last-call")
    assert last == {lead.email.lower(): 1 for lead in load[count // 2:]}
    assert db.execute("SELECT count(*) AS n FROM sequence_enrollments WHERE sequence = 'nurture'"
                      " AND status = 'completed'").fetchone()["n"] == count - len(enrolled)
    assert db.execute("SELECT count(*) AS n FROM dead_letters").fetchone()["n"] == 0


def released(db, name: str) -> int:
    return db.execute("SELECT count(*) AS n FROM scheduled_jobs j JOIN sequence_steps s ON s.message_id = j.message_id"
                      " WHERE s.name = %s AND j.status = 'released'", (name,)).fetchone()["n"]
