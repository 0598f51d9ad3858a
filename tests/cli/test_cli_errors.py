"""Operator mistakes get one clear message and exit code 2, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from cep_automation.testing import CLI


def run(args, env_changes, cwd=None):
    env = {k: v for k, v in os.environ.items()}
    for name, value in env_changes.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return subprocess.run([*CLI, *args], env=env, capture_output=True, text=True, timeout=60, cwd=cwd)


def assert_clean_error(result, *expected):
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    for text in expected:
        assert text in result.stderr


def test_missing_settings_are_listed(cep_services, tmp_path):
    result = run(["worker", "automation"], {"REDIS_URL": None, "DATABASE_URL": None}, cwd=tmp_path)
    assert_clean_error(result, "2 setting problem(s)", "REDIS_URL is not set", "DATABASE_URL is not set")


def test_unreachable_redis(cep_services):
    result = run(["worker", "automation"], {"REDIS_URL": "redis://127.0.0.1:1/0"})
    assert_clean_error(result, "Redis is unreachable at redis://127.0.0.1:1/0")


def test_unreachable_postgres_without_leaking_the_password(cep_services):
    result = run(["db", "migrate"], {"DATABASE_URL": "postgresql://cep:hunter2@127.0.0.1:1/cep"})
    assert_clean_error(result, "PostgreSQL is unreachable at 127.0.0.1:1/cep")
    assert "hunter2" not in result.stderr


def test_unknown_job(cep_services):
    result = run(["enqueue", "lead.exploded"], {})
    assert_clean_error(result, "unknown job 'lead.exploded'", "known jobs:", "stats.rollup")


@pytest.mark.parametrize("args, expected", [
    (["enqueue", "stats.rollup", "colour=blue"], "does not take this payload"),
    (["enqueue", "stats.rollup", "oops"], "is not NAME=VALUE"),
    (["enqueue", "stats.rollup", "--json", "{nope"], "not valid JSON"),
    (["enqueue", "stats.rollup", "--priority", "urgent"], "--priority 'urgent' is not a whole number from 0"),
    (["enqueue", "stats.rollup", "--priority", "101"], "--priority '101' is not a whole number from 0"),
    (["enqueue", "stats.rollup", "--ordering-key", "a b"], "--ordering-key 'a b' must be 1 to 200 printable"),
    (["enqueue", "stats.rollup", "--ordering-key", "a", "--fairness-key", "b"],
     "give --ordering-key or --fairness-key, not both"),
])
def test_bad_enqueue_arguments(cep_services, args, expected):
    assert_clean_error(run(args, {}), expected)


def test_dramatiq_cli_with_bad_settings_prints_the_problem(cep_services, tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL")}
    result = subprocess.run([sys.executable, "-m", "dramatiq", "cep_automation.actors", "--processes", "1"],
                            env=env, capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert "REDIS_URL is not set" in result.stderr and "Traceback" not in result.stderr


def test_db_migrate_and_status(cep_services):
    result = run(["db", "migrate"], {})
    assert result.returncode == 0 and "database is up to date" in result.stdout
    status = run(["db", "status"], {})
    assert "0001_initial\tapplied" in status.stdout


def test_jobs_show_unknown_id(cep_services):
    result = run(["jobs", "show", "no-such-id"], {})
    assert result.returncode == 1 and "no job 'no-such-id'" in result.stderr
