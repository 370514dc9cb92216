"""The scheduler's round: the work no webhook delivery sets off by itself.

Reminders fall due with time; a comment can be left pending by a worker that died
between the ledger and the queue; a delivery can sit in the inbox with no drain job
queued for it (Redis failed between the two calls, or the job was lost). Each round
puts all of these back in the queue; every step is safe to repeat.
"""

from __future__ import annotations

from dataclasses import dataclass

from jobs.comments import queue_reminders, requeue_pending
from jobs.inbox import requeue_failed
from service.runtime import Runtime


@dataclass(frozen=True)
class Round:
    reminders: int
    pending_comments: int
    retried_deliveries: int

    def __str__(self) -> str:
        return (f"queued {self.reminders} reminder(s), re-queued {self.pending_comments} "
                f"pending comment(s) and {self.retried_deliveries} failed deliver(ies)")

    def __bool__(self) -> bool:
        return bool(self.reminders or self.pending_comments or self.retried_deliveries)


def run_round(runtime: Runtime) -> Round:
    """One round of the scheduler."""
    return Round(queue_reminders(runtime), requeue_pending(runtime), requeue_failed(runtime))
