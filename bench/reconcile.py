"""Reconciliation: Jira calls and seconds for one round over many open waits (fake Jira).

The ledger holds ``waits`` open waits; in Jira ``ended`` of those tickets have left
approval (their exits never delivered) and ``unseen`` more tickets wait that the ledger
never saw enter. One round must close the ended, open the unseen, and ask Jira about
at most 100 keys per search call.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import embedded_redis_url, write_result
from connector.shapes import jira_time, ticket_from_issue
from jobs.reconcile import reconcile
from ledger.waits import open_wait, ticket_row, update_ticket
from rules.engine import evaluate
from service.runtime import Runtime
from service.settings import EXAMPLE_RULES, Settings
from tests.fakejira import FakeJira

BOB, CAROL = "5b10a2844c20165700ede21g", "carol.s"
ENTERED = "2026-05-04T10:00:00.000+0000"
LEFT = "2026-05-05T09:30:00.000+0000"


def _issue_fields(n: int, status: tuple[str, str]) -> dict[str, Any]:
    return {"summary": f"Ticket {n}", "project": {"key": "PAY"}, "issuetype": {"name": "Task"},
            "labels": ["purchase"], "status": {"name": status[0], "id": status[1]},
            "assignee": {"accountId": CAROL}, "reporter": {"accountId": BOB},
            "created": "2026-05-01T08:00:00.000+0000", "updated": LEFT}


def _history(number: int, when: str, frm: str, to: str) -> dict[str, Any]:
    return {"id": str(number), "created": when, "items": [
        {"field": "status", "fieldId": "status", "fromString": frm, "toString": to}]}


def seed(fake: FakeJira, runtime: Runtime, waits: int, ended: int, unseen: int) -> None:
    """Tickets in Jira, and the open waits the ledger holds for the first ``waits`` of them."""
    rules = runtime.rules.require()
    started = jira_time(ENTERED)
    assert started is not None
    entry = _history(1, ENTERED, "In Progress", "Awaiting Approval")
    for n in range(1, waits + unseen + 1):
        gone = n <= ended
        status = ("In Progress", "3") if gone else ("Awaiting Approval", "10050")
        histories = [entry] + ([_history(2, LEFT, "Awaiting Approval", "In Progress")] if gone else [])
        fake.add_issue(f"PAY-{n}", _issue_fields(n, status), histories)
    with runtime.sessions() as session:
        for n in range(1, waits + 1):
            issue = {"key": f"PAY-{n}", "fields": _issue_fields(n, ("Awaiting Approval", "10050"))}
            view = ticket_from_issue(issue)
            ticket = ticket_row(session, view, None)
            session.flush()
            update_ticket(ticket, view, None, started)
            open_wait(session, ticket, started, view, evaluate(rules, view), rules)
        session.commit()


def measure(waits: int, ended: int, unseen: int, home: Path, database_url: str | None = None,
            redis_connection: Any = None) -> dict[str, Any]:
    """One reconciliation round over a seeded ledger; its figures."""
    with FakeJira(deployment="Cloud") as fake:
        settings = Settings(home=home, database_url=database_url, rules_file=EXAMPLE_RULES,
                            jira_url=fake.url, jira_user="bot@acme.example",
                            jira_api_token="bench-token", queue_name="bench-reconcile")
        runtime = Runtime.build(settings, connection=redis_connection)
        try:
            seed(fake, runtime, waits, ended, unseen)
            fake.reset_log()
            began = time.perf_counter()
            with runtime.activate():
                result = reconcile(runtime)
            seconds = time.perf_counter() - began
            searches = fake.count("GET", r"/search(/jql)?$")
            widest = max((j.count(",") + 1 for j in fake.jqls if j.startswith("key in")), default=0)
        finally:
            runtime.engine.dispose()
    return {"open_waits": waits, "ended_in_jira": ended, "unseen_in_jira": unseen,
            "closed": result.closed, "opened": result.opened, "still_waiting": result.still_waiting,
            "jira_calls": result.jira_calls, "search_calls": searches,
            "most_keys_in_one_search": widest, "seconds": round(seconds, 2)}


def run() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        _, connection = embedded_redis_url(Path(tmp) / "redis")
        figures = {
            "all_still_waiting": measure(1000, 0, 0, Path(tmp) / "a", redis_connection=connection),
            "tenth_ended_and_ten_unseen": measure(1000, 100, 10, Path(tmp) / "b",
                                                  redis_connection=connection),
        }
    write_result("reconcile", figures)
