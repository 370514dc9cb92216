"""Two workers on shuffled deliveries give the ledger one worker gives on the same deliveries.

Deliveries of the same tickets race through two worker processes (on PostgreSQL: real
row locks, the ones that deadlocked before batches were applied in one ticket order);
the waits, the intents (and which wait each belongs to) and the comments made must come
out exactly as a single worker in delivery order makes them, with no delivery set aside
as failed. (A comment's final state may differ: a job that runs after the intent or the
exit is known rightly skips.)
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from typing import Any

import redis
from sqlalchemy import select

from jobs.outstanding import outstanding
from ledger.models import ApprovalWait, Base, Comment, Intent
from tests.conftest import fixture_json, post_webhook, run_worker
from tests.test_faults import ROOT, _worker_env
from webhooks.extension import app_runtime

ENTER, INTENT, LEAVE = ("issue_updated__cloud_deploy_handed_to_director",
                        "comment_created__cloud_intent", "issue_updated__cloud_leaves_approval")
TICKETS = 12


def _deliveries() -> list[tuple[str, bytes]]:
    """Enter approval, an intent, leave approval, for each ticket; odd tickets stay waiting."""
    out = []
    for n in range(TICKETS):
        key, issue_id, shift = f"PAY-{300 + n}", str(30000 + n), n * 60_000
        for step, name in enumerate((ENTER, INTENT, LEAVE)):
            if name == LEAVE and n % 2:
                continue
            body = fixture_json(name)
            body["timestamp"] += shift
            body["issue"].update(key=key, id=issue_id)
            if body.get("changelog"):
                body["changelog"]["id"] = str(40000 + n * 10 + step)
            if body.get("comment"):
                comment = body["comment"]
                comment["id"] = str(50000 + n)
                comment["self"] = comment["self"].replace("10101", issue_id).replace(
                    "20001", comment["id"])
            out.append((f"{key}-{step}", json.dumps(body).encode()))
    return out


def _ledger(app: Any) -> dict[str, Any]:
    with app_runtime(app).sessions() as session:
        waits = sorted((w.issue_key, w.started_at, w.ended_at, w.flagged, w.first_intent_at)
                       for w in session.scalars(select(ApprovalWait)))
        intents = sorted((i.issue_key, i.declared_at, i.wait_id is not None)
                         for i in session.scalars(select(Intent)))
        # the comments of the waits still open; a wait whose exit was applied before its
        # entry rightly gets none, and a comment's state depends on what its job knew
        comments = sorted((c.wait.issue_key, c.kind) for c in session.scalars(select(Comment))
                          if c.wait.ended_at is None)
    return {"waits": waits, "intents": intents, "comments": comments}


def _empty(app: Any, connection: redis.Redis) -> None:
    runtime = app_runtime(app)
    with runtime.engine.begin() as db:
        for table in reversed(Base.metadata.sorted_tables):
            db.execute(table.delete())
    connection.flushdb()


def test_two_workers_on_shuffled_deliveries_make_the_ledger_one_worker_makes(make_app, redis_conn):
    app = make_app()
    runtime = app_runtime(app)
    deliveries = _deliveries()

    shuffled = deliveries[:]
    random.Random(7).shuffle(shuffled)
    for delivery, body in shuffled:  # all waiting before the workers start: big batches
        assert post_webhook(app, body, delivery=delivery).status_code == 202
    url = os.environ.get("REDIS_URL") or "unix://" + redis_conn.socket_file
    env = _worker_env(runtime.settings, url, "")
    env.pop("JIRA_URL")
    workers = [subprocess.Popen([sys.executable, "-m", "leaderleader", "worker", "--burst"],
                                cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True) for _ in range(2)]
    for worker in workers:
        _, errors = worker.communicate(timeout=120)
        assert worker.returncode == 0, errors
        assert "jira.delivery.error" not in errors and "Deadlock" not in errors
        assert "batch_retried" not in errors, errors
    run_worker(app)  # anything one of them queued after the other stopped
    assert outstanding(runtime).total == 0, outstanding(runtime)
    raced = _ledger(app)

    _empty(app, redis_conn)
    for delivery, body in deliveries:
        assert post_webhook(app, body, delivery=delivery).status_code == 202
        run_worker(app)
    calm = _ledger(app)

    assert len(calm["waits"]) == TICKETS and len(calm["intents"]) == TICKETS
    assert len(calm["comments"]) == TICKETS // 2, calm  # the waiting ones, one flag comment each
    assert all(attached for *_, attached in calm["intents"])
    assert raced == calm
