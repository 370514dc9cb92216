"""Queries behind the bottleneck report: who and which level holds up decisions, and how long.

Pure SQLAlchemy, no Flask: the web tier, the CLI and the tests call ``bottleneck_report``.

Definitions (the README's report section repeats them for managers):

* **Window** ``[since, until)``: an episode (one ``ApprovalWait``) is *in the window* when
  it overlaps it: it started before ``until`` and it had not ended by ``since``
  (``started_at < until AND (ended_at IS NULL OR ended_at > since)``). A wait that began
  before ``since`` and ended inside the window counts; so does every wait still open
  that began before ``until``. Either bound may be omitted (open-ended).
* **Wait** of an ended episode = ``ended_at - started_at``, the whole episode, not clipped
  to the window. ``median_wait_hours``, ``p90_wait_hours`` and ``total_wait_hours`` are
  over *ended* episodes only, so an open wait never drags a median with a made-up end.
* **Open waits** are counted in ``waiting_now``; their current age (``now - started_at``)
  feeds the separate ``open_total_hours``, ``open_max_hours``, ``open_median_hours`` and
  ``open_p90_hours`` (the same percentile as the ended waits', over the open ones'
  ages). Open waits of tickets deleted in Jira never end, so they are left out.
* **Median / p90** are PostgreSQL's ``percentile_cont``: linear interpolation between the
  closest ranks (position ``p * (n - 1)`` in the sorted waits). On large windows
  PostgreSQL finds those ranks in two passes instead of sorting (``ledger.percentiles``,
  ``ledger.report_postgres``); SQLite computes the same formula in Python. Durations come from the stored ``wait_seconds`` (falling back to
  the bounds for rows written around the ORM).
* **Trend** groups the episodes that *started* inside the window by the ISO week of
  ``started_at`` (Monday to Sunday, UTC), gaps filled with empty weeks.
* **Intents**: ``Intent`` rows declared in ``[since, until)`` by someone other than the
  wait's approver; ``ended_after_intent``: episodes in the window with
  ``first_intent_at`` (the first such intent written while the episode was open) and
  ``ended_at`` both set.

All figures in hours are floats rounded to 2 decimals; times are naive UTC.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Text, case, cast, extract, func, or_, select, true
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from ledger.models import ApprovalWait as W
from ledger.models import Intent, TicketRecord
from ledger.people import display_names

#: Dimensions the report breaks figures down by: JSON key -> grouping columns.
DIMENSIONS: dict[str, tuple[Any, ...]] = {
    "summary": (),
    "by_approver": (W.approver, W.approver_level),
    "by_level": (W.approver_level,),
    "by_team": (W.team,),
    "by_rule": (W.decision_rule,),
}
#: The name each grouping column gets in the JSON rows.
KEY_NAMES = {"approver": "approver", "approver_level": "level", "team": "team",
             "decision_rule": "rule"}


@dataclass(frozen=True)
class Window:
    """The report's filters; bounds are naive UTC, ``since`` inclusive, ``until`` exclusive."""

    since: datetime | None = None
    until: datetime | None = None
    project: str | None = None
    team: str | None = None


@dataclass
class Figures:
    """One row of figures: for the whole window, or one approver, level, team, rule."""

    episodes: int = 0
    flagged: int = 0
    waiting_now: int = 0
    ended: int = 0
    ended_after_intent: int = 0
    median_wait_hours: float | None = None
    p90_wait_hours: float | None = None
    total_wait_hours: float = 0.0
    open_total_hours: float = 0.0
    open_max_hours: float | None = None
    open_median_hours: float | None = None
    open_p90_hours: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def percentile(ordered: Sequence[float], fraction: float) -> float | None:
    """``percentile_cont`` over already sorted values: interpolate at ``fraction * (n - 1)``."""
    if not ordered:
        return None
    position = fraction * (len(ordered) - 1)
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def hours(seconds: float | None) -> float | None:
    return None if seconds is None else round(float(seconds) / 3600.0, 2)


def iso_week(monday: date) -> str:
    year, week, _ = monday.isocalendar()
    return f"{year}-W{week:02d}"


class _Sql:
    """The few expressions that differ between PostgreSQL and SQLite."""

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

    def week_start(self) -> ColumnElement[Any]:
        """The Monday that starts the ISO week of ``started_at``."""
        if self.postgres:
            return func.date_trunc("week", W.started_at)
        return func.date(W.started_at, "weekday 0", "-6 days")


def to_date(value: Any) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


def to_datetime(value: Any) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(str(value))


def window_conditions(
    window: Window, started: ColumnElement[Any] | None = None
) -> list[ColumnElement[bool]]:
    """The WHERE clause for "episodes in the window" (overlap), see the module docstring.

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


def started_inside(window: Window) -> list[ColumnElement[bool]]:
    conditions = window_conditions(window)
    if window.since is not None:
        conditions.append(W.started_at >= window.since)
    return conditions


def _rows(
    name: str, found: Iterable[tuple[tuple[Any, ...], Figures]], level_order: Sequence[str]
) -> list[dict[str, Any]]:
    names = [KEY_NAMES[column.key] for column in DIMENSIONS[name]]
    rows = [{**dict(zip(names, key)), **figures.to_dict()} for key, figures in found]
    if name == "by_level":
        rank = {level: index for index, level in enumerate(level_order)}
        rows.sort(key=lambda r: (rank.get(r["level"], len(rank)), r["level"] is None,
                                 r["level"] or ""))
    else:  # the biggest hold-up first: hours waited, ended or still open
        rows.sort(key=lambda r: (-(r["total_wait_hours"] + r["open_total_hours"]),
                                 tuple(str(r[n] or "") for n in names)))
    return rows


def trend(found: dict[date, Figures], window: Window, now: datetime) -> list[dict[str, Any]]:
    """Weekly rows from the first week with a wait to the window's last week, gaps filled."""
    if not found:
        return []
    end = min(now, window.until - timedelta(microseconds=1)) if window.until else now
    last = max(max(found), end.date() - timedelta(days=end.weekday()))
    weeks = []
    monday = min(found)
    while monday <= last:
        figures = found.get(monday, Figures())
        weeks.append({"week": iso_week(monday), "week_start": monday.isoformat(),
                      "episodes": figures.episodes, "flagged": figures.flagged,
                      "ended": figures.ended, "median_wait_hours": figures.median_wait_hours,
                      "p90_wait_hours": figures.p90_wait_hours})
        monday += timedelta(weeks=1)
    return weeks


def longest_waiting(
    session: Session, window: Window, now: datetime, limit: int = 20
) -> list[dict[str, Any]]:
    """Open waits in the window, longest first (served by the (ended_at, started_at) index)."""
    query = (
        select(W.issue_key, W.project, W.team, W.status, W.approver, W.approver_level,
               W.decider, W.decision_rule, W.flagged, W.started_at)
        .where(*window_conditions(window), W.ended_at.is_(None))
        .order_by(W.started_at, W.id)
        .limit(limit)
    )
    return [
        {"key": row.issue_key, "project": row.project, "team": row.team, "status": row.status,
         "approver": row.approver, "level": row.approver_level,
         "waiting_hours": hours((now - row.started_at).total_seconds()),
         "suggested_decider": row.decider, "rule": row.decision_rule,
         "flagged": row.flagged, "since": row.started_at.isoformat()}
        for row in session.execute(query)
    ]


def unmapped(
    session: Session, window: Window, known_jira_ids: Collection[str] = ()
) -> list[dict[str, Any]]:
    """Jira ids recorded as missing from the rules file (and still missing), with counts.

    The JSON lists are unnested and counted by the database: one row per Jira id comes back.
    """
    postgres = _Sql(session).postgres
    unnest = func.json_array_elements_text if postgres else func.json_each
    element = unnest(W.unmapped).table_valued("value")
    # most episodes have an empty list: a text comparison skips them before any JSON parsing
    conditions = [cast(W.unmapped, Text) != "[]", *window_conditions(window)]
    if postgres:  # unnesting a JSON scalar is an error there; SQLite yields it as one value
        conditions.append(func.json_typeof(W.unmapped) == "array")
    query = (
        select(element.c.value, func.count(W.id.distinct()).label("episodes"),
               func.max(W.started_at).label("last_seen"))
        .select_from(W)
        .join(element, true())
        .where(*conditions)
        .group_by(element.c.value)
    )
    rows = [(str(row.value), row.episodes, row.last_seen) for row in session.execute(query)
            if row.value and str(row.value) not in known_jira_ids]
    names = display_names(session, [row[0] for row in rows])
    return [{"jira_id": jira_id, "name": names.get(jira_id), "episodes": count,
             "last_seen": to_datetime(last).isoformat()}
            for jira_id, count, last in sorted(rows, key=lambda item: (-item[1], item[0]))]


def intents(session: Session, window: Window) -> int:
    """Intents declared in ``[since, until)`` by someone other than the wait's approver.

    Project and team come from their episode.
    """
    query = (select(func.count(Intent.id)).outerjoin(W, Intent.wait_id == W.id)
             .where(Intent.by_approver.is_(False)))  # the approver's own is not delegated
    if window.since is not None:
        query = query.where(Intent.declared_at >= window.since)
    if window.until is not None:
        query = query.where(Intent.declared_at < window.until)
    if window.project:
        query = query.outerjoin(TicketRecord, TicketRecord.key == Intent.issue_key).where(
            func.coalesce(W.project, TicketRecord.project) == window.project
        )
    if window.team:
        query = query.where(W.team == window.team)
    return int(session.scalar(query) or 0)


def bottleneck_report(
    session: Session,
    window: Window,
    *,
    now: datetime,
    levels: Sequence[str] = (),
    known_jira_ids: Collection[str] = (),
    longest: int = 20,
) -> dict[str, Any]:
    """The whole report as JSON-ready data (see the module docstring for each definition).

    Args:
        now: naive UTC "now", the end of open waits' current age.
        levels: the rules' levels, lowest first, to order ``by_level``.
        known_jira_ids: Jira ids the rules file maps now; they drop out of ``unmapped``.
        longest: how many open waits ``longest_waiting`` lists.
    """
    if _Sql(session).postgres:
        from ledger import report_postgres as pg

        pg.tune_postgres(session)
        fast = pg.two_pass(session, window, now)
        if fast is not None:
            found, weeks = fast
        else:  # cannot happen within one snapshot; the straightforward queries are exact
            found = pg.sorted_breakdowns(session, window, now)
            weeks = pg.sorted_weekly(session, window, now)
    else:  # no percentile_cont: one narrow scan folded in Python (see ledger.report_sqlite)
        from ledger.report_sqlite import single_pass

        found, weeks = single_pass(session, window, now)
    sections: dict[str, Any] = {}
    for name in DIMENSIONS:
        if name == "summary":
            summary = found[name]
            sections[name] = (summary[0][1] if summary else Figures()).to_dict()
        else:
            sections[name] = _rows(name, found[name], levels)
    sections["summary"]["intents"] = intents(session, window)
    return {
        "window": {
            "since": window.since.isoformat() if window.since else None,
            "until": window.until.isoformat() if window.until else None,
            "project": window.project,
            "team": window.team,
            "semantics": "overlap",
            "generated_at": now.isoformat(),
        },
        **sections,
        "longest_waiting": longest_waiting(session, window, now, longest),
        "trend": trend(weeks, window, now),
        "unmapped": unmapped(session, window, known_jira_ids),
    }
