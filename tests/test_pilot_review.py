"""Reviewing a pilot: ``leaderleader comments``, the activity page, ``simulate --rules``.

The ledger is built through the real pipeline: signed deliveries, a real rq worker,
comments posted to (or refused by) the fake Jira, or rendered in dry-run.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from leaderleader.cli import main
from service.settings import EXAMPLE_RULES
from tests.conftest import fixture_body, fixture_json, post_webhook, run_worker
from tests.fakejira import FakeJira

DEPLOY = "issue_updated__cloud_deploy_handed_to_director"  # PAY-101, flagged
LEAVES = "issue_updated__cloud_leaves_approval"  # PAY-101 leaves approval
MANAGER = "issue_updated__cloud_purchase_manager_approves"  # PAY-102, not flagged
DIRECTOR = "issue_updated__cloud_purchase_director_approver_field"  # PAY-103, flagged
UNMAPPED = "issue_updated__cloud_unmapped_approver"  # PAY-104, unmapped
TOKEN = "activity-token-0123"


def _seed(fake: FakeJira, *names: str) -> None:
    for name in names:
        issue = fixture_json(name)["issue"]
        fake.add_issue(issue["key"], issue["fields"], issue_id=issue["id"])


def _env(database_url: str, **more: str) -> dict[str, str]:
    return {"DATABASE_URL": database_url, "REDIS_URL": "", "JIRA_URL": "", "RULES_FILE": "",
            **more}


@pytest.fixture()
def pilot(make_app, fake_jira, database_url):
    """PAY-103 posted; PAY-105 refused by Jira (403); PAY-101 skipped (it left approval
    before its comment was posted); PAY-106 rendered in dry-run, its summary hostile."""
    _seed(fake_jira, DIRECTOR)
    posting = make_app(jira_url=fake_jira.url, jira_user="bot@acme.example",
                       jira_api_token="cloud-token")
    assert post_webhook(posting, fixture_body(DIRECTOR)).status_code == 202
    run_worker(posting)
    # Jira refuses the comment on a ticket the bot may not comment on
    refused = fixture_json(DIRECTOR)
    refused["issue"].update(key="PAY-105", id="20105")
    fake_jira.add_issue("PAY-105", refused["issue"]["fields"], issue_id="20105")
    fake_jira.fail_next("POST", r"/PAY-105/comment$", 403)
    fake_jira.fail_next("GET", r"/PAY-105/comment$", 403)
    post_webhook(posting, json.dumps(refused).encode())
    run_worker(posting)
    # handed to the director, then back before the worker posted anything
    post_webhook(posting, fixture_body(DEPLOY))
    post_webhook(posting, fixture_body(LEAVES))
    run_worker(posting)
    dry = make_app()  # no JIRA_URL: dry-run
    hostile = fixture_json(DEPLOY)
    hostile["issue"].update(key="PAY-106", id="20106")
    hostile["issue"]["fields"]["summary"] = '<script>alert("x")</script> & <b>bold</b>'
    post_webhook(dry, json.dumps(hostile).encode())
    run_worker(dry)
    return database_url


def test_comments_lists_every_state_with_ticket_rule_and_reason(pilot):
    result = CliRunner().invoke(main, ["comments"], env=_env(pilot))
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert lines[-1] == "4 comment(s): 1 posted, 1 dry-run, 1 skipped, 1 failed"
    by_key = {line.split()[3]: line for line in lines[:-1]}
    assert set(by_key) == {"PAY-101", "PAY-103", "PAY-105", "PAY-106"}
    assert by_key["PAY-103"].split()[2] == "posted"
    assert "rule 'Spend under 5k'; waits on dana, suggested carol" in by_key["PAY-103"]
    assert by_key["PAY-101"].split()[2] == "skipped"
    assert by_key["PAY-101"].endswith(": the ticket left approval before the comment was posted")
    assert by_key["PAY-105"].split()[2] == "failed"
    assert "Jira answered 403 (injected 403)" in by_key["PAY-105"]
    assert by_key["PAY-106"].split()[2] == "dry_run"
    assert "rule 'Routine production deploy'; waits on dana, suggested bob" in by_key["PAY-106"]


@pytest.mark.parametrize("args, keys", [
    (["--state", "failed"], ["PAY-105"]),
    (["--state", "dry_run"], ["PAY-106"]),
    (["--state", "pending"], []),
    (["--key", "pay-103"], ["PAY-103"]),
    (["--since", "1d"], ["PAY-101", "PAY-103", "PAY-105", "PAY-106"]),
    (["--since", "2020-01-01"], ["PAY-101", "PAY-103", "PAY-105", "PAY-106"]),
    (["--since", "2999-01-01"], []),
    (["--state", "posted", "--key", "PAY-105"], []),
])
def test_comments_filters(pilot, args, keys):
    result = CliRunner().invoke(main, ["comments", "--json", *args], env=_env(pilot))
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert sorted(row["key"] for row in data["comments"]) == keys
    assert data["count"] == len(keys)


def test_comments_json_carries_the_body_and_jiras_reason(pilot):
    result = CliRunner().invoke(main, ["comments", "--json"], env=_env(pilot))
    rows = {row["key"]: row for row in json.loads(result.output)["comments"]}
    assert rows["PAY-106"]["state"] == "dry_run" and "[~accountid:" in rows["PAY-106"]["body"]
    assert rows["PAY-103"]["jira_comment_id"] is not None
    assert rows["PAY-105"]["reason"].endswith("Jira answered 403 (injected 403)")
    assert rows["PAY-106"]["summary"].startswith("<script>")  # JSON keeps the text as it is
    assert list(rows["PAY-103"]) == ["id", "at", "key", "summary", "kind", "state", "rule",
                                     "decision_level", "approver", "approver_level", "decider",
                                     "reason", "body", "jira_comment_id"]


@pytest.mark.parametrize("args, message", [
    (["--since", "ninety"], "Error: --since must look like 90d, 12w, 36h or a date like "
                            "2026-11-01, not 'ninety'"),
    (["--since", "999999999d"], "Error: --since 999999999d reaches back further than any "
                                  "Jira history"),
    (["--key", "PAY 1"], "Error: --key: 'PAY 1' is not an issue key (write it like PAY-123)"),
    (["--state", "sent"], None),
])
def test_comments_bad_arguments_end_in_one_line(database_url, args, message):
    result = CliRunner().invoke(main, ["comments", *args], env=_env(database_url))
    assert result.exit_code != 0
    assert result.output.strip().splitlines()[-1].startswith("Error: ")
    if message:
        assert result.output.strip() == message


def _activity_app(make_app, **overrides):
    return make_app(report_token=TOKEN, jira_url="https://jira.example.com", **overrides)


def test_activity_page_requires_the_report_token(pilot, make_app):
    client = _activity_app(make_app).test_client()
    for path in ("/reports/activity", "/reports/activity.html"):
        assert client.get(path).status_code == 401
        assert client.get(path, headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert client.get(path, headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
    # the bookmarkable page takes ?token=, the JSON does not
    assert client.get(f"/reports/activity.html?token={TOKEN}").status_code == 200
    assert client.get(f"/reports/activity?token={TOKEN}").status_code == 401
    closed = make_app(report_token=None).test_client()
    answer = closed.get("/reports/activity", headers={"Authorization": f"Bearer {TOKEN}"})
    assert answer.status_code == 503


def test_activity_json_filters_and_rejects_bad_ones(pilot, make_app):
    client = _activity_app(make_app).test_client()
    auth = {"Authorization": f"Bearer {TOKEN}"}
    data = client.get("/reports/activity?state=failed", headers=auth).get_json()
    assert [(r["key"], r["state"]) for r in data["comments"]] == [("PAY-105", "failed")]
    assert data["comments"][0]["url"] == "https://jira.example.com/browse/PAY-105"
    data = client.get("/reports/activity?key=pay-101", headers=auth).get_json()
    assert [(r["key"], r["state"]) for r in data["comments"]] == [("PAY-101", "skipped")]
    assert client.get("/reports/activity?since=2999-01-01", headers=auth).get_json()["count"] == 0
    assert client.get("/reports/activity?limit=2", headers=auth).get_json()["count"] == 2
    for bad, says in [("state=sent", "state must be one of"), ("key=x'", "key must be an issue key"),
                      ("since=yesterday", "since must be an ISO date"), ("limit=0", "limit must")]:
        answer = client.get(f"/reports/activity?{bad}", headers=auth)
        assert answer.status_code == 400 and answer.get_json()["error"].startswith(says), bad


def test_activity_page_escapes_ticket_text(pilot, make_app):
    client = _activity_app(make_app).test_client()
    page = client.get(f"/reports/activity.html?token={TOKEN}")
    html = page.get_data(as_text=True)
    assert page.headers["Content-Security-Policy"].startswith("default-src 'none'")
    assert "<script>" not in html and "<b>bold</b>" not in html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; &lt;b&gt;bold&lt;/b&gt;" in html
    assert "the ticket left approval before the comment was posted" in html
    assert "Jira answered 403 (injected 403)" in html
    assert '<a href="https://jira.example.com/browse/PAY-103">PAY-103</a>' in html


def test_openapi_describes_the_activity_paths(make_app):
    spec = make_app().test_client().get("/openapi.json").get_json()
    assert {"/reports/activity", "/reports/activity.html"} <= set(spec["paths"])
    assert spec["paths"]["/reports/activity"]["get"]["security"] == [{"reportToken": []}]


# -- simulate --rules -------------------------------------------------------------------

def _ledger_through_webhooks(make_app) -> None:
    app = make_app()
    for name in (DEPLOY, MANAGER, DIRECTOR, UNMAPPED):
        assert post_webhook(app, fixture_body(name)).status_code == 202
    run_worker(app)


def _candidate(tmp_path: Path, *edits: tuple[str, str]) -> Path:
    text = EXAMPLE_RULES.read_text()
    for old, new in edits:
        assert old in text
        text = text.replace(old, new)
    path = tmp_path / "candidate.yaml"
    path.write_text(text)
    return path


def test_simulate_with_a_candidate_lists_exactly_the_changed_tickets(make_app, database_url, tmp_path):
    _ledger_through_webhooks(make_app)
    candidate = _candidate(
        tmp_path,
        # deploys need a tech lead now: PAY-101 stays flagged, but alice is suggested, not bob
        ("labels: [deploy]}\n    decided_at: engineer", "labels: [deploy]}\n    decided_at: tech_lead"),
        # spend goes up to directors: PAY-103 (dana, a director) is no longer flagged
        ("  - name: Spend under 5k\n    match: {labels: [purchase]}\n    decided_at: manager",
         "  - name: Spend under 5k\n    match: {labels: [purchase]}\n    decided_at: director"),
    )
    result = CliRunner().invoke(main, ["simulate", "--rules", str(candidate)], env=_env(database_url))
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert [line.split()[0] for line in lines[:-1]] == ["PAY-101", "PAY-103"]
    assert lines[0].endswith("flagged (rule 'Routine production deploy', suggested bob) -> "
                             "flagged (rule 'Routine production deploy', suggested alice)")
    assert lines[1].endswith("flagged (rule 'Spend under 5k', suggested carol) -> not flagged")
    assert lines[-1] == f"4 wait(s): flagged now 2; flagged with {candidate} 1; changed 2"


def test_simulate_with_the_same_rules_changes_nothing(make_app, database_url):
    _ledger_through_webhooks(make_app)
    result = CliRunner().invoke(main, ["simulate", "--rules", str(EXAMPLE_RULES)],
                                env=_env(database_url))
    assert result.exit_code == 0, result.output
    assert result.output.strip() == (f"4 wait(s): flagged now 2; flagged with {EXAMPLE_RULES} 2; "
                                     "changed 0")


def test_simulate_with_a_bad_candidate_ends_in_one_line(database_url, tmp_path):
    broken = _candidate(tmp_path, ("decided_at: engineer", "decided_at: enginer"))
    result = CliRunner().invoke(main, ["simulate", "--rules", str(broken)], env=_env(database_url))
    assert result.exit_code == 1
    assert "unknown level 'enginer'" in result.stderr
    assert result.output.strip().splitlines()[-1] == (
        f"Error: {broken}: 1 problem(s); the candidate rules were not accepted")
    missing = CliRunner().invoke(main, ["simulate", "--rules", str(tmp_path / "nope.yaml")],
                                 env=_env(database_url))
    assert missing.exit_code == 1
    assert missing.output.strip() == f"Error: {tmp_path / 'nope.yaml'}: no such file"
