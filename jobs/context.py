"""How jobs reach the process's Runtime, and how they are queued.

The worker builds its app from the same factory as the web tier and runs jobs inside
its app context (Flask's pattern for background workers), so a job finds the ledger,
the queue, the rules and Jira on ``current_app``.
"""

from __future__ import annotations

import random

from flask import current_app
from rq import Retry
from rq.job import Job

from leaderleader.runtime import Runtime

EXTENSION = "leaderleader"


def current_runtime() -> Runtime:
    return current_app.extensions[EXTENSION]  # type: ignore[no-any-return]


def _retry(runtime: Runtime) -> Retry:
    """rq's retries at the configured intervals, each jittered by ±20% per job.

    The jitter spreads the retries of many jobs that failed together (a Jira outage)
    instead of sending them back all at once.
    """
    intervals = [round(i * random.uniform(0.8, 1.2)) for i in runtime.settings.retry_intervals]
    return Retry(max=len(intervals), interval=intervals)


def enqueue_drain(runtime: Runtime) -> Job:
    """Queue a job that processes waiting deliveries (see jobs.inbox)."""
    from jobs.inbox import drain_inbox

    return runtime.queue.enqueue(
        drain_inbox,
        retry=_retry(runtime),
        result_ttl=600,
        failure_ttl=7 * 24 * 3600,
        description="drain the delivery inbox",
    )


def enqueue_comment(runtime: Runtime, comment_id: int) -> Job:
    """Queue the posting of one comment; the job id is derived from the row, so at most one waits."""
    from jobs.comments import post_comment

    return runtime.queue.enqueue(
        post_comment,
        comment_id,
        job_id=f"leaderleader-comment-{comment_id}",
        retry=_retry(runtime),
        result_ttl=3600,
        failure_ttl=30 * 24 * 3600,
        description=f"comment {comment_id}",
    )
