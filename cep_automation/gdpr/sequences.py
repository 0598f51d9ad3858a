"""The seam where erasure and consent withdrawal stop a person's pending sequence steps.

``gdpr.erase`` and ``POST /v1/leads/{id}/consent`` call it in their own transaction, so the steps are cancelled
exactly when the erasure or the withdrawal is committed (:func:`cep_automation.sequences.lifecycle.leave`).
"""

from __future__ import annotations

from typing import Any

import psycopg

from cep_automation.sequences import lifecycle


def cancel_pending_sequence_steps(conn: psycopg.Connection[Any], lead_ids: list[str], *,
                                  cause: str = "consent_withdrawn") -> int:
    """End the leads' sequences for ``cause`` and cancel their steps not yet sent; how many were cancelled."""
    return lifecycle.leave(conn, lead_ids, cause)
