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

from jobs.inbox import enqueue_drain
from jobs.outstanding import outstanding
from ledger.models import ApprovalWait, Base, Comment, Intent
from tests.conftest import fixture_json, post_webhook, run_worker
from tests.test_faults import ROOT, _worker_env
from tests.test_recovery import _LedgerLock, _wait_for
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


def _batch(first: int, purchase_first: bool) -> list[tuple[str, bytes]]:
    """50 tickets (one worker's batch), alternating the people they name, from ``first`` on."""
    out = []
    for n in range(50):
        name = PURCHASE if (n % 2 == 0) == purchase_first else ENTER
        body = fixture_json(name)
        key, issue_id = f"PAY-{first + n}", str(60000 + first + n)
        body["issue"].update(key=key, id=issue_id)
        body["changelog"]["id"] = str(70000 + first + n)
        out.append((f"{key}-enter", json.dumps(body).encode()))
    return out


PURCHASE = "issue_updated__cloud_purchase_manager_approves"


def test_two_batches_naming_new_people_in_other_orders_do_not_deadlock(make_app, redis_conn):
    """Each delivery names two people (a deploy: Bob and Dana; a purchase: Alice and Carol),
    none known yet. One batch meets Alice first, the other Bob: were the people written
    delivery by delivery, each worker would hold one pair and wait for the other's (on
    PostgreSQL: DeadlockDetected, deliveries set aside and applied late). Both workers are
    held at the ledger until each has its batch in hand, so they start together."""
    app = make_app()
    runtime = app_runtime(app)
    for delivery, body in _batch(300, purchase_first=True) + _batch(400, purchase_first=False):
        assert post_webhook(app, body, delivery=delivery).status_code == 202
    enqueue_drain(runtime)  # a second drain job: one per worker
    url = os.environ.get("REDIS_URL") or "unix://" + redis_conn.socket_file
    env = _worker_env(runtime.settings, url, "")
    env.pop("JIRA_URL")
    workers: list[subprocess.Popen[str]] = []
    try:
        with _LedgerLock(runtime):
            workers = [subprocess.Popen([sys.executable, "-m", "leaderleader", "worker", "--burst"],
                                        cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.PIPE, text=True) for _ in range(2)]
            _wait_for(lambda: outstanding(runtime).in_hand == 100, 60, "both workers to take a batch")
        logs = [worker.communicate(timeout=120)[1] for worker in workers]
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.communicate(timeout=10)
    assert [worker.returncode for worker in workers] == [0, 0], logs
    failures = [line for errors in logs for line in errors.splitlines()
                if "Deadlock" in line or "jira.delivery.error" in line]
    assert failures == [], failures[:4]
    run_worker(app)
    assert outstanding(runtime).total == 0, [errors[-2000:] for errors in logs]
    with runtime.sessions() as session:
        assert len(session.scalars(select(ApprovalWait)).all()) == 100
