"""The seam where erasure and consent withdrawal stop a person's pending sequence steps.

Sequences (issue 14) do not exist yet, so there is nothing to cancel and this returns 0. When they land,
this function deletes (or marks cancelled) every step not yet sent for these leads, in the caller's
transaction; ``gdpr.erase`` and ``POST /v1/leads/{id}/consent`` already call it.
"""

from __future__ import annotations

from typing import Any

import psycopg


def cancel_pending_sequence_steps(conn: psycopg.Connection[Any], lead_ids: list[str]) -> int:
    """Cancel the leads' sequence steps that have not run yet; how many were cancelled (none until issue 14)."""
    return 0
