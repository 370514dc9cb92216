"""The scheduler's round: the work no webhook delivery sets off by itself.

Reminders fall due with time; a comment can be left pending by a worker that died
between the ledger and the queue; a delivery can sit in the inbox with no drain job
queued for it (Redis failed between the two calls, or the job was lost), or in the
hand of a worker that was killed. Each round puts all of these back in the queue;
every step is safe to repeat.
"""

from __future__ import annotations

from dataclasses import dataclass

from jobs.comments import queue_reminders, requeue_pending
from jobs.inbox import reclaim_abandoned, requeue_failed
from service.runtime import Runtime


@dataclass(frozen=True)
class Round:
    reminders: int
    pending_comments: int
    retried_deliveries: int
    reclaimed_deliveries: int = 0

    def __str__(self) -> str:
        return (f"queued {self.reminders} reminder(s), re-queued {self.pending_comments} "
                f"pending comment(s) and {self.retried_deliveries} failed deliver(ies), "
                f"reclaimed {self.reclaimed_deliveries} deliver(ies) from stopped workers")

    def __bool__(self) -> bool:
        return bool(self.reminders or self.pending_comments or self.retried_deliveries
                    or self.reclaimed_deliveries)


def run_round(runtime: Runtime) -> Round:
    """One round of the scheduler."""
    reclaimed = reclaim_abandoned(runtime)
    return Round(queue_reminders(runtime), requeue_pending(runtime), requeue_failed(runtime),
                 reclaimed)
