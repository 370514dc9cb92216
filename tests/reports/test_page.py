"""The HTML page as served (headers, escaping, links) and the OpenAPI description."""

from __future__ import annotations

from typing import Any

from flask import Flask

from tests.reports.conftest import TOKEN, bearer, seed


def test_page_headers_and_links(report_app: Flask) -> None:
    response = report_app.test_client().get(f"/reports/bottlenecks.html?token={TOKEN}")
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    assert response.headers["Referrer-Policy"] == "no-referrer"  # the token stays here
    assert "default-src 'none'" in response.headers["Content-Security-Policy"]
    assert response.headers["Cache-Control"] == "no-store"
    page = response.get_data(as_text=True)
    assert '<a href="https://jira.example.com/browse/PAY-6" rel="noreferrer noopener"' in page
    assert "<script" not in page and "http://" not in page.replace("http://www.w3.org", "")
    assert TOKEN not in page
    assert page.count("<svg") == 4
    # open waits' own median (W6 48 h, W7 588 h: 318 h), as a card and per approver
    assert "<b>318.0 h</b><span>median age of open waits</span>" in page
    assert '<td class="n">588.0</td><td class="n">588.0</td><td class="n">588.0</td>' in page


def test_untrusted_names_are_escaped(make_app: Any) -> None:
    app = make_app(report_token=TOKEN)
    seed(app, [dict(key="X-1", approver="<img src=x onerror=alert(1)>", level="manager",
                    status="<b>Awaiting</b>", start="11-20T00:00", end=None)], [])
    page = app.test_client().get("/reports/bottlenecks.html", headers=bearer()).get_data(
        as_text=True)
    assert "<img" not in page and "<b>Awaiting" not in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page


def test_openapi_describes_every_route(report_app: Flask) -> None:
    spec = report_app.test_client().get("/openapi.json").get_json()
    assert spec["openapi"] == "3.1.0"
    served = {
        (rule.rule, method.lower())
        for rule in report_app.url_map.iter_rules()
        if rule.endpoint != "static"
        for method in rule.methods or ()
        if method not in ("HEAD", "OPTIONS")
    }
    described = {(path, method) for path, item in spec["paths"].items() for method in item}
    assert served == described
    figures = spec["components"]["schemas"]["Figures"]["properties"]
    assert {"open_median_hours", "open_p90_hours"} <= set(figures)
    intake = spec["paths"]["/webhooks/jira"]["post"]["responses"]
    assert set(intake) == {"200", "202", "400", "401", "413", "415", "503"}
    report = spec["paths"]["/reports/bottlenecks"]["get"]
    assert set(report["responses"]) == {"200", "400", "401", "503"}
    assert set(report["responses"]["200"]["content"]) == {"application/json", "text/csv",
                                                          "text/html"}
    # every $ref points at a schema that exists
    text = report_app.test_client().get("/openapi.json").get_data(as_text=True)
    for ref in {part.split('"')[0] for part in text.split("#/components/schemas/")[1:]}:
        assert ref in spec["components"]["schemas"], ref
