"""People and approvals on real payloads: intents on the right wait, names, DC keys, JSM."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from ledger.models import ApprovalWait, Intent, JiraUser
from service.runtime import current_runtime
from service.settings import EXAMPLE_RULES
from tests.conftest import fixture_body, fixture_json, post_webhook, run_worker
from tests.fakejira import FakeJira
from webhooks.extension import app_runtime

DEPLOY = "issue_updated__cloud_deploy_handed_to_director"
LEAVES = "issue_updated__cloud_leaves_approval"
INTENT = "comment_created__cloud_intent"
TOKEN = "report-token-0123456789"
HOUR_MS = 3_600_000


def body_of(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload).encode()


def report(app) -> dict[str, Any]:
    response = app.test_client().get("/reports/bottlenecks",
                                     headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def rows(app, model) -> list[Any]:
    with app_runtime(app).activate(), current_runtime().sessions() as session:
        return list(session.scalars(select(model).order_by(model.id)))


# -- intents -------------------------------------------------------------------------


def test_an_intent_written_after_the_wait_ended_belongs_to_no_wait(make_app):
    app = make_app(report_token=TOKEN)
    late = fixture_json(INTENT)
    late["timestamp"] = fixture_json(LEAVES)["timestamp"] + HOUR_MS  # after the approval
    for body in (fixture_body(DEPLOY), fixture_body(LEAVES), body_of(late)):
        post_webhook(app, body)
    run_worker(app)
    [wait] = rows(app, ApprovalWait)
    [intent] = rows(app, Intent)
    assert wait.ended_at is not None and intent.declared_at > wait.ended_at
    assert (intent.wait_id, wait.first_intent_at) == (None, None)
    assert report(app)["summary"]["ended_after_intent"] == 0


def test_an_intent_written_during_the_wait_is_counted(make_app):
    app = make_app(report_token=TOKEN)
    for name in (DEPLOY, INTENT, LEAVES):
        post_webhook(app, fixture_body(name))
    run_worker(app)
    [wait] = rows(app, ApprovalWait)
    [intent] = rows(app, Intent)
    assert (intent.wait_id, intent.author_handle, intent.author_level) == (wait.id, "bob", "engineer")
    summary = report(app)["summary"]
    assert (summary["intents"], summary["ended_after_intent"]) == (1, 1)


def test_the_approvers_own_intent_is_not_a_delegated_one(make_app):
    app = make_app(report_token=TOKEN)
    own = fixture_json(INTENT)
    own["comment"]["author"] = fixture_json(DEPLOY)["issue"]["fields"]["assignee"]  # dana.k
    own["comment"]["body"] = "I intend to approve this after lunch."
    for body in (fixture_body(DEPLOY), body_of(own), fixture_body(LEAVES)):
        post_webhook(app, body)
    run_worker(app)
    [wait] = rows(app, ApprovalWait)
    [intent] = rows(app, Intent)
    assert (intent.wait_id, intent.by_approver, intent.author_level) == (wait.id, True, "director")
    assert wait.first_intent_at is None
    summary = report(app)["summary"]
    assert (summary["intents"], summary["ended_after_intent"]) == (0, 0)


# -- names ---------------------------------------------------------------------------


def test_an_unmapped_approver_is_shown_by_name_in_the_report(make_app):
    app = make_app(report_token=TOKEN)
    post_webhook(app, fixture_body("issue_updated__cloud_unmapped_approver"))
    run_worker(app)
    [missing] = report(app)["unmapped"]
    assert missing["jira_id"] == "712020:0a1b2c3d-4e5f-6789-abcd-ef0123456789"
    assert missing["name"] == "Sam Outsider"
    html = app.test_client().get("/reports/bottlenecks.html",
                                 headers={"Authorization": f"Bearer {TOKEN}"}).get_data(as_text=True)
    assert "Sam Outsider" in html


def test_every_user_seen_is_kept_with_name_and_email(make_app):
    app = make_app()
    post_webhook(app, fixture_body("issue_updated__server_handed_to_director"))
    run_worker(app)
    users = {u.jira_id: (u.user_key, u.display_name, u.email) for u in rows(app, JiraUser)}
    assert users == {"carol.s": ("JIRAUSER62361", "Carol S", "carol.s@acme.example"),
                     "dana.k": ("JIRAUSER53168", "Dana K", "dana.k@acme.example")}


def test_a_newer_name_replaces_the_old_one_and_a_late_delivery_does_not(make_app):
    app = make_app()
    renamed = fixture_json(DEPLOY)
    renamed["timestamp"] += HOUR_MS
    renamed["changelog"]["id"] = "20431"  # a later change of the ticket, not a repeat
    for user in (renamed["user"], renamed["issue"]["fields"]["reporter"],
                 renamed["issue"]["fields"]["creator"]):
        user["displayName"] = "Bob Li-Meyer"
    older = fixture_json(DEPLOY)
    older["timestamp"] -= HOUR_MS
    older["changelog"]["id"] = "10430"
    for body in (fixture_body(DEPLOY), body_of(renamed), body_of(older)):
        post_webhook(app, body)
        run_worker(app)
    names = {u.jira_id: u.display_name for u in rows(app, JiraUser)}
    assert names["5b10a2844c20165700ede21g"] == "Bob Li-Meyer"
    assert "PAY" not in names and "Pay" not in names  # a project has a name and a key too


# -- Jira Service Management approvals -----------------------------------------------------


def jsm_rules(tmp_path: Path) -> Path:
    text = EXAMPLE_RULES.read_text().replace(
        'statuses: ["Awaiting Approval", "Pending Sign-off"]',
        'statuses: ["Waiting for approval"]').replace(
        "approver_field: customfield_10050", "approver_field: customfield_10010")
    path = tmp_path / "jsm.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(("pending", "decided", "holder", "mention"), [
    ("issue_updated__cloud_jsm_waiting_for_approval", "issue_updated__cloud_jsm_approval_approved",
     "bob", "[~accountid:5b10a2844c20165700ede21g]"),
    # Data Center: the changelog names the previous assignee by key (JIRAUSER62361)
    ("issue_updated__server_jsm_waiting_for_approval", "issue_updated__server_jsm_approval_declined",
     "carol", "[~carol.s]"),
])
def test_jsm_approvals_wait_on_the_pending_approvers_until_the_final_decision(
        make_app, tmp_path, pending, decided, holder, mention):
    deployment = "Cloud" if "cloud" in pending else "Server"
    with FakeJira(deployment=deployment) as jira:
        issue = fixture_json(pending)["issue"]
        jira.add_issue(issue["key"], issue["fields"], issue_id=issue["id"])
        credentials: dict[str, Any] = ({"jira_user": "bot@acme.example", "jira_api_token": "t0ken"}
                                       if deployment == "Cloud" else {"jira_pat": "dc-pat"})
        app = make_app(rules_file=jsm_rules(tmp_path), jira_url=jira.url, **credentials)
        post_webhook(app, fixture_body(pending))
        run_worker(app)
        [wait] = rows(app, ApprovalWait)
        # erin (vp) already approved: the wait is on dana (director), who has not answered
        assert (wait.approver, wait.holder, wait.flagged, wait.ended_at) == ("dana", holder, True, None)
        [posted] = jira.comments(issue["key"])
        assert mention in posted["body"]

        post_webhook(app, fixture_body(decided))  # still in the status, but decided
        run_worker(app)
        [wait] = rows(app, ApprovalWait)
        assert wait.ended_at is not None
        assert int((wait.ended_at - wait.started_at).total_seconds()) == 7800


def test_backfill_reads_jsm_approvals_as_they_stood_in_each_wait(database_url, tmp_path):
    from click.testing import CliRunner

    from leaderleader.cli import main
    from ledger.db import make_engine, make_sessionmaker
    from service.settings import Settings

    issue = fixture_json("issue_updated__cloud_jsm_waiting_for_approval")["issue"]
    move = [("In Progress", "3"), ("Waiting for approval", "10002")]

    def history(n: int, at: str, frm: int, to: int) -> dict[str, Any]:
        return {"id": str(n), "created": at, "items": [
            {"field": "status", "fieldId": "status", "from": move[frm][1], "fromString": move[frm][0],
             "to": move[to][1], "toString": move[to][0]}]}

    with FakeJira(deployment="Cloud") as jira:
        jira.add_issue(issue["key"], {**issue["fields"], "status": {"name": "Waiting for approval",
                                                                     "id": "10002"}}, [
            history(1, "2026-11-18T09:00:30.000+0000", 0, 1),  # the manager sign-off, erin
            history(2, "2026-11-18T11:00:00.000+0000", 1, 0),
            history(3, "2026-11-20T10:15:02.511+0000", 0, 1),  # the current one, dana to answer
        ], issue_id=issue["id"])
        env = {"JIRA_URL": jira.url, "JIRA_USER": "bot@acme.example", "JIRA_API_TOKEN": "t0ken",
               "JIRA_PAT": "", "DATABASE_URL": database_url, "REDIS_URL": "",
               "RULES_FILE": str(jsm_rules(tmp_path))}
        result = CliRunner().invoke(main, ["backfill", "--jql", "project = ITSM"], env=env)
        assert result.exit_code == 0, result.output
    engine = make_engine(Settings(database_url=database_url).effective_database_url)
    with make_sessionmaker(engine)() as session:
        got = [(w.started_at.day, w.approver, w.ended_at is None)
               for w in session.scalars(select(ApprovalWait).order_by(ApprovalWait.started_at))]
    engine.dispose()
    assert got == [(18, "erin", False), (20, "dana", True)]


def test_intents_find_their_wait_whatever_order_the_deliveries_come_in(make_app):
    """An intent delivered before its wait's entry is adopted by it; one attached to a wait
    whose earlier end arrives later is taken off it again."""
    app = make_app(report_token=TOKEN)
    late = fixture_json(INTENT)
    late["comment"]["id"] = "70001"
    late["timestamp"] = fixture_json(LEAVES)["timestamp"] + HOUR_MS  # after the approval
    for body in (fixture_body(INTENT), body_of(late), fixture_body(DEPLOY)):  # exit still missing
        post_webhook(app, body)
    run_worker(app)
    [wait] = rows(app, ApprovalWait)
    assert {i.jira_comment_id: i.wait_id for i in rows(app, Intent)} == {
        fixture_json(INTENT)["comment"]["id"]: wait.id, "70001": wait.id}
    post_webhook(app, fixture_body(LEAVES))  # the exit, delivered last
    run_worker(app)
    [wait] = rows(app, ApprovalWait)
    assert {i.jira_comment_id: i.wait_id for i in rows(app, Intent)} == {
        fixture_json(INTENT)["comment"]["id"]: wait.id, "70001": None}
    assert wait.first_intent_at == min(i.declared_at for i in rows(app, Intent))
    summary = report(app)["summary"]
    assert (summary["intents"], summary["ended_after_intent"]) == (2, 1)
