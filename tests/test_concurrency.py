"""Two workers on shuffled deliveries give the ledger one worker gives on the same deliveries.

Deliveries of the same tickets race through two worker processes (on PostgreSQL: real
row locks, the ones that deadlocked before batches were applied in one ticket order);
the waits, the intents (and which wait each belongs to) and the comments made must come
out exactly as a single worker in delivery order makes them, with no delivery set aside
as failed. (A comment's final state may differ: a job that runs after the intent or the
exit is known rightly skips.)

Below it, the lock order itself: two batches that take the same new rows in opposite
orders deadlock on PostgreSQL every time, so the drain applies a batch ticket by ticket
and records people in one order, writing them only when something changed.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import threading
import time
from typing import Any

import pytest
import redis
from sqlalchemy import event, func, select, text

from connector.shapes import users_seen
from jobs.inbox import _process, decode, encode, enqueue_drain, inbox_key
from jobs.outstanding import outstanding
from ledger.models import ApprovalWait, Base, Comment, Delivery, Intent, JiraUser, TicketRecord
from rules.model import utc_now
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


# -- two batches at once, in one process: the lock order itself ----------------------------
#
# Two drain batches (``jobs.inbox._process``: one transaction, a savepoint per delivery)
# run in two threads on two connections. The first batch starts alone; the second starts
# once the first has inserted its first contested row (a new ticket, a new Jira user), and
# each is held after that first insert until the other has made its own, has finished, or
# is blocked on a lock (PostgreSQL's ``pg_blocking_pids``). Taking the rows in opposite
# orders then deadlocks on PostgreSQL, every time; in one order the second batch simply
# waits for the first. SQLite locks the whole database, so there the second batch waits
# anyway, and what is checked is the order the first batch takes the rows in.

HELD_AT_MOST = 10.0  # seconds a batch is held waiting for the other (PostgreSQL)
HELD_ON_SQLITE = 0.5  # the other batch cannot insert while this one writes: a short hold


class _Race:
    """Two batches applied at once, each held after its first insert into ``table``."""

    def __init__(self, runtime: Any, table: str, column: str) -> None:
        self.runtime, self.table, self.column = runtime, table, column
        self.local = threading.local()
        self.inserted = {name: threading.Event() for name in ("first", "second")}
        self.done = {name: threading.Event() for name in ("first", "second")}
        self.pids: dict[str, int] = {}
        self.tried: dict[str, list[str]] = {"first": [], "second": []}  # inserts, in order
        self.statements: list[str] = []  # every statement either batch sent
        self.postgres = runtime.engine.dialect.name == "postgresql"

    def _before(self, conn: Any, cursor: Any, statement: str, params: Any, context: Any,
                executemany: bool) -> None:
        name = getattr(self.local, "batch", None)
        if name is None:
            return
        self.statements.append(statement)
        if self.postgres:
            self.pids.setdefault(name, conn.connection.driver_connection.info.backend_pid)
        if statement.startswith(f"INSERT INTO {self.table} "):
            self.tried[name].extend(self._values(context.compiled_parameters))

    def _values(self, compiled: list[dict[str, Any]]) -> list[Any]:
        """The contested column's values in the order the statement inserts them: one row,
        several rows of one ``VALUES`` list (``key_m0``, ``key_m1``, …), or executemany."""
        values = []
        for parameters in compiled:
            if self.column in parameters:
                values.append(parameters[self.column])
            n = 0
            while f"{self.column}_m{n}" in parameters:
                values.append(parameters[f"{self.column}_m{n}"])
                n += 1
        return values

    def _after(self, conn: Any, cursor: Any, statement: str, params: Any, context: Any,
               executemany: bool) -> None:
        name = getattr(self.local, "batch", None)
        if name is None or not statement.startswith(f"INSERT INTO {self.table} "):
            return
        if self.inserted[name].is_set():
            return
        self.inserted[name].set()
        other = "second" if name == "first" else "first"
        deadline = time.monotonic() + (HELD_AT_MOST if self.postgres else HELD_ON_SQLITE)
        while time.monotonic() < deadline and not (
                self.inserted[other].is_set() or self.done[other].is_set() or self._blocked(other)):
            time.sleep(0.02)

    def _blocked(self, name: str) -> bool:
        """Is batch ``name`` waiting for a lock the other one holds (PostgreSQL only)?"""
        if not self.postgres or name not in self.pids:
            return False
        with self.runtime.engine.connect() as conn:
            return bool(conn.scalar(text("SELECT cardinality(pg_blocking_pids(:pid)) > 0"),
                                    {"pid": self.pids[name]}))

    def run(self, first: list[str], second: list[str]) -> list[BaseException]:
        """Apply both batches; the exceptions that escaped a batch (none expected)."""
        escaped: list[BaseException] = []

        def apply(name: str, entries: list[str]) -> None:
            if name == "second":
                self.inserted["first"].wait(HELD_AT_MOST) or self.done["first"].wait(HELD_AT_MOST)
            self.local.batch = name
            try:
                _process(self.runtime, entries, f"test:hand:{name}")
            except BaseException as error:  # noqa: BLE001 - reported by the test
                escaped.append(error)
            finally:
                self.done[name].set()

        event.listen(self.runtime.engine, "before_cursor_execute", self._before)
        event.listen(self.runtime.engine, "after_cursor_execute", self._after)
        try:
            threads = [threading.Thread(target=apply, args=(name, entries))
                       for name, entries in (("first", first), ("second", second))]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(60)
        finally:
            event.remove(self.runtime.engine, "before_cursor_execute", self._before)
            event.remove(self.runtime.engine, "after_cursor_execute", self._after)
        return escaped


def _entry(name: str, key: str, number: int, days_earlier: int = 0) -> str:
    """A delivery of fixture ``name`` for ticket ``key``, as the inbox holds it."""
    body = fixture_json(name)
    body["timestamp"] -= days_earlier * 86_400_000
    body["issue"].update(key=key, id=str(70000 + number))
    body["changelog"]["id"] = str(80000 + number)
    return encode(f"{key}-{name}", utc_now().isoformat(), json.dumps(body))


def _failures(runtime: Any, caplog: pytest.LogCaptureFixture) -> list[str]:
    """Deliveries set aside for another try, with the errors that set them aside."""
    errors = [f"{r.getMessage()}: {r.exc_info[1]!r}" for r in caplog.records if r.exc_info]
    retried = runtime.redis.lrange(inbox_key(runtime) + ":retry", 0, -1)
    return errors + [f"set aside: {decode(e)[0]}" for e in retried]


def test_batches_touching_the_same_new_tickets_take_them_in_one_order(app, caplog):
    """Opposite orders deadlocked on ``tickets_key_key``; the drain sorts a batch by ticket."""
    runtime = app_runtime(app)
    _process(runtime, [_entry(ENTER, "PAY-9", 9, days_earlier=1), _entry(LEAVE, "PAY-9", 19, 1)],
             "test:hand:seed")
    # (the people in the deliveries are known, unchanged, from PAY-9 the day before: only
    # the tickets are contested, as people are written only when something changed)
    entering = [_entry(ENTER, "PAY-1", 1), _entry(ENTER, "PAY-2", 2)]
    leaving = [_entry(LEAVE, "PAY-2", 12), _entry(LEAVE, "PAY-1", 11)]  # the other way round
    race = _Race(runtime, "tickets", "key")

    escaped = race.run(leaving, entering)

    assert not escaped and not _failures(runtime, caplog), (escaped, _failures(runtime, caplog))
    assert race.tried["first"] == ["PAY-1", "PAY-2"], race.tried  # the order the rows are taken in
    assert not [s for s in race.statements if s.startswith("UPDATE jira_users")]  # unchanged: unlocked
    with runtime.sessions() as session:
        keys = sorted(session.scalars(select(TicketRecord.key)))
        delivered = session.scalar(select(func.count()).select_from(Delivery))
        waits = sorted((w.issue_key, w.ended_at is not None) for w in session.scalars(select(ApprovalWait)))
    assert keys == ["PAY-1", "PAY-2", "PAY-9"] and delivered == 6  # both batches committed
    assert waits == [("PAY-1", True), ("PAY-2", True), ("PAY-9", True)]


def test_batches_seeing_the_same_new_people_record_them_in_one_order(app, caplog):
    """Two deliveries naming the same new Jira users in opposite orders, in two batches."""
    runtime = app_runtime(app)
    bob_first, dana_first = _entry(ENTER, "PAY-1", 1), _entry(LEAVE, "PAY-2", 12)
    assert [u["jira_id"] for u in users_seen(json.loads(decode(dana_first)[2]))][:2] == [
        "dana.k", "5b10a2844c20165700ede21g"]  # the payload names Dana first
    race = _Race(runtime, "jira_users", "jira_id")

    escaped = race.run([dana_first], [bob_first])

    assert not escaped and not _failures(runtime, caplog), (escaped, _failures(runtime, caplog))
    assert race.tried["first"] == ["5b10a2844c20165700ede21g", "dana.k"], race.tried
    with runtime.sessions() as session:
        people = sorted(session.scalars(select(JiraUser.jira_id)))
        tickets = sorted(session.scalars(select(TicketRecord.key)))
    assert people == ["5b10a2844c20165700ede21g", "dana.k"] and tickets == ["PAY-1", "PAY-2"]


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
