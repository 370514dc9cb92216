"""Reconciliation: Jira calls and seconds for one round over many open waits (fake Jira).

The ledger holds ``waits`` open waits; in Jira ``ended`` of those tickets have left
approval (their exits never delivered) and ``unseen`` more tickets wait that the ledger
never saw enter. One round must close the ended, open the unseen, and ask Jira about
at most 100 keys per search call: about ``waits / 100`` calls in all.

Two scenarios (all still waiting; a tenth ended unseen and a hundredth entered unseen)
at 1,000 and 10,000 open waits, on SQLite and on a scratch PostgreSQL database, each
run ``REPEAT`` times on a freshly seeded ledger (median, min and max). The fake Jira
runs in this process, so its time is measured apart (inside its WSGI app) and
subtracted: ``ours_s`` is the round without the time Jira spent answering.

Seeding is not measured, and must be quick at 10,000 waits: the first ticket's rows
are written by the product's own code (ticket, entry, wait, its flag comment), then
cloned for the others in bulk inserts, its key changed.
"""

from __future__ import annotations

import logging
import re
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, Table, insert, select, text

from bench.common import embedded_redis_url, scratch_postgres, write_result
from connector.shapes import jira_time, ticket_from_issue
from jobs.reconcile import reconcile
from ledger.models import ApprovalWait, Comment, StatusChange, TicketRecord
from ledger.waits import add_comment, open_wait, record_change, ticket_row, update_ticket
from rules.engine import evaluate
from service.runtime import Runtime
from service.settings import EXAMPLE_RULES, Settings
from tests.fakejira import FakeJira

BOB, CAROL = "5b10a2844c20165700ede21g", "carol.s"
ENTERED = "2026-05-04T10:00:00.000+0000"
LEFT = "2026-05-05T09:30:00.000+0000"
REPEAT = 3
SIZES = (1_000, 10_000)


def _issue_fields(n: int, status: tuple[str, str]) -> dict[str, Any]:
    return {"summary": f"Ticket {n}", "project": {"key": "PAY"}, "issuetype": {"name": "Task"},
            "labels": ["purchase"], "status": {"name": status[0], "id": status[1]},
            "assignee": {"accountId": CAROL}, "reporter": {"accountId": BOB},
            "created": "2026-05-01T08:00:00.000+0000", "updated": LEFT}


def _history(number: int, when: str, frm: str, to: str) -> dict[str, Any]:
    return {"id": str(number), "created": when, "items": [
        {"field": "status", "fieldId": "status", "fromString": frm, "toString": to}]}


def _seed_first(runtime: Runtime) -> None:
    """PAY-1 as the product records a ticket entering approval: ticket, entry, wait, comment."""
    rules = runtime.rules.require()
    started = jira_time(ENTERED)
    assert started is not None
    with runtime.sessions() as session:
        issue = {"key": "PAY-1", "fields": _issue_fields(1, ("Awaiting Approval", "10050"))}
        view = ticket_from_issue(issue)
        ticket = ticket_row(session, view, "10001")
        session.flush()
        update_ticket(ticket, view, "10001", started)
        record_change(session, ticket, started, "In Progress", view.status, enters=True)
        verdict = evaluate(rules, view)
        wait = open_wait(session, ticket, started, view, verdict, rules)
        assert wait is not None
        if verdict.flagged:
            add_comment(session, wait, "flag", started).state = "posted"
        session.commit()


def _renamed(value: Any, n: int) -> Any:
    """``value`` with PAY-1 (and its summary) as ticket ``n``'s, inside JSON too."""
    if isinstance(value, str):
        return re.sub(r"\bTicket 1\b", f"Ticket {n}", re.sub(r"\bPAY-1\b", f"PAY-{n}", value))
    if isinstance(value, dict):
        return {k: _renamed(v, n) for k, v in value.items()}
    if isinstance(value, list):
        return [_renamed(v, n) for v in value]
    return value


def _clone_first(engine: Engine, waits: int, chunk: int = 2000) -> None:
    """Ticket 1's rows (one in each table, id 1) copied for tickets 2..waits (id n)."""
    tables: list[tuple[Table, Callable[[dict[str, Any], int], dict[str, Any]]]] = [
        (TicketRecord.__table__, lambda row, n: {**row, "id": n, "jira_id": str(10000 + n)}),
        (StatusChange.__table__, lambda row, n: {**row, "id": n, "ticket_id": n}),
        (ApprovalWait.__table__, lambda row, n: {**row, "id": n, "ticket_id": n}),
        (Comment.__table__, lambda row, n: {**row, "id": n, "wait_id": n}),
    ]
    with engine.begin() as conn:
        for table, renumber in tables:
            rows = [dict(r._mapping) for r in conn.execute(select(table))]
            if not rows:
                continue  # (no comment: the example rules do not flag the ticket)
            assert len(rows) == 1 and rows[0]["id"] == 1, (table.name, rows)
            for first in range(2, waits + 1, chunk):
                conn.execute(insert(table), [_renamed(renumber(rows[0], n), n)
                                             for n in range(first, min(first + chunk, waits + 1))])
            if engine.dialect.name == "postgresql":  # the round inserts after the clones
                conn.execute(text(f"SELECT setval(pg_get_serial_sequence('{table.name}', 'id'), "
                                  f"(SELECT max(id) FROM {table.name}))"))
        if engine.dialect.name == "postgresql":
            conn.execute(text("ANALYZE"))


def seed(fake: FakeJira, runtime: Runtime, waits: int, ended: int, unseen: int) -> None:
    """Tickets in Jira, and the open waits the ledger holds for the first ``waits`` of them."""
    entry = _history(1, ENTERED, "In Progress", "Awaiting Approval")
    for n in range(1, waits + unseen + 1):
        gone = n <= ended
        status = ("In Progress", "3") if gone else ("Awaiting Approval", "10050")
        histories = [entry] + ([_history(2, LEFT, "Awaiting Approval", "In Progress")] if gone else [])
        fake.add_issue(f"PAY-{n}", _issue_fields(n, status), histories, issue_id=str(10000 + n))
    _seed_first(runtime)
    _clone_first(runtime.engine, waits)


def _empty(engine: Engine) -> None:
    """A scratch ledger starts empty, its ids from 1 again (the clones are numbered from 1)."""
    tables = list(reversed(ApprovalWait.metadata.sorted_tables))
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text("TRUNCATE " + ", ".join(t.name for t in tables) + " RESTART IDENTITY"))
            return
        for table in tables:  # SQLite numbers rows from the largest id left: none
            conn.execute(table.delete())


class _Timed:
    """WSGI middleware: the seconds the fake Jira spends answering, summed over requests."""

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self.app, self.seconds = app, 0.0

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        began = time.perf_counter()
        try:
            return list(self.app(environ, start_response))
        finally:
            self.seconds += time.perf_counter() - began


def measure_once(waits: int, ended: int, unseen: int, home: Path, database_url: str,
                 redis_connection: Any) -> dict[str, Any]:
    """One reconciliation round over a freshly seeded ledger; its figures."""
    with FakeJira(deployment="Cloud") as fake:
        timed = _Timed(fake.app.wsgi_app)
        fake.app.wsgi_app = timed  # type: ignore[method-assign]
        settings = Settings(home=home, database_url=database_url, rules_file=EXAMPLE_RULES,
                            jira_url=fake.url, jira_user="bot@acme.example",
                            jira_api_token="bench-token",
                            queue_name=f"bench-reconcile-{uuid.uuid4().hex[:6]}")
        runtime = Runtime.build(settings, connection=redis_connection)
        try:
            _empty(runtime.engine)
            started = time.perf_counter()
            seed(fake, runtime, waits, ended, unseen)
            seeded = time.perf_counter() - started
            fake.reset_log()
            timed.seconds = 0.0
            began = time.perf_counter()
            with runtime.activate():
                result = reconcile(runtime)
            seconds = time.perf_counter() - began
            searches = fake.count("GET", r"/search(/jql)?$")
            widest = max((j.count(",") + 1 for j in fake.jqls if j.startswith("key in")), default=0)
        finally:
            runtime.queue.delete(delete_jobs=True)  # the comments the round queued
            runtime.engine.dispose()
    return {"closed": result.closed, "opened": result.opened, "still_waiting": result.still_waiting,
            "jira_calls": result.jira_calls, "search_calls": searches,
            "most_keys_in_one_search": widest, "seconds": seconds,
            "fake_jira_s": timed.seconds, "ours_s": seconds - timed.seconds, "seeded_in_s": seeded}


def measure(waits: int, ended: int, unseen: int, home: Path, database_url: str,
            redis_connection: Any, repeat: int = REPEAT) -> dict[str, Any]:
    """``repeat`` rounds, each on a freshly seeded ledger: counts, and the seconds' spread."""
    runs = [measure_once(waits, ended, unseen, home / str(i), database_url, redis_connection)
            for i in range(repeat)]
    first = runs[0]
    for run_ in runs[1:]:  # the counts never vary between runs
        assert all(run_[k] == first[k] for k in ("closed", "opened", "jira_calls")), runs
    figures: dict[str, Any] = {"open_waits": waits, "ended_in_jira": ended, "unseen_in_jira": unseen,
                               **{k: first[k] for k in ("closed", "opened", "still_waiting", "jira_calls",
                                                       "search_calls", "most_keys_in_one_search")},
                               "calls_bound": -(-waits // 100) + 3}
    for name in ("seconds", "ours_s", "fake_jira_s"):
        values = [r[name] for r in runs]
        figures[name] = round(statistics.median(values), 2)
        figures[name + "_range"] = f"{min(values):.2f}-{max(values):.2f}"
        figures[name + "_best"] = round(min(values), 3)  # the least disturbed by other work
    figures["seeded_in_s"] = round(statistics.median(r["seeded_in_s"] for r in runs), 1)
    return figures


def _backend(database_url: str, home: Path, connection: Any, sizes: tuple[int, ...],
             repeat: int) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    for waits in sizes:
        figures[f"{waits}_all_still_waiting"] = measure(waits, 0, 0, home / f"a{waits}", database_url,
                                                        connection, repeat)
        figures[f"{waits}_tenth_ended_hundredth_unseen"] = measure(
            waits, waits // 10, waits // 100, home / f"b{waits}", database_url, connection, repeat)
    small, large = sizes[0], sizes[-1]
    for scenario in ("all_still_waiting", "tenth_ended_hundredth_unseen"):
        per_small = figures[f"{small}_{scenario}"]["ours_s_best"] / small
        per_large = figures[f"{large}_{scenario}"]["ours_s_best"] / large
        growth = per_large / per_small if per_small else 0.0
        figures[f"growth_{scenario}"] = (f"our best seconds per wait at {large} vs at {small}: "
                                         f"{growth:.2f}x (1 = linear)")
    return figures


def run(sizes: tuple[int, ...] = SIZES, repeat: int = REPEAT) -> dict[str, Any]:
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no line per fake Jira request
    results: dict[str, Any] = {"target": "Jira calls <= open waits / 100 + 3; seconds linear in waits"}
    with tempfile.TemporaryDirectory() as tmp:
        _, connection = embedded_redis_url(Path(tmp) / "redis")
        results["sqlite"] = _backend(f"sqlite:///{tmp}/ledger.db", Path(tmp) / "sqlite", connection,
                                     sizes, repeat)
        with scratch_postgres("leaderleader_bench_reconcile") as url:
            results["postgresql"] = ("not measured: no PostgreSQL server" if url is None else
                                     _backend(url, Path(tmp) / "pg", connection, sizes, repeat))
    return write_result("reconcile", results)
