"""The whole leader-leader loop through the real pipeline: webhooks, worker, ledger, report, CLI.

PAY-101 enters approval at T0 (2026-11-20 10:15 UTC, handed from Bob to Dana, a
director); Bob's intent comes at T0+1h; Dana's answer at T0+2h; the ticket leaves
approval at T0+3h and is done at T0+4h.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from click.testing import CliRunner
from flask import Flask
from sqlalchemy import select

from leaderleader.cli import main
from ledger.models import ApprovalWait
from service.runtime import current_runtime
from tests.conftest import fixture_body, fixture_json, post_webhook, run_worker
from tests.fakejira import FakeJira
from tests.reports.conftest import TOKEN, bearer
from webhooks.extension import app_runtime

T0 = datetime(2026, 11, 20, 10, 15, 2, 511000)
DEPLOY = "issue_updated__cloud_deploy_handed_to_director"
INTENT = "comment_created__cloud_intent"
LEAVES = "issue_updated__cloud_leaves_approval"
VENDOR = "issue_updated__cloud_vendor_contract_handed_to_vp"
RULE = "Routine production deploy"


def deliver(app: Flask, *names: str) -> None:
    for name in names:
        assert post_webhook(app, fixture_body(name)).status_code == 202, name
    run_worker(app)


def the_wait(app: Flask, key: str = "PAY-101") -> ApprovalWait:
    with app_runtime(app).activate(), current_runtime().sessions() as session:
        return session.scalars(select(ApprovalWait).where(ApprovalWait.issue_key == key)).one()


def report(app: Flask, monkeypatch: pytest.MonkeyPatch, now: datetime, query: str = "") -> Any:
    monkeypatch.setattr("webhooks.reports.utc_now", lambda: now)
    response = app.test_client().get(f"/reports/bottlenecks?{query}", headers=bearer())
    assert response.status_code == 200, response.get_json()
    return response.get_json()


@pytest.fixture()
def app(make_app: Any) -> Flask:
    return make_app(report_token=TOKEN)


def test_very_well_from_the_approver_acknowledges_the_intent(app, monkeypatch):
    deliver(app, DEPLOY, INTENT, "comment_created__cloud_very_well", LEAVES)
    wait = the_wait(app)
    assert (wait.reply, wait.replied_at) == ("acknowledged", T0 + timedelta(hours=2))
    assert wait.reached_at == T0  # handed to Dana as it entered approval
    loop = report(app, monkeypatch, T0 + timedelta(days=1))["loop"]
    assert {k: loop[k] for k in ("intents", "acknowledged", "objected", "proceeded",
                                 "median_ack_hours", "decisions_by_intent")} == {
        "intents": 1, "acknowledged": 1, "objected": 0, "proceeded": 0,
        "median_ack_hours": 1.0, "decisions_by_intent": 1}
    assert loop["by_approver"][0] | {} == {
        "approver": "dana", "level": "director", "intents": 1, "acknowledged": 1,
        "objected": 0, "proceeded": 0, "unanswered": 0, "median_ack_hours": 1.0}


def test_the_approval_transition_after_the_intent_acknowledges_it(app):
    deliver(app, DEPLOY, INTENT, LEAVES)
    wait = the_wait(app)
    assert (wait.reply, wait.replied_at) == ("acknowledged", T0 + timedelta(hours=3))


def test_a_rejection_is_no_acknowledgement(app):
    deliver(app, DEPLOY, INTENT, "issue_updated__cloud_rejected")
    wait = the_wait(app)
    assert (wait.end_status, wait.reply) == ("Rejected", None)


def test_hold_is_an_objection_and_stays_the_answer(app, monkeypatch):
    deliver(app, DEPLOY, INTENT, "comment_created__cloud_hold", LEAVES)
    assert the_wait(app).reply == "objected"
    loop = report(app, monkeypatch, T0 + timedelta(days=10))["loop"]
    assert (loop["objected"], loop["acknowledged"], loop["proceeded"]) == (1, 0, 0)


def test_very_well_from_someone_else_is_not_an_answer(app):
    deliver(app, DEPLOY, INTENT, "comment_created__cloud_very_well_not_the_approver")
    assert the_wait(app).reply is None


def test_very_well_before_any_intent_is_not_an_answer(app):
    deliver(app, DEPLOY, "comment_created__cloud_very_well")
    assert the_wait(app).reply is None


def test_an_unanswered_intent_has_proceeded_once_its_date_passed(app, monkeypatch):
    deliver(app, DEPLOY, INTENT)  # remind_after 2d: proceed on Monday 2026-11-23
    early = report(app, monkeypatch, datetime(2026, 11, 23, 18, 0))["loop"]
    assert (early["proceeded"], early["unanswered"]) == (0, 1)
    late = report(app, monkeypatch, datetime(2026, 11, 24, 0, 1))["loop"]
    assert (late["proceeded"], late["unanswered"]) == (1, 0)


def test_a_reopen_within_the_window_is_an_outcome_to_learn_from(app, monkeypatch):
    deliver(app, DEPLOY, INTENT, LEAVES, "issue_updated__cloud_done",
            "issue_updated__cloud_reopened")
    wait = the_wait(app)
    assert (wait.outcome, wait.outcome_at) == ("reopened", T0 + timedelta(days=5))
    loop = report(app, monkeypatch, T0 + timedelta(days=6))["loop"]
    assert loop["outcomes_to_learn"] == 1
    assert loop["outcomes"]["by_rule"] == [{"rule": RULE, "decisions_by_intent": 1,
                                            "outcomes_to_learn": 1, "reopened": 1, "reverted": 0}]
    assert loop["outcomes"]["by_team"][0]["team"] == "payments"
    assert "approver" not in loop["outcomes"]["by_rule"][0]  # never per person


def test_a_reopen_after_the_outcome_window_is_not_counted(app):
    deliver(app, DEPLOY, INTENT, LEAVES, "issue_updated__cloud_done",
            "issue_updated__cloud_reopened_after_a_month")
    assert the_wait(app).outcome is None


def test_a_reverts_link_is_an_outcome_and_a_blocks_link_is_not(app, make_app):
    deliver(app, DEPLOY, INTENT, LEAVES, "issuelink_created__cloud_blocks")
    assert the_wait(app).outcome is None
    deliver(app, "issuelink_created__cloud_reverts")
    assert the_wait(app).outcome == "reverted"


def test_delegation_counts_decisions_taken_by_intent(app, monkeypatch):
    deliver(app, DEPLOY, INTENT, LEAVES)
    body = report(app, monkeypatch, T0 + timedelta(days=1))
    assert body["delegation"] == [{"week": "2026-W47", "week_start": "2026-11-16",
                                   "decisions": 1, "at_or_below_information": 1,
                                   "by_intent": 1, "share": 1.0}]
    assert body["intents_by_level"] == [{"level": "engineer", "intents": 1}]
    assert body["intents_by_team"] == [{"team": "payments", "intents": 1}]


def test_a_decision_approved_above_its_level_without_intent_is_not_delegated(app, monkeypatch):
    deliver(app, DEPLOY, LEAVES)
    [week] = report(app, monkeypatch, T0 + timedelta(days=1))["delegation"]
    assert (week["decisions"], week["at_or_below_information"], week["share"]) == (1, 0, 0.0)


def test_a_competence_gap_is_said_in_the_comment_and_listed_in_the_report(
        make_app, monkeypatch):
    with FakeJira() as fake:
        app = make_app(report_token=TOKEN, jira_url=fake.url, jira_user="bot@acme.example",
                       jira_api_token="cloud-token-abcdef")
        issue = fixture_json(VENDOR)["issue"]  # Jira shows it waiting: look before posting
        fake.add_issue(issue["key"], issue["fields"], issue_id=issue["id"])
        deliver(app, VENDOR)
        [posted] = fake.comments("PAY-105")
    assert ("This decision requires the competence *vendor\\-spend*, which nobody at the "
            "information level holds; the nearest who does is *Dana K* (director).") in posted["body"]
    assert "[~accountid:dana.k], you hold what is needed to decide" in posted["body"]
    wait = the_wait(app, "PAY-105")
    assert (wait.flagged, wait.decider, wait.competence_gap, wait.competence, wait.competent) == (
        True, "dana", True, "vendor-spend", "dana")
    gaps = report(app, monkeypatch, T0 + timedelta(days=1))["competence_gaps"]
    assert gaps == [{"rule": "Vendor contracts", "competence": "vendor-spend", "team": "payments",
                     "episodes": 1, "nearest_competent": ["dana"], "keys": ["PAY-105"],
                     "last_seen": T0.isoformat()}]


def test_rules_explain_shows_the_purpose_and_the_competence_gap(make_app, database_url):
    app = make_app()
    deliver(app, VENDOR, DEPLOY)
    env = {"DATABASE_URL": database_url, "REDIS_URL": "", "JIRA_URL": ""}
    vendor = CliRunner().invoke(main, ["rules", "explain", "PAY-105"], env=env)
    assert vendor.exit_code == 0, vendor.output
    assert ("requires competence: vendor-spend (competence gap: nobody at the information level "
            "holds it; nearest who does: Dana K (dana))") in vendor.output
    assert "purpose: Whoever signs must know our vendor terms" in vendor.output
    deploy = CliRunner().invoke(main, ["rules", "explain", "PAY-101"], env=env)
    assert "requires competence: deploy (held)" in deploy.output


def test_a_link_event_without_its_issues_is_a_400(app):
    import json

    body = json.dumps({"webhookEvent": "issuelink_created", "issueLink": {"id": 1}}).encode()
    response = post_webhook(app, body)
    assert response.status_code == 400
    assert response.get_json()["error"] == ("'issueLink' must name its sourceIssueId and "
                                            "destinationIssueId")
