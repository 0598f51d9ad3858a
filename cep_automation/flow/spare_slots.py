"""Concurrency slots a worker process hands from a finished job to its next job of the same bucket.

Taking a slot is a Redis round trip before every job with a concurrency limit; a no-op job behind a limit that
never binds ran at 0.61 of the same job without it. When a job ends while its bucket has room (at most half its
slots were held when it took its own), its slot is kept here instead of being freed, and the next job of that
bucket in this process takes it without asking Redis. The slot stays in Redis's set all along under the first
holder's id, so every process still counts it. A kept slot is handed over only within :data:`HANDOVER_S` of
being taken from Redis, and freed by a background thread once older, so a process never keeps a slot from
others for long, and a bucket near its limit (more than half held) hands nothing over: it behaves as without
this. :data:`HANDOVER_S` is far shorter than the margin a slot's lease has over its job's time limit
(``LEASE_MARGIN_S``), so a handed-over slot's lease still covers the job that takes it.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from dataclasses import dataclass

from cep_automation.flow import concurrency

logger = logging.getLogger("cep_automation.flow.spare_slots")

HANDOVER_S = 2.0


@dataclass(frozen=True)
class Slot:
    """A slot held in Redis under ``holder``, taken at ``taken_at`` (monotonic), with room in its bucket then."""

    name: str
    bucket: str
    holder: str
    taken_at: float
    roomy: bool


def is_roomy(holders: int, most: int) -> bool:
    """Whether a bucket had room enough, when a slot was taken, for the slot to be handed over later."""
    return holders * 2 <= most


class SpareSlots:
    """The slots this process keeps for its next jobs, per (limit, bucket); old ones are freed in the background."""

    def __init__(self) -> None:
        self._spare: dict[tuple[str, str], deque[Slot]] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        os.register_at_fork(after_in_child=self._forget)

    def take(self, name: str, bucket: str) -> Slot | None:
        """A kept slot of this bucket still young enough to hand over, or None (old ones wait for the sweep)."""
        now = time.monotonic()
        with self._lock:
            kept = self._spare.get((name, bucket))
            for index, slot in enumerate(kept or ()):
                if now - slot.taken_at < HANDOVER_S:
                    assert kept is not None
                    del kept[index]
                    return slot
        return None

    def keep(self, slot: Slot) -> bool:
        """Keep ``slot`` for the next job of its bucket; False when it is not to be kept (free it now)."""
        if not slot.roomy or time.monotonic() - slot.taken_at >= HANDOVER_S:
            return False
        with self._lock:
            self._spare.setdefault((slot.name, slot.bucket), deque()).append(slot)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="cep-spare-slots", daemon=True)
                self._thread.start()
        return True

    def free_all(self, *, older_than_s: float = 0.0) -> int:
        """Free the kept slots older than ``older_than_s`` in Redis; how many. A failure leaves them to their lease."""
        now, old = time.monotonic(), []
        with self._lock:
            for bucket, kept in self._spare.items():
                young = deque(slot for slot in kept if now - slot.taken_at < older_than_s)
                old += [slot for slot in kept if now - slot.taken_at >= older_than_s]
                self._spare[bucket] = young
        for slot in old:
            try:
                concurrency.release(slot.name, slot.bucket, slot.holder)
            except Exception as exc:  # the lease frees it
                logger.warning("Slot of %s %s not freed (%s); its lease frees it", slot.name, slot.bucket,
                               type(exc).__name__)
        return len(old)

    def _run(self) -> None:
        while True:
            time.sleep(HANDOVER_S / 2)
            self.free_all(older_than_s=HANDOVER_S)

    def _forget(self) -> None:
        """In a forked child: the parent's slots are the parent's, and its thread is not running here."""
        self._spare, self._lock, self._thread = {}, threading.Lock(), None


__all__ = ["HANDOVER_S", "Slot", "SpareSlots", "is_roomy"]
