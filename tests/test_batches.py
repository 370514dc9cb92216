"""A drain batch: one transaction, few round trips, and the ledger one delivery at a time makes.

The batch asks the database each question once for all its deliveries (``jobs.batch``);
these tests hold it to the same ledger as applying the deliveries one by one, in shuffled
order with repeats, to a failing delivery being rolled back alone while the rest of its
batch commits, and to its round trips staying a handful per batch.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event, select, text

from jobs.batch import apply_batch
from jobs.deliveries import apply_delivery, parse_delivery
from jobs.inbox import COMMIT_EVERY, _lock_order, backlog, decode, encode, requeue_failed
from ledger.models import ApprovalWait, Delivery, JiraUser, StatusChange, TicketRecord
from service.runtime import Runtime, current_runtime
from tests.conftest import fixture_json, post_webhook, run_worker
from tests.test_concurrency import _deliveries, _empty, _ledger
from webhooks.extension import app_runtime

ENTER, LEAVE = "issue_updated__cloud_deploy_handed_to_director", "issue_updated__cloud_leaves_approval"


def _moves(key: str, n: int) -> list[tuple[str, bytes]]:
    """``key`` enters approval, then leaves it a minute later."""
    out = []
    for step, name in enumerate((ENTER, LEAVE)):
        body = fixture_json(name)
        body["timestamp"] += n * 120_000 + step * 60_000
        body["issue"].update(key=key, id=str(70000 + n))
        body["changelog"]["id"] = str(80000 + n * 10 + step)
        out.append((f"{key}-{step}", json.dumps(body).encode()))
    return out


def _apply(runtime: Runtime, deliveries: list[tuple[str, bytes]], *, batched: bool) -> None:
    """Apply in the drain job's order, as one batch or one savepoint per delivery."""
    entries = sorted((encode(d, "2026-11-20T10:00:00", b.decode()) for d, b in deliveries),
                     key=_lock_order)
    parsed = [parse_delivery(delivery_id, body, received_at)
              for delivery_id, received_at, body in map(decode, entries)]
    rules = runtime.rules.require()
    with runtime.sessions() as session:
        if batched:
            apply_batch(session, rules, parsed)
        else:
            for one in parsed:
                with session.begin_nested():
                    apply_delivery(session, rules, one)
        session.commit()


def _rows(runtime: Runtime) -> dict[str, Any]:
    with runtime.sessions() as session:
        return {
            "deliveries": sorted((d.delivery_id, d.outcome) for d in session.scalars(select(Delivery))),
            "changes": sorted((c.at, c.to_status, c.enters_wait) for c in session.scalars(
                select(StatusChange))),
            "tickets": sorted((t.key, t.status, t.updated_at, t.status_category)
                              for t in session.scalars(select(TicketRecord))),
            "people": sorted((u.jira_id, u.display_name) for u in session.scalars(select(JiraUser))),
            "reached": sorted((w.issue_key, w.reached_at, w.end_status) for w in session.scalars(
                select(ApprovalWait))),
        }


def test_a_batch_makes_the_ledger_one_delivery_at_a_time_makes(make_app, redis_conn):
    app = make_app()
    runtime = app_runtime(app)
    deliveries = _deliveries()
    shuffled = deliveries + random.Random(3).sample(deliveries, 6)  # repeats too
    random.Random(11).shuffle(shuffled)
    with runtime.activate():
        _apply(runtime, shuffled, batched=False)
    one_by_one = {**_ledger(app), **_rows(runtime)}
    _empty(app, redis_conn)
    with runtime.activate():
        _apply(runtime, shuffled, batched=True)
    assert {**_ledger(app), **_rows(runtime)} == one_by_one


@contextmanager
def _refusing(runtime: Runtime, body: bytes) -> Iterator[None]:
    """The database itself refuses the boundary this delivery records (a constraint on
    PostgreSQL, a trigger on SQLite): a delivery that fails inside the batch's transaction,
    after it has written other rows."""
    at = parse_delivery("-", body.decode(), "2026-11-20T10:00:00").event.at
    postgres = runtime.engine.dialect.name == "postgresql"
    with runtime.engine.begin() as db:
        db.execute(text(
            f"ALTER TABLE status_changes ADD CONSTRAINT refuse CHECK (at <> '{at}')"
            if postgres else
            f"CREATE TRIGGER refuse BEFORE INSERT ON status_changes "
            f"WHEN NEW.at = '{at:%Y-%m-%d %H:%M:%S.%f}' BEGIN SELECT RAISE(ABORT, 'refused'); END"))
    try:
        yield
    finally:
        with runtime.engine.begin() as db:
            db.execute(text("ALTER TABLE status_changes DROP CONSTRAINT refuse" if postgres
                            else "DROP TRIGGER refuse"))


def test_a_failing_delivery_is_rolled_back_alone_and_its_batch_commits(app):
    runtime = app_runtime(app)
    deliveries = [move for n in range(4) for move in _moves(f"PAY-{600 + n}", n)]
    for delivery, body in deliveries:
        assert post_webhook(app, body, delivery=delivery).status_code == 202
    with _refusing(runtime, dict(deliveries)["PAY-602-0"]):
        run_worker(app)
    with runtime.activate():
        assert backlog(current_runtime()) == {"waiting": 0, "retrying": 1}
    with runtime.sessions() as session:
        recorded = set(session.scalars(select(Delivery.delivery_id)))
        assert recorded == {d for d, _ in deliveries} - {"PAY-602-0"}
        assert sorted(session.scalars(select(ApprovalWait.issue_key))) == [
            "PAY-600", "PAY-601", "PAY-603"]
    with runtime.activate():
        assert requeue_failed(current_runtime()) == 1  # what the scheduler does every round
    run_worker(app)
    with runtime.sessions() as session:
        waits = {w.issue_key: w for w in session.scalars(select(ApprovalWait))}
        assert sorted(waits) == [f"PAY-{600 + n}" for n in range(4)]
        assert all(w.ended_at is not None for w in waits.values())  # its exit came first


def test_a_batch_costs_a_handful_of_round_trips(app):
    """Fifty deliveries (25 tickets entering approval, flagged, and leaving it) in about a
    dozen statements on PostgreSQL, not a dozen per delivery."""
    runtime = app_runtime(app)
    deliveries = [move for n in range(COMMIT_EVERY // 2) for move in _moves(f"PAY-{700 + n}", n)]
    statements: list[str] = []

    def counted(*args: Any) -> None:
        statements.append(args[2])

    event.listen(runtime.engine, "before_cursor_execute", counted)
    try:
        with runtime.activate():
            _apply(runtime, deliveries, batched=True)
    finally:
        event.remove(runtime.engine, "before_cursor_execute", counted)
    if runtime.engine.dialect.name == "postgresql":  # SQLite's statements are calls in-process
        assert len(statements) <= 16, statements
    with runtime.sessions() as session:
        assert len(session.scalars(select(ApprovalWait)).all()) == COMMIT_EVERY // 2
