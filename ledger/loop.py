"""The report's leader-leader loop: answers to intents, outcomes, decisions moving down, gaps.

Every figure is over the episodes *in the window* (``ledger.figures.window_conditions``,
the overlap rule of ``ledger.report``), except the intents per level and team, which are
the intents *declared* in ``[since, until)`` like ``summary.intents``.

* ``loop.intents``: episodes in the window with an intent (``first_intent_at`` set).
  Of these, ``acknowledged`` / ``objected`` carry that answer (``ledger.answers``);
  ``proceeded`` have no answer and the intent's proceed-on date has passed: the date
  ``flag.remind_after`` (else 2 days) after the first intent, moved on to a weekday,
  is before today. This is decided when the report is read, so it needs no scheduler.
  ``unanswered`` are the rest (still within their proceed-on date).
* ``loop.median_ack_hours``: median hours from the first intent to its acknowledgement
  (the same ``percentile`` as the report's waits), over the window and per approver
  and level (``loop.by_approver``, ``loop.by_level``).
* ``loop.decisions_by_intent``: those episodes that ended at or after their intent;
  ``outcomes_to_learn``: those that came back (reopened or reverted within the rules'
  ``outcome_window``); ``loop.outcomes`` breaks both down per rule and per team, never
  per person.
* ``delegation``: per ISO week of ``ended_at``, the episodes in the window that ended
  (``decisions``) and how many were taken ``at_or_below_information``: by intent (ended
  at or after an intent), or approved by someone whose level is at or below the
  decision level. ``share`` is the ratio (4 decimals; None for a week without one).
* ``competence_gaps``: episodes recorded with a competence gap, per rule, competence and
  team, with the nearest competent people named in the comments.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ledger import tallies
from ledger.answers import ACKNOWLEDGED, OBJECTED, REOPENED, REVERTED
from ledger.figures import (
    Dialect,
    Window,
    delegated_intents,
    hours,
    percentile,
    to_date,
    window_conditions,
)
from ledger.models import ApprovalWait as W
from ledger.models import Intent, delegation_tallies
from rules.model import Rules, proceed_on_date


def _iso_week(monday: date) -> str:
    year, week, _ = monday.isocalendar()
    return f"{year}-W{week:02d}"


def answer_of(reply: str | None, first_intent_at: datetime, now: datetime,
              remind_after: timedelta | None) -> str:
    """acknowledged / objected / proceeded / unanswered, for an episode with an intent."""
    if reply in (ACKNOWLEDGED, OBJECTED):
        return reply
    if proceed_on_date(first_intent_at, remind_after) < now.date():
        return "proceeded"
    return "unanswered"


def _answers(rows: Iterable[Any], now: datetime, remind_after: timedelta | None) -> dict[str, Any]:
    counts: Counter[str] = Counter()
    ack_seconds: list[float] = []
    for row in rows:
        counts[answer_of(row.reply, row.first_intent_at, now, remind_after)] += 1
        if row.reply == ACKNOWLEDGED and row.replied_at is not None:
            ack_seconds.append((row.replied_at - row.first_intent_at).total_seconds())
    return {"intents": sum(counts.values()), "acknowledged": counts[ACKNOWLEDGED],
            "objected": counts[OBJECTED], "proceeded": counts["proceeded"],
            "unanswered": counts["unanswered"],
            "median_ack_hours": hours(percentile(sorted(ack_seconds), 0.5))}


def _outcomes(rows: list[Any], name: str) -> list[dict[str, Any]]:
    groups: dict[Any, list[Any]] = defaultdict(list)
    for row in rows:
        groups[getattr(row, "decision_rule" if name == "rule" else "team")].append(row)
    out = [{name: key, "decisions_by_intent": len(group),
            "outcomes_to_learn": sum(1 for r in group if r.outcome),
            "reopened": sum(1 for r in group if r.outcome == REOPENED),
            "reverted": sum(1 for r in group if r.outcome == REVERTED)}
           for key, group in groups.items()]
    return sorted(out, key=lambda r: (-r["outcomes_to_learn"], -r["decisions_by_intent"],
                                      str(r[name] or "")))


def _by_decider(rows: list[Any], now: datetime, remind_after: timedelta | None,
                levels: Sequence[str]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    approvers: dict[tuple[Any, Any], list[Any]] = defaultdict(list)
    by_level: dict[Any, list[Any]] = defaultdict(list)
    for row in rows:
        approvers[(row.approver, row.approver_level)].append(row)
        by_level[row.approver_level].append(row)
    rank = {level: index for index, level in enumerate(levels)}
    first = sorted(({"approver": a, "level": lv, **_answers(g, now, remind_after)}
                    for (a, lv), g in approvers.items()),
                   key=lambda r: (-r["intents"], str(r["approver"] or "")))
    second = sorted(({"level": lv, **_answers(g, now, remind_after)} for lv, g in by_level.items()),
                    key=lambda r: (rank.get(r["level"], len(rank)), str(r["level"] or "")))
    return first, second


def loop(session: Session, window: Window, now: datetime, rules: Rules | None) -> dict[str, Any]:
    """``loop``: the answers to intents and the outcomes of decisions taken by intent."""
    remind_after = rules.flag.remind_after if rules else None
    levels = rules.levels if rules else ()
    rows: list[Any] = list(session.execute(
        select(W.approver, W.approver_level, W.team, W.decision_rule, W.first_intent_at,
               W.ended_at, W.reply, W.replied_at, W.outcome)
        .where(*window_conditions(window), W.first_intent_at.is_not(None))
    ))
    decided = [r for r in rows if r.ended_at is not None and r.first_intent_at <= r.ended_at]
    by_approver, by_level = _by_decider(rows, now, remind_after, levels)
    return {
        **_answers(rows, now, remind_after),
        "decisions_by_intent": len(decided),
        "outcomes_to_learn": sum(1 for r in decided if r.outcome),
        "by_approver": by_approver,
        "by_level": by_level,
        "outcomes": {"by_rule": _outcomes(decided, "rule"), "by_team": _outcomes(decided, "team")},
    }


def at_or_below_information(by_intent: bool, approver_level: str | None,
                            decision_level: str | None, levels: Sequence[str]) -> bool:
    """A decision taken by intent, or by an approver at or below the decision level."""
    if by_intent:
        return True
    if approver_level in levels and decision_level in levels:
        return levels.index(approver_level) <= levels.index(decision_level)  # type: ignore[arg-type]
    return False


def delegation(session: Session, window: Window, rules: Rules | None) -> list[dict[str, Any]]:
    """Per ISO week of the end: decisions taken, how many at or below the information level.

    Grouped by the week itself (a few thousand groups, not one per wait), the intents
    counted rather than grouped by: PostgreSQL's statistics on the week of ``ended_at``
    (migration 0009) then let it aggregate in parallel. Over all history with no filter
    PostgreSQL reads the counts kept as waits are written (``ledger.tallies``).
    """
    levels = rules.levels if rules else ()
    week = Dialect(session).week_start(W.ended_at)
    by_intent = func.count().filter(W.first_intent_at.is_not(None),
                                    W.first_intent_at <= W.ended_at)
    query = (tallies.decisions() if tallies.usable(session, window, delegation_tallies) else
             select(week.label("week"), W.approver_level, W.decision_level,
                    func.count().label("n"), by_intent.label("by_intent"))
             .where(*window_conditions(window), W.ended_at.is_not(None))
             .group_by(week, W.approver_level, W.decision_level))
    weeks: dict[date, list[int]] = {}
    for row in session.execute(query):
        counts = weeks.setdefault(to_date(row.week), [0, 0, 0])
        counts[0] += row.n
        lower = at_or_below_information(False, row.approver_level, row.decision_level, levels)
        counts[1] += row.n if lower else row.by_intent
        counts[2] += row.by_intent
    out = []
    monday = min(weeks, default=None)
    while monday is not None and monday <= max(weeks):
        decisions, below, intent = weeks.get(monday, [0, 0, 0])
        out.append({"week": _iso_week(monday), "week_start": monday.isoformat(),
                    "decisions": decisions, "at_or_below_information": below,
                    "by_intent": intent,
                    "share": round(below / decisions, 4) if decisions else None})
        monday += timedelta(weeks=1)
    return out


def intents_by(session: Session, window: Window, rules: Rules | None) -> dict[str, list[Any]]:
    """Intents declared in ``[since, until)`` per author level (from the rules) and per team."""
    query = delegated_intents(select(Intent.author_handle, W.team), window)
    people = rules.people if rules else {}
    levels: Counter[str | None] = Counter()
    teams: Counter[str | None] = Counter()
    for handle, team in session.execute(query):
        person = people.get(handle) if handle is not None else None
        levels[person.level if person else None] += 1
        teams[team] += 1
    rank: dict[str | None, int] = {
        level: index for index, level in enumerate(rules.levels if rules else ())}
    return {
        "intents_by_level": [{"level": lv, "intents": n} for lv, n in sorted(
            levels.items(), key=lambda item: (rank.get(item[0], len(rank)), str(item[0] or "")))],
        "intents_by_team": [{"team": t, "intents": n} for t, n in sorted(
            teams.items(), key=lambda item: (-item[1], str(item[0] or "")))],
    }


def competence_gaps(session: Session, window: Window) -> list[dict[str, Any]]:
    """Episodes whose rule requires a competence nobody at the information level holds."""
    rows = session.execute(
        select(W.decision_rule, W.competence, W.team, W.competent, W.issue_key, W.started_at)
        .where(*window_conditions(window), W.competence_gap.is_(True))
        .order_by(W.started_at.desc(), W.id.desc())
    ).all()
    groups: dict[tuple[Any, ...], list[Any]] = defaultdict(list)
    for row in rows:
        groups[(row.decision_rule, row.competence, row.team)].append(row)
    out = [{"rule": rule, "competence": competence, "team": team, "episodes": len(group),
            "nearest_competent": sorted({r.competent for r in group if r.competent}),
            "keys": [r.issue_key for r in group[:5]],
            "last_seen": group[0].started_at.isoformat()}
           for (rule, competence, team), group in groups.items()]
    return sorted(out, key=lambda r: (-r["episodes"], str(r["rule"] or ""), str(r["team"] or "")))
