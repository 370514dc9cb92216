"""What the bottleneck report measures and over which waits, shared by both database paths.

``ledger.report`` assembles the report; ``ledger.report_sqlite`` and
``ledger.report_postgres`` compute its figures, each importing this module and never the
report itself. The definitions are in ``ledger.report``'s docstring.

Here: the report's filters (``Window``) and the waits they select (``window_conditions``,
``started_inside``, ``trend_since``); one row of figures (``Figures``, made only by
``Figures.from_seconds``) and the breakdowns they come in (``DIMENSIONS``, ``PICK``,
``Found``); the few SQL expressions that differ between the two databases
(``Dialect``); and the arithmetic both paths share (``percentile``, ``hours``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import date, datetime, time, timedelta
from typing import Any, TypeVar

from sqlalchemy import Select, case, extract, func, or_, select
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from ledger.models import ApprovalWait as W
from ledger.models import Intent, TicketRecord

#: The waits a report's rows are finally grouped by, finest first: every breakdown is a
#: roll-up of these four columns.
FINEST = (W.approver, W.approver_level, W.team, W.decision_rule)
#: Dimensions the report breaks figures down by: JSON key -> grouping columns.
DIMENSIONS: dict[str, tuple[Any, ...]] = {
    "summary": (),
    "by_approver": (W.approver, W.approver_level),
    "by_level": (W.approver_level,),
    "by_team": (W.team,),
    "by_rule": (W.decision_rule,),
}
#: Where each breakdown's key sits in a finest group's key (``FINEST``).
PICK: dict[str, tuple[int, ...]] = {
    name: tuple([f.key for f in FINEST].index(column.key) for column in columns)
    for name, columns in DIMENSIONS.items()
}
#: The name each grouping column gets in the JSON rows.
KEY_NAMES = {"approver": "approver", "approver_level": "level", "team": "team",
             "decision_rule": "rule"}
#: Without ``since``, the weekly trend covers this many weeks up to the window's last week.
TREND_WEEKS = 26
#: The fractions the report shows: median and p90.
FRACTIONS = (0.5, 0.9)


@dataclass(frozen=True)
class Window:
    """The report's filters; bounds are naive UTC, ``since`` inclusive, ``until`` exclusive."""

    since: datetime | None = None
    until: datetime | None = None
    project: str | None = None
    team: str | None = None

    def last_instant(self, now: datetime) -> datetime:
        """The latest moment the report looks at: ``now``, or just before ``until``."""
        return min(now, self.until - timedelta(microseconds=1)) if self.until else now

    def trend_since(self, now: datetime) -> datetime:
        """Where the weekly trend starts: ``since`` when given, otherwise the Monday that
        starts the ``TREND_WEEKS``-th week back from the window's last week."""
        if self.since is not None:
            return self.since
        last = monday_of(self.last_instant(now))
        return datetime.combine(last - timedelta(weeks=TREND_WEEKS - 1), time())


@dataclass(frozen=True)
class Figures:
    """One row of figures: for the whole window, or one approver, level, team, rule, week.

    Made by ``from_seconds`` only (``NO_FIGURES`` for a row without waits), so every
    row counts and converts the same way.
    """

    episodes: int
    flagged: int
    waiting_now: int
    ended: int
    ended_after_intent: int
    median_wait_hours: float | None
    p90_wait_hours: float | None
    total_wait_hours: float
    open_total_hours: float
    open_max_hours: float | None
    open_median_hours: float | None
    open_p90_hours: float | None

    @classmethod
    def from_seconds(
        cls,
        *,
        episodes: int,
        flagged: int,
        ended: int,
        ended_after_intent: int,
        total: float | None,
        waits: Sequence[float | None] | None = None,
        open_total: float | None = None,
        open_max: float | None = None,
        open_ages: Sequence[float | None] | None = None,
    ) -> Figures:
        """The one way a row is made: counts as counted, durations in seconds.

        ``waits`` and ``open_ages`` are the ended waits' and the open waits' values at
        ``FRACTIONS`` (None or empty when there are none); sums may be None for no rows.
        """
        median, p90 = waits or (None, None)
        open_median, open_p90 = open_ages or (None, None)
        return cls(
            episodes=episodes,
            flagged=flagged,
            waiting_now=episodes - ended,
            ended=ended,
            ended_after_intent=ended_after_intent,
            median_wait_hours=hours(median),
            p90_wait_hours=hours(p90),
            total_wait_hours=hours(total or 0.0) or 0.0,
            open_total_hours=hours(open_total or 0.0) or 0.0,
            open_max_hours=hours(open_max),
            open_median_hours=hours(open_median),
            open_p90_hours=hours(open_p90),
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


#: Each breakdown's rows: (key in ``DIMENSIONS`` order, figures).
Found = dict[str, list[tuple[tuple[Any, ...], Figures]]]


def percentile(
    values: Sequence[float] | Mapping[int, float], fraction: float, count: int | None = None
) -> float | None:
    """``percentile_cont``: interpolate at position ``fraction * (count - 1)``.

    ``values`` holds the sorted values by rank: all of them (a sorted list), or only
    the two ranks the position falls between (a mapping, with ``count`` given).
    """
    count = len(values) if count is None else count
    if count == 0:
        return None
    position = fraction * (count - 1)
    low, high = math.floor(position), math.ceil(position)
    return values[low] + (values[high] - values[low]) * (position - low)


def hours(seconds: float | None) -> float | None:
    return None if seconds is None else round(float(seconds) / 3600.0, 2)


#: The figures of a group without waits (an empty window, a week without any).
NO_FIGURES = Figures.from_seconds(episodes=0, flagged=0, ended=0, ended_after_intent=0,
                                  total=None)


def to_date(value: Any) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


def monday_of(value: Any) -> date:
    """The Monday that starts the ISO week of a date or datetime."""
    day = to_date(value)
    return day - timedelta(days=day.weekday())


class Dialect:
    """The few SQL expressions that differ between PostgreSQL and SQLite."""

    def __init__(self, session: Session) -> None:
        self.postgres = session.get_bind().dialect.name == "postgresql"

    def seconds(self, start: Any, end: Any) -> ColumnElement[Any]:
        if self.postgres:
            return extract("epoch", end - start)
        # julianday() carries fractions of a day; round to milliseconds to shed float noise
        return func.round((func.julianday(end) - func.julianday(start)) * 86400.0, 3)

    def wait(self) -> ColumnElement[Any]:
        """Seconds an ended episode waited (NULL while open): the stored ``wait_seconds``.

        Rows written around the ORM (bulk loads) may lack it; they fall back to the bounds.
        """
        ended = case((W.ended_at.is_not(None), self.seconds(W.started_at, W.ended_at)))
        return func.coalesce(W.wait_seconds, ended)

    def week_start(self, moment: Any = W.started_at) -> ColumnElement[Any]:
        """The Monday that starts the ISO week of ``moment`` (``started_at`` unless given)."""
        if self.postgres:
            return func.date_trunc("week", moment)
        return func.date(moment, "weekday 0", "-6 days")


def window_conditions(
    window: Window, started: ColumnElement[Any] | None = None
) -> list[ColumnElement[bool]]:
    """The WHERE clause for "episodes in the window" (overlap), see ``ledger.report``.

    ``started`` replaces ``started_at`` in the ``until`` bound (SQLite's index hint).
    """
    deleted = select(TicketRecord.id).where(TicketRecord.deleted.is_(True))
    conditions: list[ColumnElement[bool]] = [
        or_(W.ended_at.is_not(None), W.ticket_id.not_in(deleted))
    ]
    if window.until is not None:
        conditions.append((W.started_at if started is None else started) < window.until)
    if window.since is not None:
        conditions.append(or_(W.ended_at.is_(None), W.ended_at > window.since))
    if window.project:
        conditions.append(W.project == window.project)
    if window.team:
        conditions.append(W.team == window.team)
    return conditions


def started_inside(window: Window, since: datetime) -> list[ColumnElement[bool]]:
    """Episodes in the window that started at ``since`` or later (the trend's waits)."""
    return [*window_conditions(window), W.started_at >= since]


SelectT = TypeVar("SelectT", bound=Select)  # type: ignore[type-arg]


def delegated_intents(query: SelectT, window: Window) -> SelectT:
    """``query`` over the intents declared in ``[since, until)`` by someone other than the
    wait's approver (the approver's own "I intend to approve" delegates nothing), in the
    window's project and team: those of the intent's wait, else of its ticket."""
    query = query.outerjoin(W, Intent.wait_id == W.id).where(Intent.by_approver.is_(False))
    if window.since is not None:
        query = query.where(Intent.declared_at >= window.since)
    if window.until is not None:
        query = query.where(Intent.declared_at < window.until)
    if window.project:
        query = query.outerjoin(TicketRecord, TicketRecord.key == Intent.issue_key).where(
            func.coalesce(W.project, TicketRecord.project) == window.project)
    if window.team:
        query = query.where(W.team == window.team)
    return query
