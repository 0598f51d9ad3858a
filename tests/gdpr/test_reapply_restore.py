"""After a restore from a backup taken before an erasure, ``gdpr reapply`` erases the person again
(real pg_dump -Fc and pg_restore --clean of the session database)."""

from __future__ import annotations

import json
import subprocess

from gdprkit import EMAIL, NAME, pg_dump_text, run_all

from cep_automation.actors.gdpr import request_erasure
from cep_automation.db.pool import close_pool
from cep_automation.testing.processes import CLI


def test_reapply_after_pg_restore_erases_the_person_again(person, db, sandbox, stub_broker, stub_worker, tmp_path,
                                                          pg_tools, cep_services, process_env, flush_audit):
    # Given a backup taken while the person was still there
    backup = tmp_path / "before.dump"
    subprocess.run([pg_tools["pg_dump"], "--format=custom", "--no-owner", "--file", str(backup),
                    "--dbname", cep_services.database_url], check=True, timeout=300)
    # and then their erasure
    request = request_erasure("email", EMAIL, via="test")
    run_all(stub_broker, stub_worker)
    flush_audit()  # the jobs' audit rows are written in batches: all of them before the restore, not after it
    assert EMAIL.lower() not in pg_dump_text(pg_tools, cep_services.database_url).lower()

    # When the backup is restored, the person is back (and the erasure record is gone with the restore)
    close_pool()
    subprocess.run([pg_tools["pg_restore"], "--clean", "--if-exists", "--no-owner", "--single-transaction",
                    "--dbname", cep_services.database_url, str(backup)], check=True, timeout=300,
                   capture_output=True)
    restored = pg_dump_text(pg_tools, cep_services.database_url)
    assert EMAIL.lower() in restored.lower() and request.erasure_id not in restored

    # Then `cep-automation gdpr reapply` erases them again from the journal, and restores the record
    out = subprocess.run([*CLI, "gdpr", "reapply"], env=process_env(), capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["records_restored"] == 1 and report["leads_found"] == 2
    after = pg_dump_text(pg_tools, cep_services.database_url)
    assert EMAIL.lower() not in after.lower() and NAME not in after and request.erasure_id in after
    # and once more changes nothing
    again = json.loads(subprocess.run([*CLI, "gdpr", "reapply"], env=process_env(), capture_output=True, text=True,
                                      timeout=120, check=True).stdout)
    assert again["records_restored"] == 0 and again["leads_found"] == 0
