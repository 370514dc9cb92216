"""SQLite's path for the bottleneck report: one narrow scan, every breakdown rolled up in Python.

SQLite has neither ``percentile_cont`` nor ``GROUPING SETS``. One scan of the window
brings back short columns and the stored ``wait_seconds``; each row updates the tally of
its finest group (approver, level, team, rule, and week when it started inside the
window), a few thousand groups in all. Every breakdown and the weekly trend are roll-ups
of those tallies; the durations of a group are sorted once and merged as sorted runs.
The figures follow the same definitions as PostgreSQL's (``ledger.report``'s docstring),
which the test suite checks on both backends; windows and figures come from
``ledger.figures``.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime
from typing import Any

from sqlalchemy import DateTime, Integer, and_, case, cast, literal, literal_column, select
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from ledger.figures import FINEST, FRACTIONS, PICK, Dialect, Figures, Found, Window
from ledger.figures import percentile, to_date, window_conditions
from ledger.models import ApprovalWait as W


class _Tally:
    """Running figures for one group; waits and open ages (seconds) kept for percentiles."""

    __slots__ = ("episodes", "flagged", "ended", "after_intent", "total", "open_total",
                 "open_max", "waits", "ages")

    def __init__(self) -> None:
        self.episodes = self.flagged = self.ended = self.after_intent = 0
        self.total = self.open_total = 0.0
        self.open_max: float | None = None
        self.waits: list[float] = []
        self.ages: list[float] = []

    def merge(self, other: _Tally) -> None:
        """Fold in a finer group's figures; its waits join as one more run to merge."""
        self.episodes += other.episodes
        self.flagged += other.flagged
        self.ended += other.ended
        self.after_intent += other.after_intent
        self.total += other.total
        self.open_total += other.open_total
        if other.open_max is not None:
            self.open_max = max(other.open_max, self.open_max or other.open_max)
        self.waits += other.waits
        self.ages += other.ages

    def figures(self) -> Figures:
        self.waits.sort()  # sorted runs end to end: Timsort merges them instead of sorting
        self.ages.sort()
        return Figures.from_seconds(
            episodes=self.episodes, flagged=self.flagged, ended=self.ended,
            ended_after_intent=self.after_intent, total=self.total,
            waits=[percentile(self.waits, f) for f in FRACTIONS],
            open_total=self.open_total, open_max=self.open_max,
            open_ages=[percentile(self.ages, f) for f in FRACTIONS],
        )


def _unindexed_start(window: Window) -> ColumnElement[Any] | None:
    """With a ``since``, keep SQLite off the ``started_at`` index for the ``until`` bound.

    ``started_at < until`` matches nearly all of history, so walking that index is slower
    than a scan; ``+started_at`` leaves the (ended_at, started_at) index to find the few
    waits that ended after ``since`` or are still open.
    """
    if window.since is None:
        return None
    return literal_column(f"+{W.__tablename__}.started_at", DateTime())


def _finest(
    session: Session, window: Window, now: datetime, trend_since: datetime
) -> dict[tuple[Any, ...], _Tally]:
    """Tallies per (approver, level, team, rule, week if started since ``trend_since``):
    one scan, one dictionary look-up a row; every breakdown is a roll-up of these few
    thousand groups."""
    sql = Dialect(session)
    ended = W.ended_at.is_not(None)
    query = select(
        *FINEST,
        case((W.started_at >= trend_since, sql.week_start())),
        cast(W.flagged, Integer),
        sql.wait(),
        case((~ended, sql.seconds(W.started_at, literal(now, DateTime())))),
        cast(and_(W.first_intent_at.is_not(None), ended), Integer),
    ).where(*window_conditions(window, _unindexed_start(window)))
    tallies: dict[tuple[Any, ...], _Tally] = {}
    for *key, flagged, wait, age, after in session.connection().execute(query):
        group = tuple(key)
        tally = tallies.get(group)
        if tally is None:
            tally = tallies[group] = _Tally()
        tally.episodes += 1
        tally.flagged += flagged
        tally.after_intent += after
        if wait is not None:
            tally.ended += 1
            tally.total += wait
            tally.waits.append(wait)
        elif age is not None:
            tally.open_total += age
            tally.ages.append(age)
            if tally.open_max is None or age > tally.open_max:
                tally.open_max = age
    for tally in tallies.values():
        tally.waits.sort()
        tally.ages.sort()
    return tallies


def breakdowns(
    session: Session, window: Window, now: datetime, trend_since: datetime
) -> tuple[Found, dict[date, Figures]]:
    """Every breakdown of ``DIMENSIONS`` and the weekly figures of the waits that started
    since ``trend_since``, from one scan of the window."""
    finest = _finest(session, window, now, trend_since)
    found: Found = {}
    for name, positions in PICK.items():
        groups: dict[tuple[Any, ...], _Tally] = defaultdict(_Tally)
        for key, tally in finest.items():
            groups[tuple(key[p] for p in positions)].merge(tally)
        found[name] = [(key, tally.figures()) for key, tally in groups.items()]
    weeks: dict[Any, _Tally] = defaultdict(_Tally)
    for key, tally in finest.items():
        if key[4] is not None:
            weeks[key[4]].merge(tally)
    return found, {to_date(week): tally.figures() for week, tally in weeks.items()}
