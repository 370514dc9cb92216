"""The webhook endpoint: authentication, bad input, de-duplication, queue outages."""

from __future__ import annotations

import json

import redis
from sqlalchemy import func, select

from ledger.models import ApprovalWait, Delivery, StatusChange, TicketRecord
from service.runtime import current_runtime
from tests.conftest import SECRET, fixture_body, fixture_json, post_webhook, run_worker
from webhooks.auth import sign, signature_problem
from webhooks.extension import app_runtime

DEPLOY = "issue_updated__cloud_deploy_handed_to_director"


def test_signature_matches_atlassians_test_vector():
    expected = "sha256=a4771c39fbe90f317c7824e83ddef3caae9cb3d976c214ace1f2937e133263c9"
    assert sign("It's a Secret to Everybody", b"Hello World!") == expected
    assert signature_problem("It's a Secret to Everybody", b"Hello World!", expected) is None


def test_good_signature_is_queued(app):
    response = post_webhook(app, fixture_body(DEPLOY))
    assert response.status_code == 202
    assert response.get_json()["status"] == "queued"


def test_bad_signature_is_refused(app):
    response = post_webhook(app, fixture_body(DEPLOY), secret="not the secret")
    assert response.status_code == 401
    assert response.get_json() == {"error": "webhook authentication failed", "status": 401}


def test_missing_signature_is_refused(app):
    response = post_webhook(app, fixture_body(DEPLOY), secret=None)
    assert response.status_code == 401


def test_signature_over_a_different_body_is_refused(app):
    body = fixture_body(DEPLOY)
    response = post_webhook(
        app, body, secret=None, headers={"X-Hub-Signature": sign(SECRET, body + b" ")}
    )
    assert response.status_code == 401


def test_unknown_signature_method_is_refused(app):
    body = fixture_body(DEPLOY)
    digest = sign(SECRET, body).split("=", 1)[1]
    response = post_webhook(app, body, secret=None, headers={"X-Hub-Signature": "md5=" + digest})
    assert response.status_code == 401


def test_shared_token_in_the_query_string(make_app):
    app = make_app(webhook_secret=None, webhook_token="tok-123456")
    client = app.test_client()
    body = fixture_body(DEPLOY)
    ok = client.post("/webhooks/jira?token=tok-123456", data=body, content_type="application/json")
    bad = client.post("/webhooks/jira?token=nope", data=body, content_type="application/json")
    assert (ok.status_code, bad.status_code) == (202, 401)


def test_retry_with_the_same_delivery_id_is_acknowledged_not_queued(app):
    body = fixture_body(DEPLOY)
    first = post_webhook(app, body, delivery="d-1")
    again = post_webhook(app, body, delivery="d-1", retry=1)
    assert (first.status_code, again.status_code) == (202, 200)
    assert again.get_json()["status"] == "duplicate"
    with app_runtime(app).activate():
        from jobs.inbox import backlog

        assert backlog(current_runtime()) == {"waiting": 1, "retrying": 0}


def test_delivery_without_identifier_is_deduplicated_by_body(app):
    body = fixture_body(DEPLOY)
    client = app.test_client()
    headers = {"X-Hub-Signature": sign(SECRET, body)}
    first = client.post("/webhooks/jira", data=body, headers=headers, content_type="application/json")
    again = client.post("/webhooks/jira", data=body, headers=headers, content_type="application/json")
    assert (first.status_code, again.status_code) == (202, 200)


def test_unknown_and_ignored_events_are_acknowledged_and_not_queued(app):
    for name in ("unknown_event", "worklog_created__cloud"):
        response = post_webhook(app, fixture_body(name))
        assert response.status_code == 200
        assert response.get_json()["status"] == "ignored"
    with app_runtime(app).activate():
        from jobs.inbox import backlog

        assert current_runtime().queue.count == 0
        assert backlog(current_runtime())["waiting"] == 0


def _bad(app, body: bytes, content_type: str = "application/json"):
    response = post_webhook(app, body, content_type=content_type)
    return response.status_code, response.get_json()["error"]


def test_bad_input_gets_a_clear_4xx(app):
    assert _bad(app, b"{not json") == (400, "the body is not valid JSON")
    assert _bad(app, b"\xff\xfe{}") == (400, "the body is not valid JSON")
    assert _bad(app, b"[1, 2]") == (400, "the body must be a JSON object")
    assert _bad(app, b'{"timestamp": 1}') == (400, "'webhookEvent' is missing or not a string")
    assert _bad(app, b'{"webhookEvent": "jira:issue_updated", "issue": {"id": "1"}}') == (
        400,
        "'issue.key' is missing or not a string",
    )
    assert _bad(app, b'{"webhookEvent": "jira:issue_updated", "issue": {"key": "A-1"}, '
                     b'"timestamp": "yesterday"}') == (
        400,
        "'timestamp' must be a number (epoch milliseconds)",
    )
    assert _bad(app, b'{"webhookEvent": "jira:issue_updated", "issue": {"key": "A-1"}, '
                     b'"changelog": {"items": "status"}}') == (400, "'changelog.items' must be a list")
    assert _bad(app, fixture_body(DEPLOY), content_type="text/plain") == (
        415,
        "send the webhook as application/json",
    )
    deep = b'{"webhookEvent": "x", "a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    assert _bad(app, deep)[0] == 400


def test_oversized_body_is_refused(make_app):
    app = make_app(max_body_bytes=1024)
    body = json.dumps({"webhookEvent": "jira:issue_updated", "pad": "x" * 4096}).encode()
    response = post_webhook(app, body)
    assert response.status_code == 413
    assert "error" in response.get_json()


def test_queue_down_answers_503_so_jira_retries(make_app, settings):
    from service.runtime import Runtime
    from webhooks.app import create_app

    dead = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2)
    runtime = Runtime.build(settings, connection=dead)
    try:
        response = post_webhook(create_app(runtime=runtime), fixture_body(DEPLOY), delivery="d-503")
    finally:
        dead.close()
        runtime.engine.dispose()
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "30"


def test_the_door_rides_out_a_killed_redis_connection_and_a_flushed_script_cache(app):
    """The intake keeps its own connection to Redis and calls its script by digest."""
    from jobs.inbox import _door, backlog

    body = fixture_body(DEPLOY)
    runtime = app_runtime(app)
    assert post_webhook(app, body, delivery="door-1").status_code == 202
    runtime.redis.script_flush()  # as after a Redis restart: the digest is unknown
    assert post_webhook(app, body, delivery="door-2").status_code == 202
    door = _door.connection(runtime.redis.connection_pool)
    door.send_command("CLIENT", "ID")
    runtime.redis.client_kill_filter(_id=door.read_response())
    assert post_webhook(app, body, delivery="door-3").status_code == 202
    assert post_webhook(app, body, delivery="door-3").get_json()["status"] == "duplicate"
    with runtime.activate():
        assert backlog(runtime)["waiting"] == 3


def test_worker_records_each_delivery_once_even_if_queued_twice(app):
    body = fixture_body(DEPLOY)
    post_webhook(app, body, delivery="d-2")
    with app_runtime(app).activate():  # the same delivery in the inbox twice (e.g. a retried drain)
        from jobs.inbox import encode, inbox_key

        runtime = current_runtime()
        runtime.redis.rpush(inbox_key(runtime), encode("d-2", "2026-11-20T10:15:03", body.decode()))
    run_worker(app)
    with app_runtime(app).activate(), current_runtime().sessions() as session:
        assert session.scalar(select(func.count()).select_from(Delivery)) == 1


def test_health_and_readiness(app):
    client = app.test_client()
    assert client.get("/healthz").get_json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    checks = ready.get_json()["checks"]
    assert checks["database"]["ok"] and checks["queue"]["ok"] and checks["rules"]["ok"]
    assert len(checks["rules"]["digest"]) == 64


def test_unknown_route_is_json_404(app):
    response = app.test_client().get("/nope")
    assert response.status_code == 404
    assert response.get_json()["status"] == 404


def _ledger_waits(app) -> list[ApprovalWait]:
    with app_runtime(app).activate(), current_runtime().sessions() as session:
        return list(session.scalars(select(ApprovalWait).order_by(ApprovalWait.id)))


def test_body_in_utf16_or_utf32_is_refused_not_a_500(app):
    text = fixture_body(DEPLOY).decode("utf-8")
    for encoding in ("utf-16", "utf-32"):
        assert _bad(app, text.encode(encoding)) == (400, "the body is not valid JSON")


def test_body_with_a_utf8_byte_order_mark_is_processed(app):
    response = post_webhook(app, b"\xef\xbb\xbf" + fixture_body(DEPLOY))
    assert response.status_code == 202
    run_worker(app)
    [wait] = _ledger_waits(app)
    assert (wait.issue_key, wait.flagged) == ("PAY-101", True)


def test_characters_no_database_can_store_are_replaced_not_dropped(app):
    # JSON may escape a lone surrogate or a NUL; neither fits a UTF-8 text column
    # (PostgreSQL refuses NUL outright), so the delivery must not be accepted and then lost.
    assert post_webhook(app, fixture_body("issue_updated__cloud_unstorable_characters")).status_code == 202
    run_worker(app)
    [wait] = _ledger_waits(app)
    assert wait.ticket_snapshot["summary"] == "Deploy \ufffd billing\ufffdservice"
    assert wait.ticket_snapshot["labels"] == ["deploy", "bill\ufffding"]
    with app_runtime(app).activate():
        from jobs.inbox import backlog

        assert backlog(current_runtime()) == {"waiting": 0, "retrying": 0}


def test_numbers_json_does_not_allow_are_refused(app):
    for number in (b"NaN", b"Infinity", b"-Infinity", b"1e999"):
        body = (b'{"webhookEvent": "jira:issue_updated", "issue": {"key": "A-1", "fields": '
                b'{"customfield_10016": ' + number + b"}}}")
        assert _bad(app, body) == (400, "the body is not valid JSON"), number


def test_issue_key_that_is_not_a_jira_key_is_refused(app):
    for key in ("A" * 70 + "-1", "PAY-1/../../../rest/api/2/myself", "PAY 1", "PAY-1?x=1"):
        payload = fixture_json(DEPLOY)
        payload["issue"]["key"] = key
        assert _bad(app, json.dumps(payload).encode()) == (
            400, "'issue.key' is not a Jira issue key (like PAY-123)"), key


def test_overlong_ids_are_refused(app):
    payload = fixture_json("comment_created__cloud_intent")
    payload["comment"]["id"] = "9" * 65
    assert _bad(app, json.dumps(payload).encode()) == (400, "'comment.id' is longer than 64 characters")


def test_overlong_jira_text_is_cut_to_fit_the_ledger(app):
    payload = fixture_json(DEPLOY)
    fields = payload["issue"]["fields"]
    fields["issuetype"]["name"] = "Task"
    fields["status"]["name"] = "Awaiting Approval"
    fields["priority"]["name"] = "P" * 300
    fields["reporter"]["accountId"] = "r" * 300
    payload["changelog"]["items"][0]["fromString"] = "S" * 300
    assert post_webhook(app, json.dumps(payload).encode()).status_code == 202
    run_worker(app)
    with app_runtime(app).activate(), current_runtime().sessions() as session:
        ticket = session.scalars(select(TicketRecord)).one()
        assert ticket.priority == "P" * 64 and ticket.reporter == "r" * 128
        change = session.scalars(select(StatusChange)).one()
        assert change.from_status == "S" * 128
    assert [w.flagged for w in _ledger_waits(app)] == [True]
