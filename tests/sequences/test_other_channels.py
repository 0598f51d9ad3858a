"""The channels the shipped file does not use — a Mailchimp tag, a CRM task, a notice to the campus advisor — from
a school's own sequences file, against the fake providers."""

from __future__ import annotations

import pytest

from cep_automation.actors import lead_created
from cep_automation.runtime.scheduling import release_due
from cep_automation.sequences.definition import configured
from cep_automation.settings import get_settings
from cep_automation.testing.sandbox import LIST_ID
from cep_automation.testing.sequences import bring_due, steps_by_name

SCHOOL = """
[sequences.follow_up]
[[sequences.follow_up.steps]]
name = "tag_interested"
wait = { after = "1d" }
channel = "mailchimp_tag"
tag = "nurture-{course.offer_type}"
[[sequences.follow_up.steps]]
name = "call_task"
wait = { after = "3d" }
channel = "crm_task"
title = "Llamar a {lead.first_name} sobre {course.title}"
[[sequences.follow_up.steps]]
name = "advisor"
wait = { after = "4d" }
channel = "advisor_notice"
template = "advisor_follow_up"
params = ["{lead.name}", "{course.title}"]
"""


@pytest.fixture
def school_file(tmp_path, monkeypatch, always_open):
    path = tmp_path / "school.toml"
    path.write_text(SCHOOL)
    monkeypatch.setenv("CEP_SEQUENCES_FILE", str(path))
    get_settings.cache_clear()
    configured.cache_clear()
    yield
    configured.cache_clear()


def test_tag_task_and_advisor_notice_are_each_sent_once(school_file, db, sandbox, stub_broker, stub_worker,
                                                        make_lead):
    lead_id = make_lead()
    assert lead_created(lead_id)["steps"]["sequences"]["status"] == "success"
    sandbox.crm.fail_server(503, times=1)  # the task's first try fails: retried alone
    for step in ("tag_interested", "call_task", "advisor", None):  # days apart, as in production; then nothing
        if step:
            bring_due(db, lead_id, step)
        release_due()
        stub_broker.join("leads", fail_fast=False)
        stub_worker.join()
    steps = steps_by_name(db, lead_id)
    assert {name: s["status"] for name, s in steps.items()} == {
        "follow_up/tag_interested": "sent", "follow_up/call_task": "sent", "follow_up/advisor": "sent"}
    member = sandbox.mailchimp.member(LIST_ID, "ana@example.com")
    assert "nurture-desempleados" in [tag["name"] for tag in member["tags"]]
    assert [task["task"]["title"] for task in sandbox.crm.tasks.values()] == ["Llamar a Ana sobre Excel avanzado"]
    assert sandbox.crm.task_posts == 1 and steps["follow_up/call_task"]["attempts"] == 2  # the 503 was not a task
    assert len([m for m in sandbox.mailchimp.requests if m.path.endswith("/tags")]) == 2  # lead.created's, the step
    notices = [m for m in sandbox.whatsapp.messages if m.get("template") == "advisor_follow_up"]
    assert len(notices) == 1 and notices[0]["to"] == "34699000002"
    assert notices[0]["params"] == ["Ana García", "Excel avanzado"]
