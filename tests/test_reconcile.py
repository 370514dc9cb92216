"""The reconciliation round against the fake Jira: missed exits closed, missed entries
opened (and commented when flagged), in key batches of at most 100."""

from __future__ import annotations

import json
import math
import os

from click.testing import CliRunner

from jobs.reconcile import reconcile
from jobs.rounds import run_round
from leaderleader.cli import main
from tests.conftest import fixture_body, fixture_json, post_webhook, run_worker
from tests.fakejira import FakeJira
from tests.test_pipeline import DEPLOY, comments, jira_app, seed, waits
from webhooks.extension import app_runtime

BOB, DANA = "5b10a2844c20165700ede21g", "dana.k"
PURCHASE = "issue_updated__cloud_purchase_manager_approves"


def _status_item(frm: str, to: str) -> dict:
    return {"field": "status", "fieldId": "status", "fromString": frm, "toString": to}


def _moved_on(fake: FakeJira, key: str, entered: str, left: str) -> None:
    """In Jira the ticket left approval at ``left``; that delivery never reached us."""
    fake.issues[key]["fields"]["status"] = {"name": "In Progress", "id": "3"}
    fake.issues[key]["histories"] = [
        {"id": "10431", "created": entered, "items": [_status_item("In Progress", "Awaiting Approval")]},
        {"id": "10440", "created": left, "items": [_status_item("Awaiting Approval", "In Progress")]},
    ]


def _entered_unseen(fake: FakeJira, key: str, entered: str) -> None:
    """A deploy handed to a director, in Jira only: no webhook reported it."""
    fields = json.loads(json.dumps(fixture_json(DEPLOY)["issue"]["fields"]))
    fields["summary"] = "Deploy the ledger export"
    fake.add_issue(key, fields, [{"id": "20001", "created": entered, "items": [
        _status_item("In Progress", "Awaiting Approval"),
        {"field": "assignee", "fieldId": "assignee", "from": BOB, "to": DANA}]}])


def test_a_round_closes_missed_exits_and_opens_missed_entries(make_app, fake_jira):
    seed(fake_jira, DEPLOY, PURCHASE)
    app = jira_app(make_app, fake_jira)
    for name in (DEPLOY, PURCHASE):
        post_webhook(app, fixture_body(name))
    run_worker(app)
    assert len(fake_jira.comments("PAY-101")) == 1
    _moved_on(fake_jira, "PAY-101", "2026-11-20T10:15:02.011+0000", "2026-11-20T13:15:02.000+0000")
    _entered_unseen(fake_jira, "PAY-200", "2026-11-21T09:00:00.000+0000")
    fake_jira.reset_log()

    with app_runtime(app).activate() as runtime:
        found = reconcile(runtime)
    assert (found.open_waits, found.closed, found.still_waiting, found.missing) == (2, 1, 1, 0)
    assert (found.opened, found.flagged) == (1, 1)
    # status search, one key batch for the unseen, one for the open wait it did not return
    assert fake_jira.count("GET", r"/search/jql$") == 3
    assert fake_jira.jqls[0] == ('status in ("Awaiting Approval", "Pending Sign-off") '
                                 'AND project in ("PAY") ORDER BY key')
    assert fake_jira.jqls[1:] == ['key in ("PAY-200")', 'key in ("PAY-101")']
    assert found.jira_calls == len(fake_jira.requests)

    by_key = {w.issue_key: w for w in waits(app)}
    closed = by_key["PAY-101"]
    assert closed.ended_at.isoformat() == "2026-11-20T13:15:02"  # when the changelog says
    assert closed.end_inferred and closed.end_evidence.startswith("reconciliation: Jira has the ticket in")
    assert by_key["PAY-102"].ended_at is None
    opened = by_key["PAY-200"]
    assert (opened.started_at.isoformat(), opened.source, opened.flagged) == (
        "2026-11-21T09:00:00", "reconcile", True)
    assert (opened.approver, opened.holder) == ("dana", "bob")

    run_worker(app)  # the flagged one gets its comment, like any new wait
    [posted] = fake_jira.comments("PAY-200")
    assert f"[~accountid:{BOB}]" in posted["body"]

    with app_runtime(app).activate() as runtime:
        again = reconcile(runtime)  # nothing left to find
    assert (again.closed, again.opened, again.still_waiting) == (0, 0, 2)
    run_worker(app)
    assert len(fake_jira.comments("PAY-200")) == 1 and len(comments(app)) == 2

    text = app.test_client().get("/metrics").get_data(as_text=True)
    assert 'leaderleader_reconcile_total{what="rounds"} 2.0' in text
    assert 'leaderleader_reconcile_total{what="closed"} 1.0' in text
    assert 'leaderleader_reconcile_total{what="opened"} 1.0' in text
    assert 'leaderleader_reconcile_total{what="jira_calls"}' in text


def test_a_ticket_jira_no_longer_has_is_left_open_and_counted(make_app, fake_jira):
    seed(fake_jira, DEPLOY)
    app = jira_app(make_app, fake_jira)
    post_webhook(app, fixture_body(DEPLOY))
    run_worker(app)
    gone = fixture_json(DEPLOY)
    gone["issue"]["key"], gone["changelog"]["id"] = "PAY-300", "10999"
    post_webhook(app, json.dumps(gone).encode())  # a ticket deleted since (no event came)
    run_worker(app)
    _moved_on(fake_jira, "PAY-101", "2026-11-20T10:15:02.011+0000", "2026-11-20T13:15:02.000+0000")
    fake_jira.reset_log()
    with app_runtime(app).activate() as runtime:
        found = reconcile(runtime)
    # Jira refuses a key it does not know: the batch is halved to isolate it
    assert (found.closed, found.missing) == (1, 1)
    assert [w.ended_at is None for w in sorted(waits(app), key=lambda w: w.issue_key)] == [False, True]


def test_cost_stays_within_one_search_per_hundred_keys(tmp_path, redis_conn, database_url):
    from bench.reconcile import measure

    figures = measure(250, 30, 5, tmp_path, database_url=database_url, redis_connection=redis_conn,
                      repeat=1)
    assert (figures["closed"], figures["opened"], figures["still_waiting"]) == (30, 5, 220)
    assert figures["most_keys_in_one_search"] <= 100
    # 225 waiting (3 pages), 30 asked by key (1), 5 read whole (1)
    assert figures["search_calls"] == math.ceil(225 / 100) + 1 + 1
    assert figures["jira_calls"] == figures["search_calls"] + 1  # and serverInfo, once


def test_the_scheduler_reconciles_once_an_interval(make_app, fake_jira):
    seed(fake_jira, DEPLOY)
    app = jira_app(make_app, fake_jira, reconcile_seconds=3600)
    post_webhook(app, fixture_body(DEPLOY))
    run_worker(app)
    runtime = app_runtime(app)
    first = run_round(runtime)
    assert first.reconciled is not None and first.reconciled.still_waiting == 1
    assert run_round(runtime).reconciled is None  # not due again for an hour
    off = app_runtime(jira_app(make_app, fake_jira, reconcile_seconds=0))
    off.redis.delete("leaderleader:reconcile:due")
    assert run_round(off).reconciled is None


def test_reconcile_command(make_app, fake_jira, database_url, redis_server, tmp_path):
    seed(fake_jira, DEPLOY)
    app = jira_app(make_app, fake_jira)
    post_webhook(app, fixture_body(DEPLOY))
    run_worker(app)
    _moved_on(fake_jira, "PAY-101", "2026-11-20T10:15:02.011+0000", "2026-11-20T13:15:02.000+0000")
    socket = getattr(redis_server, "socket_file", None)
    redis_url = f"unix://{socket}" if socket else os.environ["REDIS_URL"]
    env = {"DATABASE_URL": database_url, "REDIS_URL": redis_url, "LEADERLEADER_HOME": str(tmp_path),
           "JIRA_URL": "", "JIRA_PAT": "", "JIRA_USER": "", "JIRA_API_TOKEN": ""}
    refused = CliRunner().invoke(main, ["reconcile"], env=env)
    assert refused.exit_code == 1
    assert refused.output == "Error: reconcile asks Jira: set JIRA_URL (and its credentials)\n"
    env.update(JIRA_URL=fake_jira.url, JIRA_USER="bot@acme.example", JIRA_API_TOKEN="cloud-token")
    done = CliRunner().invoke(main, ["reconcile"], env=env)
    assert done.exit_code == 0, done.output
    assert "reconciled 1 open wait(s): 1 closed, 0 still waiting" in done.output
    [wait] = waits(app)
    assert wait.end_inferred


def test_a_status_jira_does_not_have_still_lets_the_round_close_waits(make_app, fake_jira):
    seed(fake_jira, DEPLOY)
    fake_jira.known_statuses = {"awaiting approval", "in progress", "done"}  # no "Pending Sign-off"
    app = jira_app(make_app, fake_jira)
    post_webhook(app, fixture_body(DEPLOY))
    run_worker(app)
    _moved_on(fake_jira, "PAY-101", "2026-11-20T10:15:02.011+0000", "2026-11-20T13:15:02.000+0000")
    with app_runtime(app).activate() as runtime:
        found = reconcile(runtime)  # the status search is refused (400): asked by key instead
    assert (found.closed, found.opened) == (1, 0)
    assert fake_jira.jqls[-1] == 'key in ("PAY-101")'
