"""The report's loop figures on random ledgers equal a plain Python computation.

Each seed builds a ledger of waits with and without intents, every kind of answer (or
none), outcomes, competence gaps, known and unknown levels, open waits and deleted
tickets, and intents by people of every level (and unknown ones); then it reads the
report for several windows on whichever database the suite runs on. The reference
below walks the same rows with the definitions of ``ledger.loop``.
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import insert

from ledger.figures import hours, percentile
from ledger.models import ApprovalWait, Intent, TicketRecord
from ledger.report import Window, bottleneck_report
from rules.loader import load_rules
from service.runtime import current_runtime
from service.settings import EXAMPLE_RULES
from tests.reports.test_exact import _in_window
from webhooks.extension import app_runtime

NOW = datetime(2026, 11, 25, 12, 0)
START = datetime(2026, 8, 3)
RULES = load_rules(EXAMPLE_RULES)
LEVELS = list(RULES.levels)
LEVEL_CHOICES = [*LEVELS, None, "intern"]
AUTHORS = ["bob", "alice", "carol", None, "ghost"]


def _ledger(rng: random.Random, size: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    waits, intents = [], []
    for number in range(size):
        started = START + timedelta(seconds=rng.randrange(0, 110 * 86_400))
        ended = None if rng.random() < 0.2 else started + timedelta(
            seconds=rng.randrange(60, 20 * 86_400))
        if ended is not None and ended > NOW:
            ended = None
        intent = None
        if rng.random() < 0.6:
            intent = started + timedelta(seconds=rng.randrange(0, 6 * 86_400))
        reply = replied = None
        if intent is not None and rng.random() < 0.6:
            reply = rng.choice(["acknowledged", "objected"])
            replied = intent + timedelta(seconds=rng.choice([0, 1800, 3600, rng.randrange(1, 900_000)]))
        outcome = rng.choice(["reopened", "reverted"]) if intent and rng.random() < 0.3 else None
        gap = rng.random() < 0.15
        waits.append({
            "ticket": number, "deleted": rng.random() < 0.05, "project": rng.choice("AB"),
            "team": rng.choice(["payments", "platform", None]),
            "approver": rng.choice(["dana", "carol", "alice", None]),
            "approver_level": rng.choice(LEVEL_CHOICES),
            "decision_level": rng.choice(LEVEL_CHOICES),
            "decision_rule": rng.choice(["deploy", "spend", None]),
            "started_at": started, "ended_at": ended, "first_intent_at": intent,
            "reply": reply, "replied_at": replied, "outcome": outcome,
            "competence_gap": gap, "competence": rng.choice(["deploy", "spend"]) if gap else None,
            "competent": rng.choice(["carol", "dana", None]) if gap else None,
        })
        if intent is not None:
            intents.append({"ticket": number, "author": rng.choice(AUTHORS), "at": intent})
    for _ in range(size // 5):  # intents on tickets without a wait
        intents.append({"ticket": None, "author": rng.choice(AUTHORS),
                        "at": START + timedelta(seconds=rng.randrange(0, 110 * 86_400))})
    return waits, intents


def _store(session: Any, waits: list[dict[str, Any]], intents: list[dict[str, Any]]) -> None:
    if not waits:
        return
    session.execute(insert(TicketRecord), [
        {"id": w["ticket"] + 1, "key": f"{w['project']}-{w['ticket']}", "project": w["project"],
         "summary": "", "labels": [], "components": [], "fields": {}, "deleted": w["deleted"]}
        for w in waits])
    session.execute(insert(ApprovalWait), [
        {"id": w["ticket"] + 1, "ticket_id": w["ticket"] + 1,
         "issue_key": f"{w['project']}-{w['ticket']}", "project": w["project"],
         "team": w["team"], "status": "Awaiting Approval", "started_at": w["started_at"],
         "ended_at": w["ended_at"], "approver": w["approver"],
         "approver_level": w["approver_level"], "decision_level": w["decision_level"],
         "decision_rule": w["decision_rule"], "flagged": False, "unmapped": [], "verdict": {},
         "ticket_snapshot": {}, "first_intent_at": w["first_intent_at"], "reply": w["reply"],
         "replied_at": w["replied_at"], "outcome": w["outcome"],
         "competence_gap": w["competence_gap"], "competence": w["competence"],
         "competent": w["competent"]} for w in waits])
    if intents:
        keys = {w["ticket"]: f"{w['project']}-{w['ticket']}" for w in waits}
        session.execute(insert(Intent), [
            {"wait_id": i["ticket"] + 1 if i["ticket"] is not None else None,
             "issue_key": keys.get(i["ticket"], "A-99999"), "jira_comment_id": str(n),
             "author": i["author"], "author_handle": i["author"], "body": "I intend to",
             "declared_at": i["at"]} for n, i in enumerate(intents)])


def _answer(w: dict[str, Any]) -> str:
    if w["reply"]:
        return str(w["reply"])
    day = (w["first_intent_at"] + timedelta(days=2)).date()  # remind_after: 2d
    while day.weekday() >= 5:
        day += timedelta(days=1)
    return "proceeded" if day < NOW.date() else "unanswered"


def _answers(group: list[dict[str, Any]]) -> dict[str, Any]:
    kinds = Counter(_answer(w) for w in group)
    acks = sorted((w["replied_at"] - w["first_intent_at"]).total_seconds()
                  for w in group if w["reply"] == "acknowledged")
    return {"intents": len(group), "acknowledged": kinds["acknowledged"],
            "objected": kinds["objected"], "proceeded": kinds["proceeded"],
            "unanswered": kinds["unanswered"], "median_ack_hours": hours(percentile(acks, 0.5))}


def _expected(waits: list[dict[str, Any]], intents: list[dict[str, Any]],
              window: Window) -> dict[str, Any]:
    inside = [w for w in waits if _in_window(w, window)]
    with_intent = [w for w in inside if w["first_intent_at"] is not None]
    decided = [w for w in with_intent if w["ended_at"] and w["first_intent_at"] <= w["ended_at"]]
    by_approver: dict[Any, list[dict[str, Any]]] = defaultdict(list)
    by_level: dict[Any, list[dict[str, Any]]] = defaultdict(list)
    for w in with_intent:
        by_approver[(w["approver"], w["approver_level"])].append(w)
        by_level[w["approver_level"]].append(w)
    outcomes = {}
    for name, column in (("rule", "decision_rule"), ("team", "team")):
        groups: dict[Any, list[dict[str, Any]]] = defaultdict(list)
        for w in decided:
            groups[w[column]].append(w)
        outcomes[name] = {key: (len(g), sum(1 for w in g if w["outcome"]),
                                sum(1 for w in g if w["outcome"] == "reopened"))
                          for key, g in groups.items()}
    weeks: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for w in inside:
        if w["ended_at"] is None:
            continue
        monday = (w["ended_at"] - timedelta(days=w["ended_at"].weekday())).date().isoformat()
        by_intent = w["first_intent_at"] is not None and w["first_intent_at"] <= w["ended_at"]
        right_level = (w["approver_level"] in LEVELS and w["decision_level"] in LEVELS and
                       LEVELS.index(w["approver_level"]) <= LEVELS.index(w["decision_level"]))
        weeks[monday][0] += 1
        weeks[monday][1] += by_intent or right_level
    teams = {w["ticket"]: w["team"] for w in waits}
    projects = {w["ticket"]: w["project"] for w in waits}
    declared = [i for i in intents
                if (window.since is None or i["at"] >= window.since)
                and (window.until is None or i["at"] < window.until)
                and (window.project is None or projects.get(i["ticket"]) == window.project)
                and (window.team is None or teams.get(i["ticket"]) == window.team)]
    gaps: Counter[tuple[Any, ...]] = Counter(
        (w["decision_rule"], w["competence"], w["team"]) for w in inside if w["competence_gap"])
    return {
        "loop": {**_answers(with_intent), "decisions_by_intent": len(decided),
                 "outcomes_to_learn": sum(1 for w in decided if w["outcome"])},
        "by_approver": {key: _answers(g) for key, g in by_approver.items()},
        "by_level": {key: _answers(g) for key, g in by_level.items()},
        "outcomes": outcomes,
        "weeks": {k: v for k, v in weeks.items()},
        "intents_by_level": Counter(RULES.people[i["author"]].level
                                    if i["author"] in RULES.people else None for i in declared),
        "intents_by_team": Counter(teams.get(i["ticket"]) for i in declared),
        "gaps": dict(gaps),
    }


def _got(report: dict[str, Any]) -> dict[str, Any]:
    loop = report["loop"]
    strip = ("by_approver", "by_level", "outcomes")
    return {
        "loop": {k: v for k, v in loop.items() if k not in strip},
        "by_approver": {(r["approver"], r["level"]): {k: v for k, v in r.items()
                                                     if k not in ("approver", "level")}
                        for r in loop["by_approver"]},
        "by_level": {r["level"]: {k: v for k, v in r.items() if k != "level"}
                     for r in loop["by_level"]},
        "outcomes": {name: {r[name]: (r["decisions_by_intent"], r["outcomes_to_learn"],
                                      r["reopened"]) for r in loop["outcomes"][f"by_{name}"]}
                     for name in ("rule", "team")},
        "weeks": {r["week_start"]: [r["decisions"], r["at_or_below_information"]]
                  for r in report["delegation"] if r["decisions"]},
        "intents_by_level": Counter({r["level"]: r["intents"] for r in report["intents_by_level"]}),
        "intents_by_team": Counter({r["team"]: r["intents"] for r in report["intents_by_team"]}),
        "gaps": {(r["rule"], r["competence"], r["team"]): r["episodes"]
                 for r in report["competence_gaps"]},
    }


@pytest.mark.parametrize("seed", range(6))
def test_loop_figures_match_the_reference(make_app: Callable[..., Flask], seed: int) -> None:
    rng = random.Random(1000 + seed)
    waits, intents = _ledger(rng, [0, 3, 30, 120, 400, 900][seed])
    app = make_app()
    windows = [Window(), Window(project="A"), Window(team="payments")]
    for _ in range(3):
        since = START + timedelta(hours=rng.randrange(0, 110 * 24))
        windows.append(Window(since=since, until=since + timedelta(hours=rng.randrange(1, 1200))))
    with app_runtime(app).activate():
        sessions = current_runtime().sessions
        with sessions.begin() as session:
            _store(session, waits, intents)
        for window in windows:
            with sessions() as session:
                report = bottleneck_report(session, window, now=NOW, rules=RULES)
            assert _got(report) == _expected(waits, intents, window), window
            assert sum(r["intents"] for r in report["intents_by_level"]) == \
                report["summary"]["intents"]
            shares = [r["share"] for r in report["delegation"]]
            assert all(s is None or 0 <= s <= 1 for s in shares)
