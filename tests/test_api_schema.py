"""Property-based tests of the HTTP API from its own OpenAPI description (schemathesis)."""

from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import SECRET


def test_no_generated_request_gets_a_server_error(make_app):
    app = make_app(report_token="report-token-0123", webhook_secret=SECRET)
    schema = schemathesis.openapi.from_wsgi("/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {op.path for op in operations} >= {"/webhooks/jira", "/reports/bottlenecks", "/readyz"}
    cases = st.one_of([operation.as_strategy() for operation in operations])

    @settings(max_examples=200, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(case=cases)
    def check(case):
        response = case.call()
        assert response.status_code < 500, (case.method, case.path, response.status_code)

    check()
