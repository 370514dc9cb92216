"""The scheduler's round: the work no webhook delivery sets off by itself.

Reminders fall due with time; a comment can be left pending by a worker that died
between the ledger and the queue; a delivery can sit in the inbox with no drain job
queued for it (Redis failed between the two calls, or the job was lost), or in the
hand of a worker that was killed. Each round puts all of these back in the queue;
every step is safe to repeat. Once every ``LEADERLEADER_RECONCILE_SECONDS`` (hourly by
default) a round also reconciles the ledger with Jira (``jobs.reconcile``); with
several schedulers, only one of them does. Every ``FOLD_SECONDS`` one round folds the
report's tallies (``ledger.tallies``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from connector.errors import JiraError, TransientJiraError
from jobs.comments import queue_reminders, requeue_pending
from jobs.inbox import reclaim_abandoned, requeue_failed
from jobs.reconcile import Reconciled, reconcile
from ledger.tallies import FOLD_SECONDS, fold
from service.runtime import Runtime

log = logging.getLogger("leaderleader.scheduler")
RECONCILE_DUE = "leaderleader:reconcile:due"
FOLD_DUE = "leaderleader:tallies:due"


@dataclass(frozen=True)
class Round:
    reminders: int
    pending_comments: int
    retried_deliveries: int
    reclaimed_deliveries: int = 0
    reconciled: Reconciled | None = None

    def __str__(self) -> str:
        done = (f"queued {self.reminders} reminder(s), re-queued {self.pending_comments} "
                f"pending comment(s) and {self.retried_deliveries} failed deliver(ies), "
                f"reclaimed {self.reclaimed_deliveries} deliver(ies) from stopped workers")
        return done + (f"; {self.reconciled}" if self.reconciled is not None else "")

    def __bool__(self) -> bool:
        return bool(self.reminders or self.pending_comments or self.retried_deliveries
                    or self.reclaimed_deliveries or self.reconciled is not None)


def reconcile_if_due(runtime: Runtime) -> Reconciled | None:
    """Reconcile with Jira when the last round is ``reconcile_seconds`` old (one scheduler only).

    Nothing to ask without ``JIRA_URL``. A round that fails for a passing reason (Jira
    down, rate-limited) is tried again by the next scheduler round rather than an hour
    later; one Jira refuses (credentials, permissions) waits for the next interval.
    """
    every = runtime.settings.reconcile_seconds
    if every <= 0 or not runtime.settings.jira_url:
        return None
    if not runtime.redis.set(RECONCILE_DUE, "1", nx=True, ex=every):
        return None
    try:
        return reconcile(runtime)
    except JiraError as error:
        if isinstance(error, TransientJiraError):
            runtime.redis.delete(RECONCILE_DUE)
        log.warning("reconcile.failed", extra={"reason": str(error)})
        return None


def fold_if_due(runtime: Runtime) -> bool:
    """Fold the report's tallies when the last fold is ``FOLD_SECONDS`` old (one scheduler)."""
    if not runtime.redis.set(FOLD_DUE, "1", nx=True, ex=FOLD_SECONDS):
        return False
    with runtime.sessions() as session:
        fold(session)
        session.commit()
    return True


def run_round(runtime: Runtime) -> Round:
    """One round of the scheduler."""
    fold_if_due(runtime)
    reclaimed = reclaim_abandoned(runtime)
    return Round(queue_reminders(runtime), requeue_pending(runtime), requeue_failed(runtime),
                 reclaimed, reconcile_if_due(runtime))
