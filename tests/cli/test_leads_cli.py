"""`cep-automation leads`: the timeline, the status, pause, resume and cancel, and one-line operator errors."""

from __future__ import annotations

import json
import subprocess

from cep_automation.sequences import lifecycle
from cep_automation.testing import CLI


def cli(process_env, *args):
    return subprocess.run([*CLI, "leads", *args], env=process_env(), capture_output=True, text=True, timeout=60)


def test_show_pause_resume_cancel_and_errors(db, process_env):
    lead_id = db.execute("INSERT INTO leads (name, email, phone, consent_at) VALUES ('Ana García', 'ana@example.com',"
                         " '+34600123456', now()) RETURNING id::text").fetchone()["id"]
    with db.transaction():
        lifecycle.enter(db, lead_id, "nurture")
    shown = cli(process_env, "show", lead_id)
    assert shown.returncode == 0, shown.stderr
    assert "nurture: active" in shown.stdout and "nurture/course_details (email): due" in shown.stdout
    assert "ana@example.com" not in shown.stdout
    assert cli(process_env, "pause", lead_id).stdout.strip().endswith("1 sequence(s) paused")
    paused = cli(process_env, "pause", lead_id)
    assert paused.returncode == 2 and "has no active sequence" in paused.stderr
    assert "1 sequence(s) resumed" in cli(process_env, "resume", lead_id).stdout
    assert "3 pending step(s) cancelled" in cli(process_env, "status", lead_id, "enrolled").stdout
    timeline = json.loads(cli(process_env, "show", lead_id, "--json").stdout)
    assert timeline["sequences"][0]["exit_cause"] == "enrolled"
    assert {s["status"] for s in timeline["steps"]} == {"cancelled"}
    bad = cli(process_env, "show", "12")
    assert bad.returncode == 2 and bad.stderr.strip() == "error: '12' is not a lead id (lead ids are UUIDs)"
    unknown = cli(process_env, "cancel", lead_id, "--sequence", "drip")
    assert unknown.returncode == 2 and "no sequence 'drip'" in unknown.stderr
