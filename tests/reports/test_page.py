"""The HTML page as served (headers, escaping, links) and the OpenAPI description."""

from __future__ import annotations

import html
import re
from typing import Any

from flask import Flask

from tests.reports.conftest import TOKEN, bearer, seed
from tests.reports.loop_report import LONG_ID, loop_report, today_report
from webhooks.extension import app_runtime
from webhooks.reports import render_page


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
    # bars: one SVG per approver and per level row; two trend charts, and the weekly share
    # of decisions moving down when there were decisions
    report = report_app.test_client().get("/reports/bottlenecks", headers=bearer()).get_json()
    rows = len(report["by_approver"]) + len(report["by_level"])
    charts = 2 + (1 if report["delegation"] else 0)
    assert page.count('<svg class="track"') == rows and page.count("<svg") == rows + charts
    # open waits' own median (W6 48 h, W7 588 h: 318 h = 13.2 days), in words
    assert "<b>13.2 days</b><span>typical wait so far</span>" in page
    assert '<td class="n" data-label="Hours waited">588.0</td>' in page


def visible_text(page: str) -> str:
    """The words a reader sees: no tags, no style sheet."""
    body = page.split("</head>", 1)[1]
    return html.unescape(" ".join(re.sub(r"<[^>]+>", " ", body).split()))


def test_the_page_leads_with_what_to_do_by_name(report_app: Flask) -> None:
    page = report_app.test_client().get(
        f"/reports/bottlenecks.html?since=2026-11-16&until=2026-11-24&token={TOKEN}"
    ).get_data(as_text=True)
    text = visible_text(page)
    assert text.index("What to do") < text.index("The leader-leader loop") < text.index(
        "Where decisions wait")
    assert ("3 of 7 decisions waited on Dana K (director); all 3 could have been decided "
            "lower. see who decisions waited on") in text
    assert ("PAY-6 has waited 2 days on Dana K (director); Alice Ng (tech lead) could decide "
            "it.") in text
    assert ("Add 2 people to the rules file (5b10unknown, ghost.holder): decisions that "
            "involve them cannot be judged. see who is missing") in text
    assert text.index("ghost.holder") < text.index("7 decisions waited for approval")
    # names, not handles; the handle stays in the tooltip
    assert '<span title="dana">Dana K</span>' in page
    assert '<td data-label="Waiting on">Dana K (director)</td>' in page
    # every breakdown the JSON has, in plain words
    for heading in ("By approver", "By level", "By team", "By decision rule",
                    "Waiting now, longest first", "Week by week",
                    "People missing from the rules file"):
        assert heading in text, heading
    assert "Routine production deploy" in page and "(no team)" in text
    for jargon in ("p90", "episode", "Episode"):
        assert jargon not in text, jargon
    # every figure explained where it is shown
    assert "Half the decisions taken waited less than this, half longer." in text
    assert "90th percentile: 9 decisions in 10 were taken within this time." in text
    assert "The approver sat above the level the decision rule sets" in text


def test_the_page_with_the_loop_keys_and_without(make_app: Any) -> None:
    app = make_app(report_token=TOKEN)
    rules = app_runtime(app).rules.get()
    with app.test_request_context():
        before, after = render_page(today_report(), rules), render_page(loop_report(), rules)
    for section in ('id="delegation"', 'id="suggestions"', 'id="competence-gaps"',
                    'id="loop-acknowledged"', 'id="chart-delegation"'):
        assert section not in before and section in after, section
    # intents: from the loop when it counts them, else from the summary; never twice
    partial = loop_report()
    del partial["loop"]["intents"]
    with app.test_request_context():
        between = render_page(partial, rules)
    for page in (before, after, between):
        assert page.count("<span>“I intend to …” said</span>") == 1
    # before the loop's answers are counted, the waits taken after an intent stand in
    assert "<span>taken after an intent</span>" in before
    assert "<span>taken after an intent</span>" not in after
    text = visible_text(after)
    assert "'Spend under 5k' could be decided by tech leads. see the evidence" in text
    # the evidence one click away: the link lands on it; the edit itself is folded
    assert ("<li>Carol S approved 5 of 5 &#39;Spend under 5k&#39; waits, none refused</li>"
            in after.split('<li id="suggestion-1">')[1])
    assert "<details><summary>The proposed edit of the rules file</summary><pre>" in after
    assert "-    decided_at: manager\n+    decided_at: tech_lead" in after
    assert "Engineers on call know whether a routine deploy is safe" in text  # purpose
    assert "1.5 hours to “very well”" in text
    assert '<td data-label="Nearest competent person">Alice Ng (tech lead)</td>' in after
    # the share per week, ticked in whole percent; one column per week
    chart = after.split('id="chart-delegation"')[1].split("</figure>")[0]
    # 8 weeks: one without a decision, one at 0 %: 6 columns drawn
    assert chart.count('class="bar delegation"') == 6 and chart.count("bar-col") == 8
    assert re.findall(r'class="tick"[^>]*>([^<]+)<', chart) == ["0%", "25%", "50%", "75%",
                                                                "100%"]
    # Sam Contractor, not their Jira id, wherever the page names them
    assert "Sam Contractor" in text and f">{LONG_ID}<" in after  # the id column only
    assert text.count(LONG_ID) == 1
    # counts are whole numbers on every count chart
    flagged = after.split('id="chart-flagged"')[1].split("</figure>")[0]
    assert re.findall(r'class="tick"[^>]*>([^<]+)<', flagged) == ["0", "1", "2", "3"]


def test_text_from_the_ledger_is_escaped_in_the_loop(make_app: Any) -> None:
    app = make_app(report_token=TOKEN)
    report = loop_report()
    report["suggestions"][0]["diff"] = "<script>alert(1)</script>"
    report["competence_gaps"][0]["competence"] = "<img src=x>"
    report["by_rule"][0]["purpose"] = "<b>why</b>"
    with app.test_request_context():
        page = render_page(report, None)
    assert "<script" not in page and "<img" not in page and "<b>why" not in page
    assert "&lt;script&gt;" in page and "&lt;b&gt;why" in page


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


def test_the_nearest_competent_people_the_ledger_lists_are_shown_by_name(make_app: Any) -> None:
    """The report lists every nearest competent person of a gap's waits (handles)."""
    app = make_app(report_token=TOKEN)
    report = loop_report()
    report["competence_gaps"] = [{"rule": "Routine production deploy", "competence": "deploy",
                                  "team": "payments", "episodes": 2,
                                  "nearest_competent": ["alice", "carol"]}]
    with app.test_request_context():
        page = render_page(report, app_runtime(app).rules.get())
    text = visible_text(page)
    assert "Alice Ng (tech lead), Carol S (manager)" in text and "['alice'" not in text
