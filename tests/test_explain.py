"""What ``rules explain``, ``simulate`` and ``rules check`` tell a manager, through the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from leaderleader.cli import main
from service.settings import EXAMPLE_RULES
from tests.conftest import fixture_body, fixture_json, post_webhook, run_worker
from tests.fakejira import FakeJira

UNMAPPED = "issue_updated__cloud_unmapped_approver"
DEPLOY = "issue_updated__cloud_deploy_handed_to_director"
SAM = "712020:0a1b2c3d-4e5f-6789-abcd-ef0123456789"


def deliver(make_app, *bodies: bytes) -> None:
    app = make_app()
    for body in bodies:
        post_webhook(app, body)
    run_worker(app)


def cli(database_url: str, *args: str, **env: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args), env={"DATABASE_URL": database_url,
                                                       "JIRA_URL": "", **env})
    return result.exit_code, result.output


def rules_with(tmp_path: Path, old: str, new: str) -> Path:
    text = EXAMPLE_RULES.read_text()
    assert old in text
    path = tmp_path / "rules.yaml"
    path.write_text(text.replace(old, new))
    return path


# -- rules explain ---------------------------------------------------------------------------


def test_explain_names_an_unmapped_approver_and_still_shows_holder_and_team(make_app, database_url):
    deliver(make_app, fixture_body(UNMAPPED))
    code, out = cli(database_url, "rules", "explain", "PAY-104")
    assert code == 0, out
    assert "verdict: not flagged: someone involved is not in the rules file" in out
    assert f"approver: Sam Outsider ({SAM}), not in the rules file" in out
    assert "information holder: Alice Ng (alice), tech_lead" in out
    assert "owning team: payments" in out
    assert f"not in the rules file: Sam Outsider ({SAM})" in out
    assert "right level" not in out and "holder: nobody" not in out


def test_explain_says_when_nobody_is_named_to_approve(make_app, database_url):
    unassigned = fixture_json(DEPLOY)
    unassigned["issue"]["fields"]["assignee"] = None
    unassigned["changelog"]["items"] = unassigned["changelog"]["items"][:1]  # the status move only
    deliver(make_app, json.dumps(unassigned).encode())
    code, out = cli(database_url, "rules", "explain", "PAY-101")
    assert code == 0, out
    assert "verdict: not flagged: nobody is named to approve it" in out
    assert "approver: nobody is named (unassigned)" in out
    assert "it is unassigned: nobody is named to approve it" in out
    assert "the rules file knows" not in out and "right level" not in out


def test_explain_without_jira_shows_the_latest_state_even_of_a_ticket_that_never_waited(
        make_app, database_url):
    deliver(make_app, fixture_body(DEPLOY), fixture_body("issue_updated__cloud_labels_edited_when_done"))
    code, out = cli(database_url, "rules", "explain", "PAY-101")
    assert code == 0, out
    assert "status: Done" in out and "verdict: not waiting for approval" in out
    never = fixture_json(DEPLOY)
    never["issue"]["key"], never["issue"]["id"] = "PAY-150", "10150"
    never["issue"]["fields"]["status"] = {"name": "In Progress", "id": "3"}
    never["changelog"]["items"] = [{"field": "labels", "fieldId": "labels", "toString": "x"}]
    deliver(make_app, json.dumps(never).encode())
    code, out = cli(database_url, "rules", "explain", "PAY-150")
    assert code == 0, out
    assert "status: In Progress" in out and "not waiting for approval" in out


# -- simulate --------------------------------------------------------------------------------


def test_simulate_names_people_marks_unmapped_waits_and_lists_what_changed(
        make_app, database_url, tmp_path):
    deliver(make_app, fixture_body(DEPLOY), fixture_body(UNMAPPED))
    code, out = cli(database_url, "simulate", "--all")
    assert code == 0, out
    assert "None" not in out
    assert "unmapped    PAY-104" in out and f"waits on Sam Outsider ({SAM}), not in the rules file" in out
    assert "ok          PAY-104" not in out
    assert "FLAG        PAY-101" in out and "waits on Dana K (director)" in out
    looser = rules_with(tmp_path, "tolerance: 0 ", "tolerance: 3 ")
    code, out = cli(database_url, "simulate", RULES_FILE=str(looser))
    assert "2 wait(s): 0 would be flagged by these rules; 1 verdict(s) differ" in out
    assert "PAY-101" in out and "was flagged, now not flagged" in out


# -- rules check -----------------------------------------------------------------------------


def test_check_against_the_ledger_warns_about_a_status_it_never_saw(make_app, database_url, tmp_path):
    deliver(make_app, fixture_body(DEPLOY), fixture_body(UNMAPPED))
    typo = rules_with(tmp_path, '"Awaiting Approval"', '"Awaiting Aproval"')
    code, out = cli(database_url, "rules", "check", str(typo), "--against-ledger")
    assert code == 0, out
    assert ("warning: status 'Awaiting Aproval' in waiting_for_approval.statuses was never seen "
            "in the ledger; did you mean 'Awaiting Approval'?") in out
    assert f"not in {typo}: Sam Outsider ({SAM}) (1 approval wait(s) in the ledger)" in out
    code, out = cli(database_url, "rules", "check", str(typo), "--against-ledger", "--strict")
    assert code == 1
    code, out = cli(database_url, "rules", "check", str(EXAMPLE_RULES), "--against-ledger")
    assert "status 'Awaiting Approval'" not in out  # seen, so no warning about it


@pytest.mark.parametrize("deployment", ["Cloud", "Server"])
def test_check_against_jira_finds_statuses_fields_and_people_jira_does_not_have(
        database_url, tmp_path, deployment):
    with FakeJira(deployment=deployment) as jira:
        jira.statuses.append({"id": "10051", "name": "Pending Sign-off",
                              "statusCategory": {"key": "indeterminate"}})
        for account, name in (("5b10a2844c20165700ede21g", "Bob Li"), ("5b10ac8d82e05b22cc7d4ef5", "Alice Ng"),
                              ("carol.s", "Carol S"), ("dana.k", "Dana K")):
            jira.add_known_user(name, account_id=account, name=account)
        # Data Center: a person may be written by user key; Cloud knows erin by accountId
        jira.add_known_user("Erin V", account_id="erin.v", name="erin.vogel", key="erin.v")
        env = {"JIRA_URL": jira.url, "JIRA_USER": "bot@acme.example", "JIRA_API_TOKEN": "t0ken"}
        if deployment == "Server":
            env.update(JIRA_USER="", JIRA_API_TOKEN="", JIRA_PAT="dc-pat")
        code, out = cli(database_url, "rules", "check", str(EXAMPLE_RULES), "--against-jira", **env)
        assert code == 0, out
        assert "all exist in Jira" in out and "warning" not in out
        wrong = rules_with(tmp_path, '"Pending Sign-off"', '"Pending Signoff"')
        wrong.write_text(wrong.read_text().replace("customfield_10050", "customfield_10500")
                         .replace("dana.k", "dana.kk"))
        code, out = cli(database_url, "rules", "check", str(wrong), "--against-jira", "--strict", **env)
    assert code == 1
    assert ("warning: status 'Pending Signoff' in waiting_for_approval.statuses is not a status "
            "in Jira; did you mean 'Pending Sign-off'?") in out
    assert "approver_field 'customfield_10500' is not a field in Jira; did you mean 'customfield_10050'" in out
    assert "people.dana: Jira has no user 'dana.kk'" in out
    assert "people.carol" not in out


def test_check_against_jira_needs_jira(database_url):
    code, out = cli(database_url, "rules", "check", str(EXAMPLE_RULES), "--against-jira")
    assert code == 1 and "--against-jira needs JIRA_URL" in out


# -- Data Center user keys in backfill and explain ------------------------------------------------


def test_data_center_user_keys_in_the_changelog_are_resolved_through_jira(database_url):
    from sqlalchemy import select

    from ledger.db import make_engine, make_sessionmaker
    from ledger.models import ApprovalWait
    from service.settings import Settings

    with FakeJira(deployment="Server") as jira:
        jira.add_known_user("Carol S", name="carol.s", key="JIRAUSER62361")
        jira.add_known_user("Dana K", name="dana.k", key="JIRAUSER53168")
        histories = [{"id": "1", "created": "2026-05-04T10:00:00.000+0000", "items": [
            {"field": "status", "from": "3", "fromString": "In Progress",
             "to": "10050", "toString": "Awaiting Approval"},
            {"field": "assignee", "from": "JIRAUSER62361", "fromString": "Carol S",
             "to": "JIRAUSER53168", "toString": "Dana K"}]}]
        jira.add_issue("OPS-9", {
            "summary": "Open the VPN port", "project": {"key": "OPS"}, "issuetype": {"name": "Story"},
            "labels": [], "status": {"name": "Awaiting Approval", "id": "10050"},
            "assignee": {"name": "dana.k", "key": "JIRAUSER53168", "displayName": "Dana K"},
            "reporter": {"name": "svc.portal", "key": "JIRAUSER90001", "displayName": "Portal"},
            "created": "2026-05-04T09:00:00.000+0000", "updated": "2026-05-04T10:00:00.000+0000",
        }, histories)
        env = {"JIRA_URL": jira.url, "JIRA_PAT": "dc-pat", "JIRA_USER": "", "JIRA_API_TOKEN": "",
               "REDIS_URL": ""}
        code, out = cli(database_url, "backfill", "--jql", "project = OPS", **env)
        assert code == 0, out
        assert jira.count("GET", r"/rest/api/2/user$") == 2  # two keys, each asked once
        code, out = cli(database_url, "rules", "explain", "OPS-9", **env)
        assert code == 0, out
    assert "information holder: Carol S (carol), manager" in out
    assert "verdict: FLAGGED" in out
    engine = make_engine(Settings(database_url=database_url).effective_database_url)
    with make_sessionmaker(engine)() as session:
        [wait] = session.scalars(select(ApprovalWait)).all()
    engine.dispose()
    assert (wait.holder, wait.approver, wait.flagged) == ("carol", "dana", True)
