"""Backfill: Jira calls per issue and issues/s against the fake Jira, vs paging alone.

The baseline pages the same search through the same connector without importing
anything, so the ratio shows what rebuilding the waits in the ledger costs.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

from bench.common import services, write_result
from connector.client import JiraConnector
from jobs.history import backfill
from ledger.db import make_engine, make_sessionmaker, upgrade
from rules.loader import load_rules
from service.settings import EXAMPLE_RULES
from tests.fakejira import FakeJira

BOB, DANA = "5b10a2844c20165700ede21g", "dana.k"


def seed(fake: FakeJira, count: int) -> None:
    for n in range(count):
        day = 1 + n % 27
        histories = [
            {"id": "1", "created": f"2026-05-{day:02d}T10:00:00.000+0000", "items": [
                {"field": "status", "fieldId": "status", "fromString": "In Progress",
                 "toString": "Awaiting Approval"},
                {"field": "assignee", "fieldId": "assignee", "from": BOB, "to": DANA}]},
            {"id": "2", "created": f"2026-05-{day:02d}T15:00:00.000+0000", "items": [
                {"field": "status", "fieldId": "status", "fromString": "Awaiting Approval",
                 "toString": "In Progress"},
                {"field": "assignee", "fieldId": "assignee", "from": DANA, "to": BOB}]},
        ]
        fake.add_issue(f"PAY-{n + 1}", {
            "summary": f"Ticket {n + 1}", "project": {"key": "PAY"}, "issuetype": {"name": "Task"},
            "labels": ["deploy"], "status": {"name": "In Progress", "id": "3"},
            "assignee": {"accountId": BOB}, "reporter": {"accountId": BOB},
            "updated": f"2026-05-{day:02d}T15:00:00.000+0000",
        }, histories)


def _connector(fake: FakeJira) -> JiraConnector:
    return JiraConnector(fake.url, user="bot@acme.example", api_token="bench-token")


def run(issues: int = 2000) -> dict:
    home = Path(tempfile.mkdtemp(prefix="ll-bench-"))
    url = os.environ.get("DATABASE_URL") or f"sqlite:///{home / 'backfill.db'}"
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://"):]
    engine = make_engine(url)
    upgrade(engine)
    rules = load_rules(EXAMPLE_RULES)
    with FakeJira(deployment="Cloud") as fake:
        seed(fake, issues)
        started = time.perf_counter()
        paged = sum(1 for _ in _connector(fake).search_issues("project = PAY"))
        page_only = time.perf_counter() - started
        fake.reset_log()
        jira = _connector(fake)
        started = time.perf_counter()
        for counts in backfill(make_sessionmaker(engine), jira.search_issues("project = PAY"), rules):  # noqa: B007
            pass
        ours = time.perf_counter() - started
        calls = len(fake.requests)
    engine.dispose()
    assert paged == issues and counts.tickets == issues
    return write_result("backfill", {
        "issues": issues,
        "jira_calls": calls,
        "jira_calls_target": issues // 100 + 2,
        "ours_issues_per_s": round(issues / ours, 1),
        "paging_only_issues_per_s": round(issues / page_only, 1),
        "ratio": round(page_only / ours, 3),
        "waits_imported": counts.waits,
        "database": services()["database"],
    })
