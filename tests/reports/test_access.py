"""Who may read the report, which filters it takes, and which format it answers in."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
from flask import Flask

from ledger.report import Window, bottleneck_report
from service.runtime import current_runtime
from tests.reports.conftest import NOW, TOKEN, bearer, seed
from webhooks.extension import app_runtime

PATHS = ["/reports/bottlenecks", "/reports/bottlenecks.html", "/reports/bottlenecks?format=csv"]


@pytest.mark.parametrize("path", PATHS)
def test_refuses_to_serve_without_a_configured_token(make_app: Any, path: str) -> None:
    response = make_app().test_client().get(path, headers=bearer())
    assert response.status_code == 503
    assert "REPORT_TOKEN must be set" in response.get_json()["error"]


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("headers", [
    {}, bearer("wrong"), {"Authorization": TOKEN}, {"Authorization": f"Basic {TOKEN}"},
    {"Authorization": "Bearer "},
])
def test_401_without_the_right_token(report_app: Flask, path: str, headers: Any) -> None:
    response = report_app.test_client().get(path, headers=headers)
    assert response.status_code == 401
    assert response.get_json()["error"].startswith("a valid REPORT_TOKEN is required")
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert TOKEN not in response.get_data(as_text=True)


def test_query_token_only_for_the_html_page(report_app: Flask) -> None:
    client = report_app.test_client()
    assert client.get(f"/reports/bottlenecks?token={TOKEN}").status_code == 401
    assert client.get(f"/reports/bottlenecks?format=csv&token={TOKEN}").status_code == 401
    assert client.get(f"/reports/bottlenecks.html?token={TOKEN}").status_code == 200
    assert client.get("/reports/bottlenecks.html?token=nope").status_code == 401
    negotiated = client.get(f"/reports/bottlenecks?token={TOKEN}", headers={"Accept": "text/html"})
    assert negotiated.status_code == 200 and negotiated.mimetype == "text/html"


@pytest.mark.parametrize("query, message", [
    ("since=yesterday", "since must be an ISO date or datetime"),
    ("until=2026-13-01", "until must be an ISO date or datetime"),
    ("since=2026-11-20&until=2026-11-20", "since must be earlier than until"),
    ("since=2026-11-21T00:00:00Z&until=2026-11-20", "since must be earlier than until"),
    ("format=xml", "format must be one of json, csv, html"),
    ("limit=0", "limit must be a whole number from 1 to 500"),
    ("limit=ten", "limit must be a whole number from 1 to 500"),
    ("project=" + "P" * 129, "project must be at most 128 characters"),
    ("project=PAY%00", "project must not contain control characters"),
    ("team=pay%0Aments", "team must not contain control characters"),
])
def test_400_for_bad_filters(report_app: Flask, query: str, message: str) -> None:
    response = report_app.test_client().get(f"/reports/bottlenecks?{query}", headers=bearer())
    assert response.status_code == 400
    assert response.get_json()["error"].startswith(message)


def test_zoned_datetimes_are_converted_to_utc(report_app: Flask) -> None:
    # 07:00+01:00 is 06:00 UTC
    response = report_app.test_client().get(
        "/reports/bottlenecks?since=2026-11-24T07:00:00%2B01:00", headers=bearer())
    assert response.get_json()["window"]["since"] == "2026-11-24T06:00:00"


@pytest.mark.parametrize("accept, mimetype", [
    (None, "application/json"), ("*/*", "application/json"),
    ("application/json", "application/json"), ("text/csv", "text/csv"),
    ("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", "text/html"),
])
def test_content_negotiation(report_app: Flask, accept: str | None, mimetype: str) -> None:
    headers = bearer() | ({"Accept": accept} if accept else {})
    response = report_app.test_client().get("/reports/bottlenecks", headers=headers)
    assert response.status_code == 200
    assert response.mimetype == mimetype


def _episodes(app: Flask, since: str | None, until: str | None) -> list[str]:
    window = Window(since=datetime.fromisoformat(since) if since else None,
                    until=datetime.fromisoformat(until) if until else None)
    with app_runtime(app).activate(), current_runtime().sessions() as session:
        report = bottleneck_report(session, window, now=NOW, longest=50)
    return sorted(r["approver"] for r in report["by_approver"] for _ in range(r["episodes"]))


@pytest.mark.parametrize("since, until, expected", [
    # PAY-4 (carol) ran 11-14 12:00 to 11-16 12:00: a wait ending exactly at since is out
    ("2026-11-16T12:00", "2026-11-16T12:01", ["5b10unknown", "dana"]),
    ("2026-11-16T11:59", "2026-11-16T12:00", ["5b10unknown", "carol", "dana"]),
    # a wait starting exactly at since is in, exactly at until is out (PAY-1 at 09:00)
    ("2026-11-16T09:00", "2026-11-16T09:01", ["5b10unknown", "carol", "dana"]),
    ("2026-11-16T08:00", "2026-11-16T09:00", ["5b10unknown", "carol"]),
    # only the open OPS-7 and PAY-6 remain after every ended wait
    ("2026-11-24T09:00", None, ["5b10unknown", "dana"]),
    (None, "2026-11-01T00:00", []),
])
def test_window_boundaries(report_app: Flask, since: str | None, until: str | None,
                           expected: list[str]) -> None:
    assert _episodes(report_app, since, until) == expected


def test_csv_cells_cannot_become_formulas(make_app: Any) -> None:
    app = make_app(report_token=TOKEN)
    seed(app, [dict(key="X-1", approver="=HYPERLINK(\"http://evil\")", level=None,
                    start="11-20T00:00", end="11-20T01:00")], [])
    body = app.test_client().get("/reports/bottlenecks?format=csv", headers=bearer()).data
    assert b"\r\n\"'=HYPERLINK(\"\"http://evil\"\")\"," in body
