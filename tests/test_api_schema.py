"""Property-based tests of the HTTP API from its own OpenAPI description (schemathesis).

Every generated webhook body is signed with the test secret and every report request
carries the report token, so the requests get past authentication and reach what
they are meant to test: the payload parser and the report's filters.
"""

from __future__ import annotations

import json
import uuid
from collections import Counter
from typing import Any

import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.core import NotSet
from sqlalchemy import func, select

from jobs.inbox import backlog
from ledger.models import Delivery
from service.runtime import current_runtime
from tests.conftest import SECRET, post_webhook, run_worker
from webhooks.auth import sign
from webhooks.extension import app_runtime

REPORT_TOKEN = "report-token-0123"


def bounded(examples: int) -> settings:
    return settings(max_examples=examples, deadline=None, database=None,
                    suppress_health_check=list(HealthCheck))


def _call(case: Any) -> Any:
    """Send the case signed (webhooks) or with the report token (reports)."""
    if case.path == "/webhooks/jira":
        body = {} if isinstance(case.body, NotSet) else case.body
        raw = json.dumps(body).encode()
        return case.call(data=raw, headers={"X-Hub-Signature": sign(SECRET, raw),
                                            "Content-Type": "application/json"})
    if case.path.startswith("/reports/"):
        return case.call(headers={"Authorization": f"Bearer {REPORT_TOKEN}"})
    return case.call()


def test_no_generated_request_gets_a_server_error(make_app):
    app = make_app(report_token=REPORT_TOKEN, webhook_secret=SECRET)
    schema = schemathesis.openapi.from_wsgi("/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {op.path for op in operations} >= {"/webhooks/jira", "/reports/bottlenecks", "/readyz"}
    cases = st.one_of([operation.as_strategy() for operation in operations])
    answers: Counter[tuple[str, int]] = Counter()

    @bounded(200)
    @given(case=cases)
    def check(case):
        response = _call(case)
        answers[(case.path, response.status_code)] += 1
        assert response.status_code < 500, (case.method, case.path, response.status_code)

    check()
    # Authentication let every request through: the fuzz reached the parser and the filters.
    refused = {k: n for k, n in answers.items() if k[1] == 401}
    assert not refused, refused
    webhook = {status for path, status in answers if path == "/webhooks/jira"}
    report = {status for path, status in answers if path.startswith("/reports/")}
    assert 400 in webhook, answers  # the parser said what is missing
    assert 200 in report, answers  # the report answered, with filters applied


_TEXT = st.text(max_size=12)
_SCALAR = st.none() | st.booleans() | st.integers(-2**63, 2**63) | st.floats(allow_nan=False) | _TEXT
_JSON = st.recursive(_SCALAR, lambda inner: st.lists(inner, max_size=3)
                     | st.dictionaries(_TEXT, inner, max_size=3), max_leaves=8)
_USER = st.one_of(_JSON, st.fixed_dictionaries({}, optional={
    "accountId": _SCALAR, "name": _SCALAR, "key": _SCALAR, "displayName": _SCALAR}))
_NAMED = st.one_of(_JSON, st.fixed_dictionaries({}, optional={"name": _SCALAR, "id": _SCALAR,
                                                              "key": _SCALAR, "value": _SCALAR}))
_FIELDS = st.fixed_dictionaries({}, optional={
    "status": _NAMED, "assignee": _USER, "reporter": _USER, "issuetype": _NAMED,
    "project": _NAMED, "priority": _NAMED, "summary": _JSON, "labels": _JSON,
    "components": st.lists(_NAMED, max_size=3), "updated": _JSON, "created": _JSON,
    "customfield_10050": st.one_of(_USER, st.lists(_USER, max_size=3)),
    "customfield_10060": _JSON,
})
_ITEM = st.fixed_dictionaries({}, optional={
    "field": st.sampled_from(["status", "assignee", "Approvers", "labels"]) | _SCALAR,
    "fieldId": st.sampled_from(["status", "assignee", "customfield_10050"]) | _SCALAR,
    "from": _SCALAR, "fromString": _SCALAR, "to": _SCALAR, "toString": _SCALAR,
    "tmpFromAccountId": _SCALAR, "tmpToAccountId": _SCALAR})
_KEY = st.sampled_from(["PAY-1", "OPS-22", "pay-1", "PAY-1 ", "x"])
_ISSUE = st.fixed_dictionaries({"key": st.one_of(_KEY, _KEY, _KEY, _JSON)},
                               optional={"id": _SCALAR, "fields": st.one_of(_FIELDS, _FIELDS, _JSON)})
_COMMENT = st.fixed_dictionaries({"id": st.one_of(st.integers(1, 10**6), _SCALAR)}, optional={ "body": st.one_of(_JSON, st.just("I intend to ship it")), "author": _USER,
    "self": st.one_of(_SCALAR, st.just("https://jira.example/rest/api/2/issue/10001/comment/5"))})
#: Jira-shaped deliveries: the keys the parser reads, with odd values in them.
PAYLOADS = st.fixed_dictionaries(
    {"webhookEvent": st.sampled_from(["jira:issue_created", "jira:issue_updated", "comment_created",
                                      "comment_updated", "jira:issue_deleted", "worklog_created"]),
     "issue": st.one_of(_ISSUE, _ISSUE, _ISSUE, _JSON)},
    optional={
        "timestamp": st.one_of(st.integers(0, 4_102_444_800_000), st.integers(0, 2**53),
                               st.integers(0, 4_102_444_800_000), _SCALAR),
        "user": _USER,
        "changelog": st.one_of(st.fixed_dictionaries(
            {"items": st.one_of(st.lists(_ITEM, max_size=3), _JSON)}, optional={"id": _SCALAR}), _JSON),
        "comment": st.one_of(_COMMENT, _COMMENT, _COMMENT, _JSON),
        "issue_event_type_name": st.sampled_from(["issue_generic", "issue_comment_deleted"]),
    },
)


def test_jira_shaped_payloads_with_odd_values_never_fail_the_intake_or_the_worker(make_app):
    """Signed deliveries that look like Jira's, with odd values where the parser looks.

    The endpoint answers each with a 2xx or a 4xx, and everything it queued is then
    processed by the worker without an error (no delivery set aside for a retry).
    """
    app = make_app(webhook_secret=SECRET)
    queued: list[str] = []
    answers: Counter[int] = Counter()

    @bounded(150)
    @given(payload=PAYLOADS)
    def check(payload):
        delivery = uuid.uuid4().hex
        response = post_webhook(app, json.dumps(payload).encode(), delivery=delivery)
        answers[response.status_code] += 1
        assert response.status_code in (200, 202, 400), (payload, response.get_json())
        if response.status_code == 202:
            queued.append(delivery)

    check()
    assert answers[202] and answers[400], answers  # both sides of the parser were reached
    run_worker(app)
    with app_runtime(app).activate():
        runtime = current_runtime()
        assert backlog(runtime) == {"waiting": 0, "retrying": 0}
        with runtime.sessions() as session:
            assert session.scalar(select(func.count()).select_from(Delivery)) == len(queued)
