"""``leaderleader rules suggest``: a planted rubber stamp gives exactly its hunk, controls none."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from click.testing import CliRunner
from sqlalchemy import insert

from leaderleader.cli import main
from ledger.models import ApprovalWait, Intent, TicketRecord
from rules.model import utc_now
from service.runtime import current_runtime
from service.settings import EXAMPLE_RULES
from webhooks.extension import app_runtime

RUBBER_STAMP = '''\
@@ -56,9 +56,13 @@
         customfield_10060: {lt: 5000}     # amount in the ticket's "Cost" field
     decided_at: tech_lead
     purpose: Small purchases unblock the team; the budget owner reviews them monthly.
+  # leaderleader suggests: lower decided_at of 'Spend under 5k' from manager to tech_lead
+  # Carol S (carol) approved 8 of 8 'Spend under 5k' waits,
+  # a median 0.05 h after the ticket reached them, after a median wait of 20.0 h;
+  # tech_lead held the information in 8 of them.
   - name: Spend under 5k
     match: {labels: [purchase]}
-    decided_at: manager
+    decided_at: tech_lead
   - name: Vendor contracts
     match: {labels: [vendor]}
     decided_at: manager
'''


def _wait(number: int, rule: str, approver: str, level: str, holder: str, started: datetime,
          waited: timedelta, approval: timedelta, **extra: Any) -> dict[str, Any]:
    ended = started + waited
    return {"ticket_id": number, "issue_key": f"PAY-{number}", "project": "PAY",
            "team": "payments", "status": "Awaiting Approval", "started_at": started,
            "ended_at": ended, "wait_seconds": waited.total_seconds(), "approver": approver,
            "approver_level": level, "holder_level": holder, "decision_rule": rule,
            "flagged": extra.pop("flagged", False), "unmapped": [], "verdict": {},
            "ticket_snapshot": {}, "reached_at": ended - approval, "end_status": "Approved",
            **extra}


def _ledger(now: datetime) -> list[dict[str, Any]]:
    rows = []
    for n in range(8):
        day = now - timedelta(days=3 + 5 * n)
        # the rubber stamp: Carol approves every small purchase 3 minutes after it reaches her,
        # after it waited 20 hours
        rows.append(_wait(100 + n, "Spend under 5k", "carol", "manager", "tech_lead", day,
                          timedelta(hours=20), timedelta(minutes=3)))
        # control: Dana reads vendor contracts for hours once they reach her
        rows.append(_wait(200 + n, "Vendor contracts", "dana", "director", "tech_lead", day,
                          timedelta(hours=20), timedelta(hours=9)))
        # control: Erin approves small spend at once, but nobody waited long for her
        rows.append(_wait(300 + n, "Small spend", "erin", "vp", "engineer", day,
                          timedelta(minutes=40), timedelta(minutes=2)))
        # control: a rubber stamp from before --since is not evidence any more
        rows.append(_wait(400 + n, "Small spend", "carol", "manager", "engineer",
                          now - timedelta(days=300 + n), timedelta(hours=30),
                          timedelta(minutes=1)))
    return rows


def _store(app: Any, rows: list[dict[str, Any]], intents: list[dict[str, Any]] = ()) -> None:
    with app_runtime(app).activate(), current_runtime().sessions.begin() as session:
        session.execute(insert(TicketRecord), [
            {"id": r["ticket_id"], "key": r["issue_key"], "project": "PAY", "summary": "",
             "labels": [], "components": [], "fields": {}} for r in rows])
        session.execute(insert(ApprovalWait), rows)
        if intents:
            session.execute(insert(Intent), list(intents))


def suggest(database_url: str, *args: str) -> Any:
    env = {"DATABASE_URL": database_url, "REDIS_URL": "", "RULES_FILE": str(EXAMPLE_RULES)}
    return CliRunner().invoke(main, ["rules", "suggest", *args], env=env)


def test_a_planted_rubber_stamp_is_exactly_one_hunk(make_app, database_url, tmp_path: Path):
    rules_file = tmp_path / "rules.yaml"
    rules_file.write_text(EXAMPLE_RULES.read_text())
    _store(make_app(), _ledger(utc_now()))
    result = suggest(database_url, "--rules", str(rules_file))
    assert result.exit_code == 0, result.output
    header = f"--- {rules_file}\n+++ {rules_file} (suggested)\n"
    assert result.stdout == header + RUBBER_STAMP
    assert "1 suggestion(s)" in result.stderr
    assert rules_file.read_text() == EXAMPLE_RULES.read_text()  # never edits the file


def test_without_evidence_nothing_is_proposed(make_app, database_url):
    rows = [r for r in _ledger(utc_now()) if r["approver"] != "carol"]
    _store(make_app(), rows)
    result = suggest(database_url, "--since", "400d")
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    assert "no suggestions" in result.stderr


def test_always_flagged_rules_and_people_acting_on_intents_get_evidence(make_app, database_url):
    now = utc_now()
    rows = [_wait(500 + n, "Routine production deploy", "dana", "director", "engineer",
                  now - timedelta(days=2 + n), timedelta(hours=3), timedelta(hours=2),
                  flagged=True, first_intent_at=now - timedelta(days=2 + n, hours=-1),
                  reply="acknowledged", replied_at=now - timedelta(days=2 + n, hours=-2))
            for n in range(6)]
    intents = [{"wait_id": None, "issue_key": r["issue_key"], "jira_comment_id": str(n),
                "author": "5b10a2844c20165700ede21g", "author_handle": "bob",
                "body": "I intend to deploy", "declared_at": r["first_intent_at"]}
               for n, r in enumerate(rows)]
    app = make_app()
    _store(app, rows)
    with app_runtime(app).activate(), current_runtime().sessions.begin() as session:
        ids = dict(session.query(ApprovalWait.issue_key, ApprovalWait.id).all())
        for intent in intents:
            intent["wait_id"] = ids[intent["issue_key"]]
        session.execute(insert(Intent), intents)
    result = suggest(database_url, "--rules", str(EXAMPLE_RULES))
    assert result.exit_code == 0, result.output
    assert ("+  # leaderleader suggests: every 'Routine production deploy' wait was flagged: "
            "its approvers never sit at engineer\n"
            "+  # 6 of 6 waits flagged; approvers' levels: director (6).\n") in result.stdout
    assert ("+  # leaderleader suggests: Bob Li acts on intents and nobody objects\n"
            "+  # 6 waits with their intent: 6 acknowledged, 0 proceeded, none objected to.\n"
            ) in result.stdout
    assert "-    decided_at" not in result.stdout  # evidence only: nothing changes by itself


def test_a_bad_since_is_one_line(database_url):
    result = suggest(database_url, "--since", "half a year")
    assert result.exit_code == 1
    assert result.output.strip() == "Error: --since must look like 90d, 12w or 36h, not 'half a year'"


def test_the_report_lists_what_rules_suggest_would_propose(make_app):
    from tests.reports.conftest import TOKEN, bearer

    app = make_app(report_token=TOKEN)
    _store(app, _ledger(utc_now()))
    report = app.test_client().get("/reports/bottlenecks", headers=bearer()).get_json()
    [stamp] = report["suggestions"]
    assert {k: stamp[k] for k in ("kind", "rule", "current", "decided_at")} == {
        "kind": "rubber_stamp", "rule": "Spend under 5k", "current": "manager",
        "decided_at": "tech_lead"}
    assert stamp["figures"] == {"approver": "carol", "waits": 8, "approved": 8,
                                "median_approval_hours": 0.05, "median_wait_hours": 20.0}
