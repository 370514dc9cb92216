"""SQLite's path for the bottleneck report: one narrow scan, every breakdown folded in Python.

SQLite has neither ``percentile_cont`` nor ``GROUPING SETS``. Five GROUP BY scans plus
sorted fetches of the durations took ~8 s over 300k waits; one scan that brings back
only short columns, with durations already computed by SQLite (no datetime parsing in
Python), takes about a second. The figures follow the same definitions as PostgreSQL's
(``ledger.report``'s docstring), which the test suite checks on both backends.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime
from typing import Any

from sqlalchemy import DateTime, and_, case, literal, select, true
from sqlalchemy.orm import Session

from ledger.models import ApprovalWait as W
from ledger.report import DIMENSIONS, Figures, Window, _Sql, hours, percentile, to_date
from ledger.report import window_conditions

Found = dict[str, list[tuple[tuple[Any, ...], Figures]]]


class _Tally:
    """Running figures for one group; waits (seconds) are kept for the percentiles."""

    __slots__ = ("episodes", "flagged", "ended", "after_intent", "total", "open_total",
                 "open_max", "waits")

    def __init__(self) -> None:
        self.episodes = self.flagged = self.ended = self.after_intent = 0
        self.total = self.open_total = 0.0
        self.open_max: float | None = None
        self.waits: list[float] = []

    def add(self, flagged: bool, wait: float | None, age: float | None, after: bool) -> None:
        self.episodes += 1
        self.flagged += bool(flagged)
        self.after_intent += bool(after)
        if wait is not None:
            self.ended += 1
            self.total += wait
            self.waits.append(wait)
        elif age is not None:
            self.open_total += age
            self.open_max = age if self.open_max is None else max(self.open_max, age)

    def figures(self) -> Figures:
        self.waits.sort()
        return Figures(
            episodes=self.episodes,
            flagged=self.flagged,
            waiting_now=self.episodes - self.ended,
            ended=self.ended,
            ended_after_intent=self.after_intent,
            median_wait_hours=hours(percentile(self.waits, 0.5)),
            p90_wait_hours=hours(percentile(self.waits, 0.9)),
            total_wait_hours=hours(self.total) or 0.0,
            open_total_hours=hours(self.open_total) or 0.0,
            open_max_hours=hours(self.open_max),
        )


def single_pass(
    session: Session, window: Window, now: datetime
) -> tuple[Found, dict[date, Figures]]:
    """Every breakdown of ``DIMENSIONS`` and the weekly figures, from one scan of the window."""
    sql = _Sql(session)
    ended = W.ended_at.is_not(None)
    query = select(
        W.approver,
        W.approver_level,
        W.team,
        W.decision_rule,
        W.flagged,
        case((ended, sql.seconds(W.started_at, W.ended_at))),
        case((~ended, sql.seconds(W.started_at, literal(now, DateTime())))),
        and_(W.first_intent_at.is_not(None), ended),
        sql.week_start(),
        (W.started_at >= window.since) if window.since is not None else true(),
    ).where(*window_conditions(window))
    groups: dict[str, dict[tuple[Any, ...], _Tally]] = {name: defaultdict(_Tally)
                                                       for name in DIMENSIONS}
    weeks: dict[Any, _Tally] = defaultdict(_Tally)
    for approver, level, team, rule, flagged, wait, age, after, week, inside in session.execute(
        query
    ):
        figures = (flagged, wait, age, after)
        groups["summary"][()].add(*figures)
        groups["by_approver"][(approver, level)].add(*figures)
        groups["by_level"][(level,)].add(*figures)
        groups["by_team"][(team,)].add(*figures)
        groups["by_rule"][(rule,)].add(*figures)
        if inside:
            weeks[week].add(*figures)
    found = {name: [(key, tally.figures()) for key, tally in tallies.items()]
             for name, tallies in groups.items()}
    return found, {to_date(week): tally.figures() for week, tally in weeks.items()}
