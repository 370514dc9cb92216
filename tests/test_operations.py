"""Operating it: hot reload, reminders, explain, metrics, secrets in logs, hostile input."""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from leaderleader.cli import main
from ledger.models import ApprovalWait, Comment, TicketRecord
from service.runtime import current_runtime
from service.settings import EXAMPLE_RULES, ConfigError, Settings
from tests.conftest import SECRET, fixture_body, fixture_json, post_webhook, run_worker
from webhooks.extension import app_runtime

DEPLOY = "issue_updated__cloud_deploy_handed_to_director"


def test_rules_are_reloaded_and_a_bad_edit_keeps_the_last_good(make_app, tmp_path):
    rules_file = tmp_path / "rules.yaml"
    rules_file.write_text(EXAMPLE_RULES.read_text())
    app = make_app(rules_file=rules_file)
    client = app.test_client()
    first = client.get("/readyz").get_json()["checks"]["rules"]
    # a tolerance of 3 levels: the deploy handed to a director is no longer flagged
    rules_file.write_text(EXAMPLE_RULES.read_text().replace("tolerance: 0 ", "tolerance: 3 "))
    post_webhook(app, fixture_body(DEPLOY))
    run_worker(app)
    with app_runtime(app).activate(), current_runtime().sessions() as session:
        wait = session.scalars(select(ApprovalWait)).one()
    assert wait.flagged is False and wait.rules_digest != first["digest"]
    rules_file.write_text(EXAMPLE_RULES.read_text().replace("tolerance: 0 ", "tolerence: 0 "))
    ready = client.get("/readyz")
    rules = ready.get_json()["checks"]["rules"]
    assert ready.status_code == 200  # still serving, on the last good rules
    assert rules["ok"] is False and rules["digest"] == wait.rules_digest
    line = EXAMPLE_RULES.read_text().splitlines().index(next(
        t for t in EXAMPLE_RULES.read_text().splitlines() if t.startswith("  tolerance: 0 "))) + 1
    assert rules["errors"] == [f"{rules_file}:{line}: unknown key 'tolerence' in flag; "
                               "did you mean 'tolerance'?"]


def test_one_reminder_for_a_wait_still_open_after_remind_after(make_app):
    app = make_app()
    post_webhook(app, fixture_body(DEPLOY))
    run_worker(app)
    from jobs.comments import queue_reminders

    with app_runtime(app).activate():
        runtime = current_runtime()
        with runtime.sessions() as session:
            started = session.scalars(select(ApprovalWait)).one().started_at
        assert queue_reminders(current_runtime(), now=started + timedelta(days=1)) == 0  # not yet due (2d)
        assert queue_reminders(current_runtime(), now=started + timedelta(days=3)) == 1
        assert queue_reminders(current_runtime(), now=started + timedelta(days=4)) == 0  # only one, ever
    run_worker(app)
    with app_runtime(app).activate(), current_runtime().sessions() as session:
        kinds = [(c.kind, c.state) for c in session.scalars(select(Comment).order_by(Comment.id))]
        reminder = session.scalars(select(Comment).where(Comment.kind == "reminder")).one()
    assert kinds == [("flag", "dry_run"), ("reminder", "dry_run")]
    assert "Still waiting" in reminder.body and "[~accountid:5b10a2844c20165700ede21g]" in reminder.body


def test_no_reminder_once_someone_declared_an_intent(make_app):
    app = make_app()
    post_webhook(app, fixture_body(DEPLOY))
    post_webhook(app, fixture_body("comment_created__cloud_intent"))
    run_worker(app)
    from jobs.comments import queue_reminders

    with app_runtime(app).activate():
        with current_runtime().sessions() as session:
            wait = session.scalars(select(ApprovalWait)).one()
        assert wait.first_intent_at is not None
        assert queue_reminders(current_runtime(), now=wait.started_at + timedelta(days=3)) == 0


def test_late_older_delivery_never_rolls_the_ticket_back(make_app):
    app = make_app()
    post_webhook(app, fixture_body("issue_updated__cloud_leaves_approval"))  # newer
    post_webhook(app, fixture_body(DEPLOY))  # older, arrives late
    run_worker(app)
    with app_runtime(app).activate(), current_runtime().sessions() as session:
        ticket = session.scalars(select(TicketRecord)).one()
    assert (ticket.status, ticket.assignee) == ("In Progress", "5b10a2844c20165700ede21g")


def test_rules_explain_fetches_the_ticket_and_tells_why(fake_jira, database_url):
    issue = fixture_json(DEPLOY)["issue"]
    histories = [{"id": "1", "created": "2026-11-20T10:15:02.511+0000", "items": [
        {"field": "status", "fieldId": "status", "fromString": "In Progress", "toString": "Awaiting Approval"},
        {"field": "assignee", "fieldId": "assignee", "from": "5b10a2844c20165700ede21g", "to": "dana.k"},
    ]}]
    fake_jira.add_issue(issue["key"], issue["fields"], histories, issue_id=issue["id"])
    env = {"JIRA_URL": fake_jira.url, "JIRA_USER": "bot@acme.example", "JIRA_API_TOKEN": "t0ken-value",
           "DATABASE_URL": database_url}
    result = CliRunner().invoke(main, ["rules", "explain", "pay-101"], env=env)
    assert result.exit_code == 0, result.output
    assert "verdict: FLAGGED" in result.output
    assert "suggested decider: Bob Li (bob), engineer" in result.output
    assert "information holder: Bob Li (bob), engineer" in result.output
    assert "the assignee before it went into approval" in result.output
    assert fake_jira.comments("PAY-101") == []  # posts nothing
    missing = CliRunner().invoke(main, ["rules", "explain", "PAY-9"], env=env)
    assert missing.exit_code == 1
    assert missing.output.strip().startswith("Error: cannot fetch PAY-9 from Jira: reading PAY-9: Jira answered 404")


def test_metrics_count_deliveries_and_comments(app):
    post_webhook(app, fixture_body(DEPLOY), delivery="m-1")
    post_webhook(app, fixture_body(DEPLOY), delivery="m-1")
    post_webhook(app, b"nope")
    run_worker(app)
    text = app.test_client().get("/metrics").get_data(as_text=True)
    assert 'leaderleader_deliveries_total{outcome="queued"} 1.0' in text
    assert 'leaderleader_deliveries_total{outcome="duplicate"} 1.0' in text
    assert 'leaderleader_deliveries_total{outcome="rejected"} 1.0' in text
    assert 'leaderleader_processed_total{outcome="flagged"} 1.0' in text
    assert 'leaderleader_comments_total{state="dry_run"} 1.0' in text
    assert "leaderleader_queue_depth 0.0" in text
    assert "leaderleader_processing_latency_seconds_count 1.0" in text


def test_secrets_never_reach_the_logs(make_app, fake_jira, capfd, caplog):
    caplog.set_level(logging.DEBUG)
    secrets = {"webhook_token": "tok-SECRET-123", "jira_api_token": "api-SECRET-456",
               "report_token": "rep-SECRET-789"}
    app = make_app(jira_url=fake_jira.url, jira_user="bot@acme.example", log_json=True,
                   log_level="debug", **secrets)
    body = fixture_body(DEPLOY)
    client = app.test_client()
    client.post("/webhooks/jira?token=wrong-token", data=body, content_type="application/json")
    client.post("/webhooks/jira?token=tok-SECRET-123", data=body, content_type="application/json")
    logging.getLogger("leaderleader.test").error("leak attempt %s", "api-SECRET-456")
    run_worker(app)  # PAY-101 is not on this Jira: a failure gets logged too
    out, err = capfd.readouterr()
    logged = out + err
    assert "comment.failed" in logged and "jira.delivery.queued" in logged
    for value in [SECRET, *secrets.values()]:
        assert value not in logged
    for line in err.splitlines():
        if line.startswith("{"):
            json.loads(line)  # production log lines are JSON


def test_log_level_chooses_the_lines_written(make_app, capfd):
    """At info (the default) a queued delivery leaves the worker's line, not the door's
    (gunicorn's access log has a line for every request); debug adds the door's."""
    for level, door_line, fixture in (
            ("info", False, DEPLOY), ("debug", True, "issue_updated__server_handed_to_director")):
        app = make_app(log_level=level)
        post_webhook(app, fixture_body(fixture), delivery=f"level-{level}")
        run_worker(app)
        logged = "".join(capfd.readouterr())
        assert "jira.delivery.processed" in logged
        assert ("jira.delivery.queued" in logged) is door_line
    with pytest.raises(ConfigError, match="LEADERLEADER_LOG_LEVEL must be one of debug, info, "
                                          "warning, error, not 'loud'"):
        Settings.from_env({"LEADERLEADER_LOG_LEVEL": "loud"})
    assert Settings.from_env({"LEADERLEADER_LOG_LEVEL": " WARNING "}).log_level == "warning"


def _containers(children: st.SearchStrategy) -> st.SearchStrategy:
    return st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    _containers,
    max_leaves=20,
)
known = st.sampled_from(["jira:issue_updated", "jira:issue_created", "jira:issue_deleted",
                         "comment_created", "comment_updated", "worklog_created", "x"])
payloads = st.fixed_dictionaries({"webhookEvent": known}, optional={
    "issue": json_values | st.fixed_dictionaries({"key": json_values}, optional={"fields": json_values,
                                                                                 "id": json_values}),
    "changelog": json_values | st.fixed_dictionaries({"items": st.lists(json_values, max_size=3)}),
    "comment": json_values, "timestamp": json_values, "user": json_values,
})


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.one_of(payloads.map(lambda p: json.dumps(p).encode()), st.binary(max_size=200)))
def test_hostile_input_never_yields_a_5xx(app, body):
    response = post_webhook(app, body)
    assert response.status_code < 500, body
    assert response.is_json
    if response.status_code == 202:  # accepted: the worker must cope with it too
        run_worker(app)
        with app_runtime(app).activate():
            from rq.registry import FailedJobRegistry

            from jobs.inbox import backlog

            assert FailedJobRegistry(queue=current_runtime().queue).count == 0, body
            assert backlog(current_runtime()) == {"waiting": 0, "retrying": 0}, body


def test_a_delivery_that_cannot_be_processed_waits_for_another_try(make_app, tmp_path):
    rules_file = tmp_path / "rules.yaml"
    rules_file.write_text("version: 1\n")  # no valid rules yet: processing cannot decide
    app = make_app(rules_file=rules_file)
    assert post_webhook(app, fixture_body(DEPLOY)).status_code == 202
    run_worker(app)
    from jobs.inbox import backlog, requeue_failed

    with app_runtime(app).activate():
        runtime = current_runtime()
        assert backlog(runtime) == {"waiting": 0, "retrying": 1}
        assert app.test_client().get("/readyz").status_code == 503
        rules_file.write_text(EXAMPLE_RULES.read_text())
        assert requeue_failed(runtime) == 1  # what the scheduler does every round
    run_worker(app)
    with app_runtime(app).activate(), current_runtime().sessions() as session:
        assert session.scalars(select(ApprovalWait)).one().flagged
        assert backlog(current_runtime()) == {"waiting": 0, "retrying": 0}


def test_serve_keeps_the_webhook_token_out_of_its_access_log(tmp_path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG")}
    env.update(LEADERLEADER_HOME=str(tmp_path / "home"), JIRA_WEBHOOK_TOKEN="tok-SECRET-321")
    server = subprocess.Popen(
        [sys.executable, "-m", "leaderleader", "serve", "--no-worker", "--port", str(port)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        url = f"http://127.0.0.1:{port}/webhooks/jira?token=tok-SECRET-321"
        request = urllib.request.Request(url, data=b'{"webhookEvent": "worklog_created"}',
                                         headers={"Content-Type": "application/json"})
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(request, timeout=5) as response:
                    assert response.status == 200
                break
            except (ConnectionError, urllib.error.URLError):
                assert time.monotonic() < deadline, "serve did not start"
                time.sleep(0.2)
    finally:
        server.terminate()
        out, err = server.communicate(timeout=30)
    assert '"POST /webhooks/jira" 200' in out + err  # gunicorn's access log
    assert "tok-SECRET-321" not in out + err


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ", 1)[1][:1] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.skipif(not os.path.exists("/proc/self/task"), reason="reads children from /proc")
def test_serve_stopped_by_sigterm_stops_its_worker(tmp_path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG")}
    env.update(LEADERLEADER_HOME=str(tmp_path / "home"))
    server = subprocess.Popen([sys.executable, "-m", "leaderleader", "serve", "--port", str(port)],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    children: set[int] = set()
    try:
        deadline = time.monotonic() + 30
        while not children:
            assert time.monotonic() < deadline, "serve did not start its worker"
            time.sleep(0.2)
            for task in Path(f"/proc/{server.pid}/task").iterdir():  # the keeper thread starts it
                children |= {int(pid) for pid in (task / "children").read_text().split()}
        server.terminate()  # what a process manager or `docker stop` sends
        assert server.wait(timeout=30) == 0
        deadline = time.monotonic() + 20
        while any(_alive(pid) for pid in children) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not any(_alive(pid) for pid in children)
    finally:
        if server.poll() is None:
            server.kill()
