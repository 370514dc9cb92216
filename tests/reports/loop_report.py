"""Report dicts for the page: today's keys only, and with the loop's keys of SPEC §9.

``loop_report()`` is a realistic eight weeks of a payments organisation (the people of
``rules/example.yaml``); the browser test renders it and its screenshot documents the page.
"""

from __future__ import annotations

import copy
from typing import Any

DEPLOY, SPEND, ELSE = "Routine production deploy", "Spend under 5k", "Everything else"
LONG_ID = "557058:f1e2d3c4-b5a6-4978-8a9b-0c1d2e3f4a5b-contractor-with-a-very-long-jira-id"


def figures(episodes: int, flagged: int, waiting: int, ended: int, after_intent: int,
            median: float | None, p90: float | None, total: float, open_total: float
            ) -> dict[str, Any]:
    return {"episodes": episodes, "flagged": flagged, "waiting_now": waiting, "ended": ended,
            "ended_after_intent": after_intent, "median_wait_hours": median,
            "p90_wait_hours": p90, "total_wait_hours": total, "open_total_hours": open_total,
            "open_max_hours": open_total or None, "open_median_hours": open_total or None,
            "open_p90_hours": open_total or None}


WEEKS = [("2026-W41", "2026-10-05"), ("2026-W42", "2026-10-12"), ("2026-W43", "2026-10-19"),
         ("2026-W44", "2026-10-26"), ("2026-W45", "2026-11-02"), ("2026-W46", "2026-11-09"),
         ("2026-W47", "2026-11-16"), ("2026-W48", "2026-11-23")]


def today_report() -> dict[str, Any]:
    """The report as ``bottleneck_report`` builds it today (no loop keys)."""
    dana = figures(11, 9, 2, 9, 3, 19.5, 41.0, 212.0, 58.0)
    carol = figures(6, 1, 1, 5, 1, 6.0, 22.0, 48.0, 9.0)
    alice = figures(4, 0, 0, 4, 2, 2.5, 5.0, 11.0, 0.0)
    stranger = figures(2, 0, 1, 1, 0, 30.0, 30.0, 30.0, 140.0)
    return {
        "window": {"since": "2026-10-05T00:00:00", "until": "2026-11-30T00:00:00",
                   "project": None, "team": None, "semantics": "overlap",
                   "trend_since": "2026-10-05T00:00:00", "generated_at": "2026-11-25T12:00:00"},
        "summary": {**figures(23, 10, 4, 19, 6, 9.0, 38.0, 301.0, 207.0), "intents": 9},
        "by_approver": [
            {"approver": "dana", "level": "director", **dana},
            {"approver": LONG_ID, "level": None, **stranger},
            {"approver": "carol", "level": "manager", **carol},
            {"approver": "alice", "level": "tech_lead", **alice},
        ],
        "by_level": [
            {"level": "tech_lead", **alice}, {"level": "manager", **carol},
            {"level": "director", **dana}, {"level": None, **stranger},
        ],
        "by_team": [
            {"team": "payments", **figures(21, 10, 3, 18, 6, 8.0, 36.0, 271.0, 67.0)},
            {"team": None, **stranger},
        ],
        "by_rule": [
            {"rule": DEPLOY, **figures(12, 9, 2, 10, 4, 18.0, 40.0, 190.0, 58.0)},
            {"rule": SPEND, **figures(5, 1, 1, 4, 1, 7.0, 20.0, 50.0, 9.0)},
            {"rule": None, **stranger},
            {"rule": ELSE, **figures(4, 0, 0, 4, 1, 2.5, 5.0, 11.0, 0.0)},
        ],
        "longest_waiting": [
            {"key": "OPS-7", "project": "OPS", "team": None, "status": "Awaiting Approval",
             "approver": LONG_ID, "level": None, "waiting_hours": 140.0,
             "suggested_decider": None, "rule": None, "flagged": False,
             "since": "2026-11-19T16:00:00", "url": "https://jira.example.com/browse/OPS-7"},
            {"key": "PAY-41", "project": "PAY", "team": "payments",
             "status": "Awaiting Approval", "approver": "dana", "level": "director",
             "waiting_hours": 38.0, "suggested_decider": "bob", "rule": DEPLOY,
             "flagged": True, "since": "2026-11-23T22:00:00",
             "url": "https://jira.example.com/browse/PAY-41"},
            {"key": "PAY-44", "project": "PAY", "team": "payments",
             "status": "Pending Sign-off", "approver": "dana", "level": "director",
             "waiting_hours": 20.0, "suggested_decider": "alice", "rule": DEPLOY,
             "flagged": True, "since": "2026-11-24T16:00:00",
             "url": "https://jira.example.com/browse/PAY-44"},
            {"key": "PAY-45", "project": "PAY", "team": "payments",
             "status": "Awaiting Approval", "approver": "carol", "level": "manager",
             "waiting_hours": 9.0, "suggested_decider": None, "rule": SPEND,
             "flagged": False, "since": "2026-11-25T03:00:00",
             "url": "https://jira.example.com/browse/PAY-45"},
        ],
        "trend": [
            {"week": week, "week_start": start, "episodes": episodes, "flagged": flagged,
             "ended": ended, "median_wait_hours": median, "p90_wait_hours": None}
            for (week, start), (episodes, flagged, ended, median) in zip(WEEKS, [
                (3, 2, 3, 22.0), (4, 3, 4, 20.0), (2, 1, 2, 14.0), (3, 1, 3, 9.0),
                (3, 1, 3, 7.5), (2, 0, 2, 4.0), (3, 1, 2, 3.0), (3, 1, 0, None)])
        ],
        "unmapped": [
            {"jira_id": LONG_ID, "name": "Sam Contractor", "episodes": 2,
             "last_seen": "2026-11-19T16:00:00"},
            {"jira_id": "ghost.holder", "name": None, "episodes": 1,
             "last_seen": "2026-11-12T09:00:00"},
        ],
    }


def loop_report() -> dict[str, Any]:
    """Today's report with every key SPEC §9 adds."""
    report = copy.deepcopy(today_report())
    purposes = {DEPLOY: "Engineers on call know whether a routine deploy is safe; the "
                        "pipeline's checks carry the risk.",
                SPEND: "Managers hold the budget."}
    for row in report["by_rule"]:
        row["purpose"] = purposes.get(row["rule"])
    report["loop"] = {"intents": 9, "acknowledged": 6, "objected": 1, "proceeded": 2,
                      "median_ack_hours": 1.5, "outcomes_to_learn": 1}
    report["delegation"] = [
        {"week": week, "decisions": taken, "at_or_below_information": lower,
         "share": lower / taken if taken else None}
        for (week, _), (taken, lower) in zip(WEEKS, [
            (3, 0), (4, 1), (2, 1), (3, 1), (3, 2), (2, 2), (2, 1), (0, 0)])
    ]
    report["competence_gaps"] = [
        {"rule": DEPLOY, "competence": "deploy", "team": "payments", "waits": 2,
         "nearest": "alice"},
    ]
    report["suggestions"] = [
        {"kind": "rubber_stamp", "rule": SPEND, "approver": "carol",
         "decided_at": "manager", "proposed_decided_at": "tech_lead",
         "evidence": ["Carol S approved 5 of 5 'Spend under 5k' waits, none refused",
                      "median approval 4 minutes after a median wait of 7 hours"],
         "diff": "--- rules.yaml\n+++ rules.yaml (suggested)\n@@ -47,3 +47,3 @@\n"
                 "   - name: Spend under 5k\n"
                 "     match: {labels: [purchase]}\n"
                 "-    decided_at: manager\n+    decided_at: tech_lead\n"},
    ]
    return report
