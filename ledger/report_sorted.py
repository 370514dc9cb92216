"""PostgreSQL's sort-based queries for the bottleneck report: one ``percentile_cont`` per group.

They compute every figure straightforwardly; ``ledger.report_postgres`` uses them for
windows too small for its two passes to pay, as the fallback should the passes disagree,
and for the open waits, and the test suite compares the passes with them.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import ARRAY, DateTime, Float, and_, case, func, literal, select, tuple_
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session

from ledger.figures import (DIMENSIONS, FINEST, FRACTIONS, Dialect, Figures, Found, Window,
                            started_inside, to_date, window_conditions)
from ledger.models import ApprovalWait as W

#: GROUPING(approver, approver_level, team, decision_rule) of each breakdown's rows:
#: a bit is set for every column the row is *not* grouped by.
GROUPING_BITS = {"summary": 0b1111, "by_approver": 0b0011, "by_level": 0b1011,
                  "by_team": 0b1101, "by_rule": 0b1110}


def _percentiles(expression: Any, label: str) -> Any:
    fractions = postgresql.array([literal(f) for f in FRACTIONS])
    return (func.percentile_cont(fractions, type_=ARRAY(Float))
            .within_group(expression).label(label))


def _ages(sql: Dialect, now: datetime) -> Any:
    return case((W.ended_at.is_(None), sql.seconds(W.started_at, literal(now, DateTime()))))


def aggregates(sql: Dialect, now: datetime) -> list[Any]:
    """GROUP BY aggregates with median and p90 of the waits and of the open waits' ages."""
    wait, age = sql.wait(), _ages(sql, now)
    return [
        func.count().label("episodes"),
        func.count(case((W.flagged.is_(True), 1))).label("flagged"),
        func.count(W.ended_at).label("ended"),
        func.count(case((and_(W.first_intent_at.is_not(None), W.ended_at.is_not(None)), 1)))
        .label("ended_after_intent"),
        func.sum(wait).label("total"),
        func.sum(age).label("open_total"),
        func.max(age).label("open_max"),
        _percentiles(wait, "percentiles"),  # one sort of the waits serves both fractions
        _percentiles(age, "open_percentiles"),
    ]


def _figures(row: Any) -> Figures:
    """Figures from one aggregate row of ``aggregates``."""
    return Figures.from_seconds(
        episodes=row.episodes, flagged=row.flagged, ended=row.ended,
        ended_after_intent=row.ended_after_intent, total=row.total, waits=row.percentiles,
        open_total=row.open_total, open_max=row.open_max, open_ages=row.open_percentiles,
    )


def grouping_sets(
    session: Session, window: Window, now: datetime, *extra: Any
) -> dict[str, list[tuple[tuple[Any, ...], Any]]]:
    """Every breakdown's ``aggregates`` rows (by key) in one GROUPING SETS query
    (``extra``: filters)."""
    sets = [tuple_(*keys) if keys else tuple_() for keys in DIMENSIONS.values()]
    query = (
        select(*FINEST, func.grouping(*FINEST).label("grouping"),
               *aggregates(Dialect(session), now))
        .where(*window_conditions(window), *extra)
        .group_by(func.grouping_sets(*sets))
    )
    position = {column.key: index for index, column in enumerate(FINEST)}
    by_bits = {bits: name for name, bits in GROUPING_BITS.items()}
    found: dict[str, list[tuple[tuple[Any, ...], Any]]] = {name: [] for name in DIMENSIONS}
    for row in session.execute(query):
        name = by_bits.get(row.grouping)
        if name is None or not row.episodes:
            continue
        key = tuple(row[position[column.key]] for column in DIMENSIONS[name])
        found[name].append((key, row))
    return found


def sorted_breakdowns(session: Session, window: Window, now: datetime) -> Found:
    """Every breakdown, each group's waits sorted by ``percentile_cont`` (the reference)."""
    return {name: [(key, _figures(row)) for key, row in rows]
            for name, rows in grouping_sets(session, window, now).items()}


def sorted_weekly(
    session: Session, window: Window, now: datetime, trend_since: datetime
) -> dict[date, Figures]:
    """Figures per ISO week (its Monday) of the waits in the window that started since
    ``trend_since``."""
    sql = Dialect(session)
    week = sql.week_start().label("week_start")
    query = (select(week, *aggregates(sql, now))
             .where(*started_inside(window, trend_since)).group_by(week))
    return {to_date(row.week_start): _figures(row) for row in session.execute(query)}
