"""Exact report figures for the ledger in conftest.py, worked out by hand.

Window [11-16, 11-24) holds W1 W2 W3 W4 (across since) W6 W7 (open) W8; not W5 (ended
before since), W9 (deleted ticket), W10 (starts after until). Ended waits, sorted:
4 6 10 24 48 h -> median 10, p90 at position 0.9*4=3.6: 24 + 0.6*(48-24) = 38.4.
Open waits' ages at 11-25 12:00, sorted: W6 48, W7 588 h -> median at position 0.5:
48 + 0.5*(588-48) = 318, p90 at position 0.9: 48 + 0.9*540 = 534 (W9: deleted, out).
"""

from __future__ import annotations

import csv
import io
from datetime import date
from typing import Any

import pytest
from flask import Flask

from ledger import report_postgres
from tests.reports.conftest import DEPLOY, ELSE, SPEND, bearer, seed

WINDOW = "since=2026-11-16&until=2026-11-24"


def figures(episodes: int, flagged: int, waiting: int, ended: int, after_intent: int,
            median: float | None, p90: float | None, total: float, open_total: float,
            open_max: float | None, open_median: float | None = None,
            open_p90: float | None = None) -> dict[str, Any]:
    return {"episodes": episodes, "flagged": flagged, "waiting_now": waiting, "ended": ended,
            "ended_after_intent": after_intent, "median_wait_hours": median,
            "p90_wait_hours": p90, "total_wait_hours": total, "open_total_hours": open_total,
            "open_max_hours": open_max, "open_median_hours": open_median,
            "open_p90_hours": open_p90}


# dana: 10, 24 ended (p90 = 10 + 0.9*14 = 22.6) and W6 open for 48 h (one open wait:
# its age is its median and p90)
DANA = figures(3, 3, 1, 2, 1, 17.0, 22.6, 34.0, 48.0, 48.0, 48.0, 48.0)
# carol: 4, 48 ended (p90 = 4 + 0.9*44 = 43.6)
CAROL = figures(2, 0, 0, 2, 0, 26.0, 43.6, 52.0, 0.0, None)
ALICE = figures(1, 0, 0, 1, 0, 6.0, 6.0, 6.0, 0.0, None)
# OPS-7: open since 11-01 00:00, 24.5 days = 588 h at 11-25 12:00
UNKNOWN = figures(1, 0, 1, 0, 0, None, None, 0.0, 588.0, 588.0, 588.0, 588.0)


def get(app: Flask, query: str = "", **headers: str) -> Any:
    return app.test_client().get(f"/reports/bottlenecks?{query}", headers={**bearer(), **headers})


def test_window_figures_exact(report_app: Flask) -> None:
    response = get(report_app, WINDOW)
    assert response.status_code == 200, response.get_json()
    report = response.get_json()
    assert report["window"] == {
        "since": "2026-11-16T00:00:00", "until": "2026-11-24T00:00:00", "project": None,
        "team": None, "semantics": "overlap", "generated_at": "2026-11-25T12:00:00",
        "trend_since": "2026-11-16T00:00:00"}
    assert report["summary"] == {
        **figures(7, 3, 2, 5, 1, 10.0, 38.4, 92.0, 636.0, 588.0, 318.0, 534.0), "intents": 3}
    # the biggest hold-up (ended + open hours) first
    assert report["by_approver"] == [
        {"approver": "5b10unknown", "level": None, **UNKNOWN},
        {"approver": "dana", "level": "director", **DANA},
        {"approver": "carol", "level": "manager", **CAROL},
        {"approver": "alice", "level": "tech_lead", **ALICE},
    ]
    # the rules' order, lowest first; no level (unmapped) last
    assert report["by_level"] == [
        {"level": "tech_lead", **ALICE}, {"level": "manager", **CAROL},
        {"level": "director", **DANA}, {"level": None, **UNKNOWN},
    ]
    assert report["by_team"] == [
        {"team": None, **UNKNOWN},
        {"team": "payments",  # W6 is its only open wait
         **figures(6, 3, 1, 5, 1, 10.0, 38.4, 92.0, 48.0, 48.0, 48.0, 48.0)},
    ]
    deploy_purpose = ("The engineer who wrote the change knows its risk best; the pipeline "
                      "checks the rest.")  # the example rules' purpose of DEPLOY
    assert report["by_rule"] == [
        {"rule": None, **UNKNOWN, "purpose": None},
        {"rule": DEPLOY, **DANA, "purpose": deploy_purpose},
        {"rule": SPEND, **CAROL, "purpose": None}, {"rule": ELSE, **ALICE, "purpose": None},
    ]
    assert report["longest_waiting"] == [
        {"key": "OPS-7", "project": "OPS", "team": None, "status": "Awaiting Approval",
         "approver": "5b10unknown", "level": None, "waiting_hours": 588.0,
         "suggested_decider": None, "rule": None, "flagged": False,
         "since": "2026-11-01T00:00:00", "url": "https://jira.example.com/browse/OPS-7"},
        {"key": "PAY-6", "project": "PAY", "team": "payments", "status": "Awaiting Approval",
         "approver": "dana", "level": "director", "waiting_hours": 48.0,
         "suggested_decider": "alice", "rule": DEPLOY, "flagged": True,
         "since": "2026-11-23T12:00:00", "url": "https://jira.example.com/browse/PAY-6"},
    ]
    # only episodes that started inside the window: W1 W2 W3 W8 (4, 6, 10, 24 h) and W6
    assert report["trend"] == [
        {"week": "2026-W47", "week_start": "2026-11-16", "episodes": 4, "flagged": 2,
         "ended": 4, "median_wait_hours": 8.0, "p90_wait_hours": 19.8},
        {"week": "2026-W48", "week_start": "2026-11-23", "episodes": 1, "flagged": 1,
         "ended": 0, "median_wait_hours": None, "p90_wait_hours": None},
    ]
    # dana.k (W3) is in the rules file now; W5's 5b10unknown is before the window
    assert report["unmapped"] == [
        {"jira_id": "5b10unknown", "name": None, "episodes": 1, "last_seen": "2026-11-01T00:00:00"},
        {"jira_id": "ghost.holder", "name": None, "episodes": 1, "last_seen": "2026-11-19T00:00:00"},
    ]


def test_whole_history(report_app: Flask) -> None:
    """No bounds: every episode but the deleted ticket's; ended 2 4 6 10 24 48 48.

    Open: the same W6 (48 h) and W7 (588 h) as in the window -> 318 and 534.
    """
    report = get(report_app).get_json()
    assert report["summary"] == {
        **figures(9, 3, 2, 7, 1, 10.0, 48.0, 142.0, 636.0, 588.0, 318.0, 534.0), "intents": 4}
    assert [(r["approver"], r["episodes"]) for r in report["by_approver"]] == [
        ("5b10unknown", 1), ("dana", 4), ("carol", 2), ("alice", 1), ("bob", 1)]
    assert [w["week"] for w in report["trend"]] == [
        "2026-W44", "2026-W45", "2026-W46", "2026-W47", "2026-W48"]
    assert report["trend"][1] == {  # W45 (Nov 2-8): an empty week, filled
        "week": "2026-W45", "week_start": "2026-11-02", "episodes": 0, "flagged": 0,
        "ended": 0, "median_wait_hours": None, "p90_wait_hours": None}
    assert report["unmapped"][0] == {
        "jira_id": "5b10unknown", "name": None, "episodes": 2, "last_seen": "2026-11-10T00:00:00"}


#: Waits far older than the default trend: one in 2017, one the day before the trend's
#: first Monday (2026-06-01, 25 weeks before W48) and one on that Monday.
OLD_WAITS = [
    dict(key="OLD-1", approver="carol", level="manager", start="2017-03-07T10:00",
         end="2017-03-08T10:00", project="OLD"),
    dict(key="OLD-2", approver="carol", level="manager", start="05-31T23:00",
         end="06-01T01:00", project="OLD"),
    dict(key="OLD-3", approver="carol", level="manager", start="06-01T00:00",
         end="06-01T02:00", project="OLD"),
]


def _weeks(report: dict[str, Any]) -> list[str]:
    return [week["week"] for week in report["trend"]]


def test_trend_defaults_to_the_last_26_weeks(
    report_app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without ``since`` the figures cover all history, the trend only 26 weeks."""
    seed(report_app, OLD_WAITS, [])
    report = get(report_app).get_json()
    assert report["window"]["since"] is None
    assert report["window"]["trend_since"] == "2026-06-01T00:00:00"
    assert report["summary"]["episodes"] == 12  # the whole history's 9 and the 3 old ones
    assert len(report["trend"]) == 26
    assert report["trend"][0] == {  # OLD-3 only: OLD-2 started the evening before
        "week": "2026-W23", "week_start": "2026-06-01", "episodes": 1, "flagged": 0,
        "ended": 1, "median_wait_hours": 2.0, "p90_wait_hours": 2.0}
    assert _weeks(report)[-5:] == ["2026-W44", "2026-W45", "2026-W46", "2026-W47", "2026-W48"]
    # without since, until ends the 26 weeks: its last week is W47 (Nov 16-22), so the
    # trend starts a week earlier and takes in OLD-2 (W22)
    until = get(report_app, "until=2026-11-17").get_json()
    assert until["window"]["trend_since"] == "2026-05-25T00:00:00"
    assert len(until["trend"]) == 26
    assert (_weeks(until)[0], _weeks(until)[-1]) == ("2026-W22", "2026-W47")
    # PostgreSQL's two passes draw the same trend as its sorts (SQLite: one path)
    answers: list[Any] = []
    two_pass = report_postgres.two_pass
    monkeypatch.setattr(report_postgres, "TWO_PASS_FROM", 0)
    monkeypatch.setattr(report_postgres, "two_pass",
                        lambda *args: answers.append(two_pass(*args)) or answers[-1])
    assert get(report_app).get_json() == report
    assert None not in answers


def test_explicit_since_gives_every_week_since(report_app: Flask) -> None:
    seed(report_app, OLD_WAITS[:1], [])
    report = get(report_app, "since=2017-01-01").get_json()
    assert report["window"]["trend_since"] == "2017-01-01T00:00:00"
    first, last = date(2017, 3, 6), date(2026, 11, 23)  # the Mondays of OLD-1 and of now
    assert len(report["trend"]) == (last - first).days // 7 + 1 == 508
    assert (report["trend"][0]["week"], report["trend"][0]["episodes"]) == ("2017-W10", 1)
    assert _weeks(report)[-1] == "2026-W48"


def test_project_and_team_filters(report_app: Flask) -> None:
    ops = get(report_app, "project=OPS").get_json()
    assert ops["summary"] == {**UNKNOWN, "intents": 1}
    payments = get(report_app, "team=payments").get_json()["summary"]
    assert (payments["episodes"], payments["waiting_now"], payments["intents"]) == (8, 1, 2)
    assert get(report_app, "project=NOPE").get_json()["summary"] == {
        **figures(0, 0, 0, 0, 0, None, None, 0.0, 0.0, None), "intents": 0}


def test_csv_one_row_per_approver(report_app: Flask) -> None:
    response = get(report_app, WINDOW + "&format=csv")
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    rows = list(csv.reader(io.StringIO(response.get_data(as_text=True))))
    assert rows == [
        ["approver", "level", "episodes", "flagged", "waiting_now", "ended",
         "ended_after_intent", "median_wait_hours", "p90_wait_hours", "total_wait_hours",
         "open_total_hours", "open_max_hours", "open_median_hours", "open_p90_hours",
         "intents", "acknowledged", "objected", "proceeded", "median_ack_hours"],
        ["5b10unknown", "", "1", "0", "1", "0", "0", "", "", "0.0", "588.0", "588.0", "588.0",
         "588.0", "0", "0", "0", "0", ""],
        # PAY-2's intent (11-17 12:00) had no answer by its proceed-on date, 11-19: proceeded
        ["dana", "director", "3", "3", "1", "2", "1", "17.0", "22.6", "34.0", "48.0", "48.0",
         "48.0", "48.0", "1", "0", "0", "1", ""],
        ["carol", "manager", "2", "0", "0", "2", "0", "26.0", "43.6", "52.0", "0.0", "", "", "",
         "0", "0", "0", "0", ""],
        ["alice", "tech_lead", "1", "0", "0", "1", "0", "6.0", "6.0", "6.0", "0.0", "", "", "",
         "0", "0", "0", "0", ""],
    ]


def test_empty_ledger(make_app: Any) -> None:
    app = make_app(report_token="t0ken")
    report = app.test_client().get("/reports/bottlenecks", headers=bearer("t0ken")).get_json()
    assert report["summary"]["episodes"] == 0
    assert report["summary"]["median_wait_hours"] is None
    assert report["summary"]["open_median_hours"] is None
    assert report["summary"]["open_p90_hours"] is None
    for key in ("by_approver", "by_level", "by_team", "by_rule", "longest_waiting", "trend",
                "unmapped", "delegation", "intents_by_level", "intents_by_team",
                "competence_gaps", "suggestions"):
        assert report[key] == []
    assert {k: report["loop"][k] for k in ("intents", "acknowledged", "objected", "proceeded",
                                           "median_ack_hours", "outcomes_to_learn")} == {
        "intents": 0, "acknowledged": 0, "objected": 0, "proceeded": 0,
        "median_ack_hours": None, "outcomes_to_learn": 0}
    page = app.test_client().get("/reports/bottlenecks.html?token=t0ken")
    assert page.status_code == 200
    assert b"No waits in this window." in page.data
