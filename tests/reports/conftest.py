"""A small hand-made ledger whose report figures are worked out by hand in test_figures.py.

Clock: "now" is pinned to Wednesday 2026-11-25 12:00 UTC. The usual window is
[2026-11-16, 2026-11-24): ISO weeks 2026-W47 (Mon 16th) and 2026-W48 (Mon 23rd).

| wait | ticket | approver (level)     | started      | ended        | hours | notes                    |
|------|--------|----------------------|--------------|--------------|-------|--------------------------|
| W1   | PAY-1  | dana (director)      | 11-16 09:00  | 11-16 19:00  | 10    | flagged, deploy rule     |
| W2   | PAY-2  | dana (director)      | 11-17 08:00  | 11-18 08:00  | 24    | flagged, intent 11-17 12h|
| W3   | PAY-3  | carol (manager)      | 11-18 10:00  | 11-18 14:00  | 4     | unmapped dana.k (now known) |
| W4   | PAY-4  | carol (manager)      | 11-14 12:00  | 11-16 12:00  | 48    | across `since`           |
| W5   | PAY-5  | dana (director)      | 11-10 00:00  | 11-12 00:00  | 48    | before the window        |
| W6   | PAY-6  | dana (director)      | 11-23 12:00  | open         | 48 so far | flagged, deploy rule |
| W7   | OPS-7  | 5b10unknown (none)   | 11-01 00:00  | open         | 588 so far | unmapped, no team   |
| W8   | PAY-8  | alice (tech_lead)    | 11-19 00:00  | 11-19 06:00  | 6     | unmapped ghost.holder    |
| W9   | PAY-9  | dana (director)      | 11-20 00:00  | open         | -     | ticket deleted: ignored  |
| W10  | PAY-10 | bob (engineer)       | 11-24 06:00  | 11-24 08:00  | 2     | starts at `until`+6h     |

Intents: PAY-2 11-17 12:00 (W2), OPS-7 11-05 (W7), PAY-6 11-23 13:00 (W6),
PAY-99 11-20 (no wait; the ticket is in PAY).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest
from flask import Flask

from ledger.models import ApprovalWait, Intent, TicketRecord
from service.runtime import current_runtime
from webhooks.extension import app_runtime

TOKEN = "report-token-for-tests"
JIRA = "https://jira.example.com"
NOW = datetime(2026, 11, 25, 12, 0)
DEPLOY, SPEND, ELSE = "Routine production deploy", "Spend under 5k", "Everything else"


def at(text: str) -> datetime:
    """``11-16T09:00`` is in 2026; a full ISO datetime is taken as it is."""
    return datetime.fromisoformat(text if text[4:5] == "-" else f"2026-{text}")


WAITS: list[dict[str, Any]] = [
    dict(key="PAY-1", approver="dana", level="director", start="11-16T09:00", end="11-16T19:00",
         flagged=True, rule=DEPLOY, decider="bob"),
    dict(key="PAY-2", approver="dana", level="director", start="11-17T08:00", end="11-18T08:00",
         flagged=True, rule=DEPLOY, decider="bob", intent="11-17T12:00"),
    dict(key="PAY-3", approver="carol", level="manager", start="11-18T10:00", end="11-18T14:00",
         rule=SPEND, unmapped=["dana.k"]),
    dict(key="PAY-4", approver="carol", level="manager", start="11-14T12:00", end="11-16T12:00",
         rule=SPEND),
    dict(key="PAY-5", approver="dana", level="director", start="11-10T00:00", end="11-12T00:00",
         rule=SPEND, unmapped=["5b10unknown"]),
    dict(key="PAY-6", approver="dana", level="director", start="11-23T12:00", end=None,
         flagged=True, rule=DEPLOY, decider="alice"),
    dict(key="OPS-7", approver="5b10unknown", level=None, start="11-01T00:00", end=None,
         project="OPS", team=None, rule=None, unmapped=["5b10unknown"]),
    dict(key="PAY-8", approver="alice", level="tech_lead", start="11-19T00:00", end="11-19T06:00",
         rule=ELSE, unmapped=["ghost.holder"]),
    dict(key="PAY-9", approver="dana", level="director", start="11-20T00:00", end=None,
         flagged=True, rule=DEPLOY, deleted=True),
    dict(key="PAY-10", approver="bob", level="engineer", start="11-24T06:00", end="11-24T08:00",
         rule=ELSE),
]
INTENTS = [("PAY-2", "11-17T12:00"), ("OPS-7", "11-05T00:00"), ("PAY-6", "11-23T13:00"),
           ("PAY-99", "11-20T00:00")]


def add_wait(session: Any, spec: dict[str, Any]) -> ApprovalWait:
    """One ticket (reused by key) and one episode, as the worker would have recorded them."""
    project = spec.get("project", "PAY")
    ticket = session.query(TicketRecord).filter_by(key=spec["key"]).one_or_none()
    if ticket is None:
        ticket = TicketRecord(key=spec["key"], project=project, status="Awaiting Approval",
                        deleted=spec.get("deleted", False))
        session.add(ticket)
        session.flush()
    wait = ApprovalWait(
        ticket_id=ticket.id, issue_key=spec["key"], project=project,
        team=spec.get("team", "payments"), status=spec.get("status", "Awaiting Approval"),
        started_at=at(spec["start"]), ended_at=at(spec["end"]) if spec.get("end") else None,
        approver=spec["approver"], approver_level=spec["level"],
        decider=spec.get("decider"), decision_rule=spec.get("rule"),
        flagged=spec.get("flagged", False), unmapped=spec.get("unmapped", []),
        first_intent_at=at(spec["intent"]) if spec.get("intent") else None,
    )
    session.add(wait)
    session.flush()
    return wait


def seed(app: Flask, waits: list[dict[str, Any]] = WAITS,
         intents: list[tuple[str, str]] = INTENTS) -> None:
    with app_runtime(app).activate():
        with current_runtime().sessions.begin() as session:
            by_key = {spec["key"]: add_wait(session, spec) for spec in waits}
            for number, (key, declared) in enumerate(intents):
                if key not in by_key and session.query(TicketRecord).filter_by(key=key).count() == 0:
                    session.add(TicketRecord(key=key, project=key.split("-")[0]))
                wait = by_key.get(key)
                session.add(Intent(wait_id=wait.id if wait else None, issue_key=key,
                                   jira_comment_id=str(10000 + number), author="bob",
                                   body="I intend to ship it", declared_at=at(declared)))


@pytest.fixture(autouse=True)
def pinned_now(monkeypatch: pytest.MonkeyPatch) -> datetime:
    monkeypatch.setattr("webhooks.reports.utc_now", lambda: NOW)
    return NOW


@pytest.fixture()
def report_app(make_app: Callable[..., Flask]) -> Flask:
    app = make_app(report_token=TOKEN, jira_url=JIRA)
    seed(app)
    return app


def bearer(token: str = TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
