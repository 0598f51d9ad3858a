"""Log output through loguru: JSON lines with the job's fields, standard logging routed, nothing unmasked."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid

from cep_automation.testing import wait_for

EMAIL, PHONE = "ana.garcia@example.com", "+34600123456"

LOG_EVERY_WAY = f"""
import logging
from cep_automation.actors import broker
from loguru import logger
logging.getLogger("cep_automation.somewhere").warning("lead %s called from %s", "{EMAIL}", "{PHONE}")
logger.bind(note="{EMAIL}").info("direct {{}}", "{PHONE}")
try:
    raise ValueError("no such contact {EMAIL}")
except ValueError:
    logging.getLogger("dramatiq.somewhere").exception("failed for {EMAIL}")
try:
    raise ValueError("loguru {EMAIL}")
except ValueError:
    logger.exception("caught")
"""


def json_lines(text):
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def test_json_lines_are_masked_whichever_way_they_are_logged(process_env):
    done = subprocess.run([sys.executable, "-c", LOG_EVERY_WAY], env=process_env(CEP_LOG_JSON="1"),
                          capture_output=True, text=True, timeout=120, check=True)
    assert EMAIL not in done.stderr and PHONE not in done.stderr and "ana.garcia" not in done.stderr
    lines = json_lines(done.stderr)
    assert len(lines) == len(done.stderr.strip().splitlines()) == 4  # every line is one JSON object
    ours, direct, routed, caught = lines
    assert ours["logger"] == "cep_automation.somewhere" and ours["level"] == "WARNING"
    assert "a***@example.com" in ours["message"]
    assert direct["note"] == "a***@example.com" and direct["level"] == "INFO"
    assert routed["logger"] == "dramatiq.somewhere" and "Traceback" in routed["message"]
    assert "ValueError" in caught["message"] and "Traceback" in caught["message"]


def test_a_worker_logs_json_with_the_jobs_fields_and_nothing_per_successful_job(process_env, db, redis_client,
                                                                                 tmp_path):
    env = process_env(CEP_LOG_JSON="1")
    log = tmp_path / "worker.log"
    with log.open("wb") as out:
        worker = subprocess.Popen([sys.executable, "-m", "dramatiq", "cep_automation.actors", "--processes", "1",
                                   "--threads", "1", "--queues", "leads", "stats"], env=env, stdout=out, stderr=out)
    try:
        send = ("import sys; from cep_automation.actors import broker; from cep_automation.runtime.enqueue import"
                " enqueue; print(enqueue('lead.created', {'lead_id': sys.argv[1]}).message_id);"
                " print(enqueue('stats.rollup', {'date': '2026-11-10'}).message_id)")
        sent = subprocess.run([sys.executable, "-c", send, str(uuid.uuid4())], env=env, capture_output=True, text=True,
                              timeout=120, check=True).stdout.split()
        failing, fine = sent
        wait_for(lambda: db.execute("SELECT count(*) AS n FROM audit_log").fetchone()["n"] >= 2, what="both ran")
        lines = wait_for(lambda: [line for line in json_lines(log.read_text()) if line.get("message_id") == failing],
                         what="a line about the failing job")
        assert {(line["job"], line["queue"], line["attempt"]) for line in lines} == {("lead.created", "leads", 1)}
        every = json_lines(log.read_text())
        assert any(line["logger"].startswith("dramatiq.") for line in every)  # Dramatiq's own logging, routed
        assert not [line for line in every if line.get("message_id") == fine]  # no line per successful job
    finally:
        worker.terminate()
        worker.wait(timeout=30)


def test_each_line_carries_the_fields_of_its_own_delivery_and_step(capsys):
    """The fields are kept per thread between lines: a new step, a new delivery or a field a line binds itself
    must still show, and the attempt stays the one first seen for the delivery."""
    import logging

    import dramatiq
    from dramatiq.middleware import CurrentMessage

    from cep_automation import log_output

    log_output.configure(as_json=False)
    log = logging.getLogger("cep_automation.fields_test")
    log.setLevel(logging.INFO)
    first = dramatiq.Message(queue_name="leads", actor_name="lead.created", args=(), kwargs={}, options={})
    second = dramatiq.Message(queue_name="stats", actor_name="stats.rollup", args=(), kwargs={},
                              options={"retries": 2})
    try:
        CurrentMessage._MESSAGE.set(first)
        with log_output.step_context("mailchimp"):
            log.info("one")
        first.options["retries"] = 1  # the retry logic counted the failure: this delivery's lines keep attempt 1
        with log_output.step_context("whatsapp_lead"):
            log.info("two")
            log_output.logger.bind(step="own").info("three")
        CurrentMessage._MESSAGE.set(second)
        log.info("four")
    finally:
        CurrentMessage._MESSAGE.set(None)
        log_output.configure(as_json=False)
    lines = {line.split("] ")[-1].split(" | ")[0]: line.split(" | ", 1)[1] for line in capsys.readouterr().err
             .splitlines() if " | message_id=" in line}
    assert lines["one"] == f"message_id={first.message_id} job=lead.created queue=leads attempt=1 step=mailchimp"
    assert lines["two"] == f"message_id={first.message_id} job=lead.created queue=leads attempt=1 step=whatsapp_lead"
    assert lines["three"].endswith("attempt=1 step=own")
    assert lines["four"] == f"message_id={second.message_id} job=stats.rollup queue=stats attempt=3"
