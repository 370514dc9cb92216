"""One answer to "is this ticket waiting, and on whom?" whichever way the ticket comes in.

The same tickets go through the webhook path (intake, worker, ledger), backfill (Jira's
changelog) and ``rules explain`` (the ticket as Jira has it now); all three must agree.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from leaderleader.cli import main
from ledger.db import make_engine, make_sessionmaker
from ledger.models import ApprovalWait
from service.settings import EXAMPLE_RULES, Settings
from tests.conftest import post_webhook, run_worker
from tests.fakejira import FakeJira

BOB, CAROL, DANA = "5b10a2844c20165700ede21g", "carol.s", "dana.k"
FIELD = "customfield_10050"
PROGRESS = ("In Progress", "3")

# (status name, status id, approvers in the approver field, waiting?, approver's handle).
# The rules list "Awaiting Approval" by name and "10200" by id. None for "waiting?" means
# only "the three paths agree" is asserted (the approver field alone, SPEC §5).
CASES: list[tuple[str, str, tuple[str, ...], bool | None, str | None]] = [
    ("awaiting approval", "10100", (), True, "dana"),  # name in another case; assignee approves
    ("Pending CFO", "10200", (), True, "dana"),  # named by id only
    ("AWAITING APPROVAL", "10100", (CAROL,), True, "carol"),  # the field names the approver
    ("Awaiting Approval", "10100", (CAROL, DANA), True, "dana"),  # several: the highest level
    ("In Progress", "3", (), False, None),
    ("In Progress", "3", (DANA,), None, None),
]


@pytest.fixture()
def rules_file(tmp_path):
    path = tmp_path / "rules.yaml"
    path.write_text(EXAMPLE_RULES.read_text().replace(
        'statuses: ["Awaiting Approval", "Pending Sign-off"]',
        'statuses: ["Awaiting Approval", "10200"]'))
    return path


def _fields(name: str, status_id: str, approvers: tuple[str, ...]) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "summary": "Deploy billing-service", "project": {"key": "PAY"},
        "issuetype": {"name": "Task"}, "labels": ["deploy"],
        "status": {"name": name, "id": status_id}, "assignee": {"accountId": DANA},
        "reporter": {"accountId": BOB}, "created": "2026-05-01T08:00:00.000+0000",
        "updated": "2026-05-02T09:00:00.000+0000",
    }
    if approvers:
        fields[FIELD] = [{"accountId": a, "displayName": a} for a in approvers]
    return fields


def _items(name: str, status_id: str, approvers: tuple[str, ...]) -> list[dict[str, Any]]:
    items = []
    if (name, status_id) != PROGRESS:
        items.append({"field": "status", "fieldId": "status", "from": PROGRESS[1],
                      "fromString": PROGRESS[0], "to": status_id, "toString": name})
    items.append({"field": "assignee", "fieldId": "assignee", "from": BOB, "fromString": "Bob Li",
                  "to": DANA, "toString": "Dana K"})
    if approvers:
        value = approvers[0] if len(approvers) == 1 else "[" + ", ".join(approvers) + "]"
        items.append({"field": "Approver", "fieldtype": "custom", "fieldId": FIELD,
                      "from": None, "fromString": None, "to": value, "toString": value})
    return items


def _open_waits(database_url: str, key: str) -> list[ApprovalWait]:
    engine = make_engine(Settings(database_url=database_url).effective_database_url)
    with make_sessionmaker(engine)() as session:
        waits = list(session.scalars(select(ApprovalWait).where(
            ApprovalWait.issue_key == key, ApprovalWait.ended_at.is_(None))))
    engine.dispose()
    return waits


def _answer(waits: list[ApprovalWait]) -> tuple[bool, str | None]:
    assert len(waits) <= 1
    return (True, waits[0].approver) if waits else (False, None)


def test_webhooks_backfill_and_explain_agree(make_app, database_url, rules_file):
    app = make_app(rules_file=rules_file)
    env = {"DATABASE_URL": database_url, "REDIS_URL": "", "RULES_FILE": str(rules_file),
           "JIRA_USER": "bot@acme.example", "JIRA_API_TOKEN": "t0ken", "JIRA_PAT": ""}
    with FakeJira() as fake:
        env["JIRA_URL"] = fake.url
        for n, (name, status_id, approvers, _, _) in enumerate(CASES, 1):
            fields, items = _fields(name, status_id, approvers), _items(name, status_id, approvers)
            body = {"timestamp": 1777712400000 + n, "webhookEvent": "jira:issue_updated",
                    "user": {"accountId": BOB, "displayName": "Bob Li"},
                    "issue": {"id": str(20000 + n), "key": f"WH-{n}", "fields": fields},
                    "changelog": {"id": str(30000 + n), "items": items}}
            assert post_webhook(app, json.dumps(body).encode()).status_code == 202
            fake.add_issue(f"BF-{n}", fields, [
                {"id": str(40000 + n), "created": "2026-05-02T09:00:00.000+0000", "items": items}])
        run_worker(app)
        backfill = CliRunner().invoke(main, ["backfill", "--jql", "project = BF"], env=env)
        assert backfill.exit_code == 0, backfill.output

        for n, (name, status_id, approvers, waiting, approver) in enumerate(CASES, 1):
            explained = CliRunner().invoke(main, ["rules", "explain", f"BF-{n}"], env=env)
            assert explained.exit_code == 0, explained.output
            said = re.search(r"^approver: .*\((\w+)\)", explained.output, re.MULTILINE)
            by_explain = ("not waiting for approval" not in explained.output,
                          said.group(1) if said else None)
            by_webhook = _answer(_open_waits(database_url, f"WH-{n}"))
            by_backfill = _answer(_open_waits(database_url, f"BF-{n}"))
            case = f"case {n}: {name!r} ({status_id}), approver field {approvers}"
            assert by_webhook == by_backfill == by_explain, case
            if waiting is not None:
                assert by_webhook == (waiting, approver), case
