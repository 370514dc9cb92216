"""The Jira connector and comment posting against the fake Jira, in Cloud and Server modes."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import select

from connector.client import JiraConnector
from connector.errors import PermanentJiraError, TransientJiraError
from connector.history import approval_episodes
from connector.shapes import ticket_from_issue
from ledger.models import Comment
from rules.comment import mention
from rules.model import Rules, WaitingForApproval
from service.runtime import current_runtime
from tests.conftest import fixture_body, fixture_json, post_webhook, run_worker
from tests.fakejira import FakeJira
from webhooks.extension import app_runtime

DEPLOY = "issue_updated__cloud_deploy_handed_to_director"


def connector(fake: FakeJira, **kwargs) -> JiraConnector:
    if fake.deployment == "Cloud":
        return JiraConnector(fake.url, user="bot@acme.example", api_token="t0ken-value",
                             max_retry_delay=1, **kwargs)
    return JiraConnector(fake.url, pat="dc-pat-value", max_retry_delay=1, **kwargs)


@pytest.fixture(params=["Cloud", "Server"])
def jira(request):
    with FakeJira(deployment=request.param) as fake:
        fake.add_issue("PAY-1", {"summary": "x", "status": {"name": "Awaiting Approval", "id": "10050"}})
        yield fake


def test_deployment_detection_and_mentions(jira):
    client = connector(jira)
    assert jira.requests == []  # constructing does not touch the network
    expected = ("cloud", "[~accountid:abc]") if jira.deployment == "Cloud" else ("server", "[~abc]")
    # the comment renders mentions in the style of the deployment the client detected
    assert (client.deployment, mention("abc", client.deployment)) == expected
    assert mention("abc", connector(jira, deployment="server").deployment) == "[~abc]"


def test_post_then_find_by_marker(jira):
    client = connector(jira)
    comment_id = client.post_comment("PAY-1", "hello", "m-1")
    assert client.find_marked_comment("PAY-1", "m-1") == comment_id
    assert client.find_marked_comment("PAY-1", "m-2") is None
    assert jira.comments("PAY-1")[0]["properties"] == [
        {"key": "leaderleader", "value": {"marker": "m-1"}}]


def test_wrong_credentials_are_permanent(jira):
    jira.token = "the-real-one"
    with pytest.raises(PermanentJiraError) as caught:
        connector(jira).post_comment("PAY-1", "hello", "m-1")
    assert caught.value.status == 401
    assert "t0ken-value" not in str(caught.value) and "dc-pat-value" not in str(caught.value)


def test_reads_retry_429_honouring_retry_after(jira):
    jira.fail_next("GET", r"/comment$", 429, times=2, headers={"Retry-After": "0"})
    assert connector(jira).find_marked_comment("PAY-1", "m") is None
    assert jira.count("GET", r"/comment$") == 3


def test_post_is_not_retried_blindly_and_errors_are_sorted(jira):
    client = connector(jira)
    jira.fail_next("POST", r"/comment$", 503, headers={"Retry-After": "0"})
    with pytest.raises(TransientJiraError):
        client.post_comment("PAY-1", "hello", "m-1")
    jira.fail_next("POST", r"/comment$", 500)
    with pytest.raises(TransientJiraError) as caught:
        client.post_comment("PAY-1", "hello", "m-1")
    assert caught.value.status == 500
    with pytest.raises(PermanentJiraError) as missing:
        client.post_comment("NOPE-9", "hello", "m-1")
    assert missing.value.status == 404
    assert "Issue does not exist" in missing.value.reason
    assert jira.comments("PAY-1") == []


def test_fetch_issue_pages_a_truncated_changelog(jira):
    histories = [{"id": str(n), "created": f"2026-01-01T00:{n // 60:02d}:{n % 60:02d}.000+0000",
                  "items": [{"field": "labels", "fieldId": "labels", "fromString": "", "toString": str(n)}]}
                 for n in range(60)]
    jira.add_issue("PAY-2", {"summary": "long history"}, histories)
    issue = connector(jira).fetch_issue("PAY-2")
    assert [h["id"] for h in issue["changelog"]["histories"]] == [str(n) for n in range(60)]
    # Cloud embeds only the latest 20 and needs one page of /changelog; Data Center embeds all
    assert jira.count("GET", r"/changelog$") == (1 if jira.deployment == "Cloud" else 0)


def _status_history(n: int, minute: int, frm: str, to: str, assignee: tuple[str, str] | None = None):
    items = [{"field": "status", "fieldId": "status", "fromString": frm, "toString": to}]
    if assignee:
        items.append({"field": "assignee", "fieldId": "assignee", "from": assignee[0],
                      "to": assignee[1], "tmpFromAccountId": assignee[0], "tmpToAccountId": assignee[1]})
    return {"id": str(n), "created": f"2026-03-02T10:{minute:02d}:00.000+0000", "items": items}


def test_episodes_rebuilt_from_history():
    issue = {"key": "PAY-3", "fields": {"status": {"name": "Done"}, "assignee": {"accountId": "bob"},
                                        "created": "2026-03-02T09:00:00.000+0000"},
             "changelog": {"histories": [
                 _status_history(2, 30, "Awaiting Approval", "In Progress", ("dana", "bob")),
                 _status_history(1, 10, "In Progress", "Awaiting Approval", ("bob", "dana")),
                 _status_history(3, 40, "In Progress", "Done"),
             ]}}
    waiting = WaitingForApproval(statuses=("awaiting approval",))
    [episode] = approval_episodes(issue, Rules(version=1, levels=(), people={}, waiting=waiting))
    assert (episode.started_at.minute, episode.ended_at.minute) == (10, 30)
    assert (episode.assignee_before, episode.approver_assignee) == ("bob", "dana")


def test_shapes_for_cloud_and_server_users_and_nulls():
    cloud = ticket_from_issue(fixture_json(DEPLOY)["issue"])
    assert (cloud.assignee, cloud.reporter, cloud.components) == (
        "dana.k", "5b10a2844c20165700ede21g", ("billing",))
    server = ticket_from_issue(fixture_json("issue_updated__server_handed_to_director")["issue"])
    assert (server.assignee, server.project, server.status_id) == ("dana.k", "OPS", "10050")
    empty = ticket_from_issue({"key": "A-1", "fields": {"assignee": None, "labels": None}})
    assert (empty.assignee, empty.labels, empty.project) == (None, (), "A")
    assert ticket_from_issue(None).key == ""


# -- posting through the worker: exactly once, failures recorded ---------------------------


def _app(make_app, fake: FakeJira):
    issue = fixture_json(DEPLOY)["issue"]
    fake.add_issue(issue["key"], issue["fields"], issue_id=issue["id"])
    return make_app(jira_url=fake.url, jira_user="bot@acme.example", jira_api_token="t0ken-value")


def _comment_row(app) -> Comment:
    with app_runtime(app).activate(), current_runtime().sessions() as session:
        return session.scalars(select(Comment)).one()


def test_429_then_success_posts_one_comment(make_app, fake_jira):
    app = _app(make_app, fake_jira)
    fake_jira.fail_next("POST", r"/comment$", 429, times=1, headers={"Retry-After": "0"})
    post_webhook(app, fixture_body(DEPLOY))
    run_worker(app)
    assert len(fake_jira.comments("PAY-101")) == 1
    row = _comment_row(app)
    assert (row.state, row.attempts) == ("posted", 1)  # waited out in the same attempt
    assert fake_jira.count("POST", r"/comment$") == 2


def test_429_on_the_post_waits_the_retry_after_jira_asked_for(jira):
    client = connector(jira)
    jira.fail_next("POST", r"/comment$", 429, times=2, headers={"Retry-After": "1"})
    started = time.monotonic()
    client.post_comment("PAY-1", "hello", "m-429")
    assert time.monotonic() - started >= 2.0
    assert len(jira.comments("PAY-1")) == 1 and jira.count("POST", r"/comment$") == 3


def test_500s_then_success(make_app, fake_jira):
    app = _app(make_app, fake_jira)
    fake_jira.fail_next("POST", r"/comment$", 500, times=2)
    post_webhook(app, fixture_body(DEPLOY))
    run_worker(app)
    assert len(fake_jira.comments("PAY-101")) == 1
    assert _comment_row(app).attempts == 3


def test_a_5xx_storm_ends_recorded_not_silent(make_app, fake_jira):
    app = _app(make_app, fake_jira)
    fake_jira.fail_next("POST", r"/comment$", 502, times=50)
    post_webhook(app, fixture_body(DEPLOY))
    run_worker(app)
    row = _comment_row(app)
    assert fake_jira.comments("PAY-101") == []
    assert row.state == "pending" and row.attempts == 4  # first try + 3 retries, then rq's failed registry
    assert "502" in row.error
    with app_runtime(app).activate():
        from rq.registry import FailedJobRegistry

        runtime = current_runtime()
        assert FailedJobRegistry(queue=runtime.queue).count == 1


def test_404_is_recorded_as_failed_with_the_reason(make_app, fake_jira):
    app = make_app(jira_url=fake_jira.url, jira_user="bot@acme.example", jira_api_token="t0ken-value")
    post_webhook(app, fixture_body(DEPLOY))  # PAY-101 does not exist on this Jira
    run_worker(app)
    row = _comment_row(app)
    assert (row.state, row.attempts) == ("failed", 1)
    assert "404" in row.error and "Issue does not exist" in row.error


def test_lost_answer_then_retry_finds_the_first_comment(make_app, fake_jira):
    app = _app(make_app, fake_jira)
    # Jira stores the comment but the answer is lost (a worker crash looks the same)
    fake_jira.fail_next("POST", r"/comment$", 502, after_processing=True)
    post_webhook(app, fixture_body(DEPLOY))
    run_worker(app)
    [stored] = fake_jira.comments("PAY-101")
    row = _comment_row(app)
    assert (row.state, row.jira_comment_id) == ("posted", stored["id"])
    assert fake_jira.count("POST", r"/comment$") == 1


def test_marker_survives_a_jira_that_drops_comment_properties(jira):
    jira.drop_properties = True
    client = connector(jira)
    comment_id = client.post_comment("PAY-1", "hello", "leaderleader:flag:PAY-1:1")
    assert jira.comments("PAY-1")[0]["properties"] == []
    assert jira.comments("PAY-1")[0]["body"] == "hello\n{anchor:leaderleader-flag-PAY-1-1}"
    assert client.find_marked_comment("PAY-1", "leaderleader:flag:PAY-1:1") == comment_id
    assert client.find_marked_comment("PAY-1", "leaderleader:flag:PAY-1:2") is None


def test_a_reply_quoting_our_comment_is_not_taken_for_it(jira):
    jira.drop_properties = True
    client = connector(jira)
    quoted = "{quote}hello\n{anchor:leaderleader-flag-PAY-1-1}{quote}\nI intend to ship it."
    client.post_comment("PAY-1", quoted, "someone-else")
    assert client.find_marked_comment("PAY-1", "leaderleader:flag:PAY-1:1") is None


def test_a_jira_that_refuses_properties_gets_the_body_alone(jira):
    jira.reject_properties = True
    client = connector(jira)
    comment_id = client.post_comment("PAY-1", "hello", "m-1")
    assert [c["id"] for c in jira.comments("PAY-1")] == [comment_id]
    assert client.find_marked_comment("PAY-1", "m-1") == comment_id


def test_deployment_inferred_from_credentials_when_server_info_is_silent(jira):
    jira.report_deployment = False
    expected = "cloud" if jira.deployment == "Cloud" else "server"
    assert connector(jira).deployment == expected


def test_a_jira_that_cannot_list_comments_still_gets_the_comment(make_app, fake_jira):
    app = _app(make_app, fake_jira)
    fake_jira.fail_next("GET", r"/comment$", 403, times=5)
    post_webhook(app, fixture_body(DEPLOY))
    run_worker(app)
    assert len(fake_jira.comments("PAY-101")) == 1
    assert _comment_row(app).state == "posted"


def test_retries_of_failed_jobs_are_spread_out(make_app):
    """Jobs that failed together (a Jira outage) do not all come back at the same moment."""
    from jobs.comments import enqueue_comment

    app = make_app(retry_intervals=(100, 1000))
    with app_runtime(app).activate():
        runtime = current_runtime()
        jobs = [enqueue_comment(runtime, comment_id) for comment_id in range(1, 21)]
    schedules = {tuple(job.retry_intervals) for job in jobs}
    assert all(80 <= first <= 120 and 800 <= second <= 1200 for first, second in schedules)
    assert len(schedules) > 1
    assert all(job.retries_left == 2 for job in jobs)


def test_an_unreachable_jira_is_said_at_the_first_call_not_guessed_past():
    """A serverInfo that gets no answer at all is no reason to guess the deployment and try again."""
    import socket
    import threading

    listener = socket.create_server(("127.0.0.1", 0))  # accepts, then hangs up without answering
    attempts = []

    def hang_up() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            attempts.append(1)
            conn.close()

    threading.Thread(target=hang_up, daemon=True).start()
    try:
        jira = JiraConnector(f"http://127.0.0.1:{listener.getsockname()[1]}", user="u",
                             api_token="t", max_retries=0)
        with pytest.raises(TransientJiraError, match=r"cannot reach Jira at http://127.0.0.1:\d+ \(JIRA_URL\): the server closed"):
            next(jira.search_issues("project = PAY"))
        assert len(attempts) == 1
    finally:
        listener.close()
