"""The report's figures on random ledgers equal a straightforward computation.

Each seed builds a ledger with ties, one-wait groups, NULL approver / level / team /
rule, open waits, deleted tickets, negative and month-long waits and one crowded group
(many waits in the same few buckets), then reads the report for several windows. The
reference below filters, groups and sorts every wait in Python, with the definitions of
``ledger.report``. On PostgreSQL the whole JSON must also equal the sort-based queries'
(``percentile_cont`` over every group), the path the two-pass selection replaced.

Waits are whole or half seconds, so every sum is exact whatever order it is added in.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import insert
from sqlalchemy.orm import Session

from ledger import report_postgres
from ledger.figures import hours, percentile
from ledger.models import ApprovalWait, TicketRecord
from ledger.report import Window, bottleneck_report
from service.runtime import current_runtime
from tests.reports.conftest import bearer
from webhooks.extension import app_runtime

NOW = datetime(2026, 11, 25, 12, 0)
START = datetime(2026, 8, 3)  # a Monday, 16 weeks before NOW
PEOPLE = [("dana", "director"), ("carol", "manager"), ("alice", None), (None, None),
          ("bob", "engineer")]
SECTIONS = {"by_approver": ("approver", "level"), "by_level": ("level",),
            "by_team": ("team",), "by_rule": ("rule",)}
COLUMN = {"approver": "approver", "level": "approver_level", "team": "team",
          "rule": "decision_rule"}


def _duration(rng: random.Random) -> float:
    kind = rng.random()
    if kind < 0.25:  # ties
        return rng.choice([0.0, 60.0, 3600.0, 86_400.0, 86_400.0, 90_000.0])
    if kind < 0.5:  # crowded: a few buckets around a day
        return 86_000.0 + rng.randrange(0, 6_000) / 2
    if kind < 0.55:
        return -float(rng.randrange(1, 600))  # clock skew: ended before it started
    return float(rng.randrange(1, 60 * 86_400))


def _ledger(rng: random.Random, size: int) -> list[dict[str, Any]]:
    rows = []
    crowded = rng.random() < 0.5
    for number in range(size):
        approver, level = (PEOPLE[0] if crowded and number % 2 else rng.choice(PEOPLE))
        started = START + timedelta(seconds=rng.randrange(0, 110 * 86_400))
        ended = None if rng.random() < 0.15 else started + timedelta(seconds=_duration(rng))
        if ended is not None and ended > NOW:
            ended = None
        rows.append({
            "ticket": number, "deleted": rng.random() < 0.05, "project": rng.choice("AB"),
            "team": rng.choice(["payments", "platform", None]), "approver": approver,
            "approver_level": level, "decision_rule": rng.choice(["deploy", "spend", None]),
            "flagged": rng.random() < 0.3, "started_at": started, "ended_at": ended,
            "first_intent_at": started if rng.random() < 0.2 else None,
        })
    return rows


def _store(session: Session, rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    session.execute(insert(TicketRecord), [
        {"id": r["ticket"] + 1, "key": f"{r['project']}-{r['ticket']}", "project": r["project"],
         "summary": "", "labels": [], "components": [], "fields": {}, "deleted": r["deleted"]}
        for r in rows])
    session.execute(insert(ApprovalWait), [
        {"ticket_id": r["ticket"] + 1, "issue_key": f"{r['project']}-{r['ticket']}",
         "project": r["project"], "team": r["team"], "status": "Awaiting Approval",
         "started_at": r["started_at"], "ended_at": r["ended_at"],
         "wait_seconds": None if r["ended_at"] is None
         else (r["ended_at"] - r["started_at"]).total_seconds(),
         "approver": r["approver"], "approver_level": r["approver_level"],
         "decision_rule": r["decision_rule"], "flagged": r["flagged"], "unmapped": [],
         "verdict": {}, "ticket_snapshot": {}, "first_intent_at": r["first_intent_at"]}
        for r in rows])


def _in_window(row: dict[str, Any], window: Window) -> bool:
    if row["ended_at"] is None and row["deleted"]:
        return False
    if window.until is not None and not row["started_at"] < window.until:
        return False
    if window.since is not None and row["ended_at"] is not None and \
            not row["ended_at"] > window.since:
        return False
    return all(getattr(window, name) in (None, row[name]) for name in ("project", "team"))


def _figures(rows: list[dict[str, Any]]) -> dict[str, Any]:
    waits = sorted((r["ended_at"] - r["started_at"]).total_seconds()
                   for r in rows if r["ended_at"] is not None)
    ages = sorted((NOW - r["started_at"]).total_seconds() for r in rows if r["ended_at"] is None)
    return {
        "episodes": len(rows), "flagged": sum(r["flagged"] for r in rows),
        "waiting_now": len(ages), "ended": len(waits),
        "ended_after_intent": sum(1 for r in rows if r["ended_at"] and r["first_intent_at"]),
        "median_wait_hours": hours(percentile(waits, 0.5)),
        "p90_wait_hours": hours(percentile(waits, 0.9)),
        "total_wait_hours": hours(sum(waits)) or 0.0,
        "open_total_hours": hours(sum(ages)) or 0.0,
        "open_max_hours": hours(max(ages)) if ages else None,
        "open_median_hours": hours(percentile(ages, 0.5)),
        "open_p90_hours": hours(percentile(ages, 0.9)),
    }


def _check(report: dict[str, Any], rows: list[dict[str, Any]], window: Window) -> None:
    inside = [r for r in rows if _in_window(r, window)]
    summary = {k: v for k, v in report["summary"].items() if k != "intents"}
    assert summary == _figures(inside)
    for section, names in SECTIONS.items():
        groups: dict[tuple[Any, ...], list[dict[str, Any]]] = defaultdict(list)
        for row in inside:
            groups[tuple(row[COLUMN[n]] for n in names)].append(row)
        expected = {key: _figures(group) for key, group in groups.items()}
        got = {tuple(r[n] for n in names): {k: v for k, v in r.items()
                                            if k not in names and k != "purpose"}
               for r in report[section]}
        assert got == expected, section
    weeks: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in inside:
        if window.since is None or row["started_at"] >= window.since:
            monday = row["started_at"].date() - timedelta(days=row["started_at"].weekday())
            weeks[monday.isoformat()].append(row)
    for week in report["trend"]:
        figures = _figures(weeks.pop(week["week_start"], []))
        assert {k: week[k] for k in ("episodes", "flagged", "ended", "median_wait_hours",
                                     "p90_wait_hours")} == {
            k: figures[k] for k in ("episodes", "flagged", "ended", "median_wait_hours",
                                    "p90_wait_hours")}, week["week"]
    assert not weeks


def _windows(rng: random.Random) -> Iterator[Window]:
    yield Window()
    for _ in range(4):
        since = START + timedelta(hours=rng.randrange(0, 110 * 24))
        until = since + timedelta(hours=rng.randrange(1, 60 * 24))
        yield rng.choice([Window(since=since), Window(until=until), Window(since, until)])
    yield Window(project="A")
    yield Window(since=START + timedelta(days=30), team="payments")
    yield Window(team="nobody")


def _two_passes(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Take the two passes however small the ledger; their answers are recorded."""
    fast: list[Any] = []
    two_pass = report_postgres.two_pass
    monkeypatch.setattr(report_postgres, "TWO_PASS_FROM", 0)
    monkeypatch.setattr(report_postgres, "two_pass",
                        lambda *args: fast.append(two_pass(*args)) or fast[-1])
    return fast


@pytest.mark.parametrize("seed", range(12))
def test_random_ledgers_match_the_reference(
    make_app: Callable[..., Flask], monkeypatch: pytest.MonkeyPatch, seed: int
) -> None:
    rng = random.Random(seed)
    rows = _ledger(rng, [0, 1, 2, 7, 40, 150, 600, 2500][seed % 8])
    fast = _two_passes(monkeypatch)
    app = make_app()
    with app_runtime(app).activate():
        sessions = current_runtime().sessions
        with sessions.begin() as session:
            _store(session, rows)
        postgres = sessions.kw["bind"].dialect.name == "postgresql"
        for window in _windows(rng):
            with sessions() as session:
                report = bottleneck_report(session, window, now=NOW, longest=500)
            _check(report, rows, window)
            if postgres:  # the same JSON as the sort-based queries
                with monkeypatch.context() as patch:
                    patch.setattr(report_postgres, "two_pass", lambda *args: None)
                    with sessions() as session:
                        reference = bottleneck_report(session, window, now=NOW, longest=500)
                assert report == reference
    assert None not in fast


@pytest.mark.parametrize("query", ["", "since=2026-11-16&until=2026-11-24", "team=payments"])
def test_hand_ledger_same_through_both_paths(
    report_app: Flask, monkeypatch: pytest.MonkeyPatch, query: str
) -> None:
    """conftest's ledger (figures worked out in test_figures.py) on PostgreSQL's two paths."""
    def get() -> Any:
        return report_app.test_client().get(f"/reports/bottlenecks?{query}",
                                            headers=bearer()).get_json()

    answers = _two_passes(monkeypatch)
    fast = get()
    assert None not in answers  # none fell back to the sorts (SQLite: never asked)
    monkeypatch.setattr(report_postgres, "two_pass", lambda *args: None)
    assert fast == get()
