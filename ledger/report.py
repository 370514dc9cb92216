"""Queries behind the bottleneck report: who and which level holds up decisions, and how long.

Pure SQLAlchemy, no Flask: the web tier, the CLI and the tests call ``bottleneck_report``.
The figures and windows are defined in ``ledger.figures``; ``ledger.report_sqlite`` and
``ledger.report_postgres`` compute them; this module puts the report together.

Definitions (docs/report.md repeats them for managers):

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
  ``ledger.report_postgres``); SQLite computes the same formula in Python. Durations
  come from the stored ``wait_seconds`` (falling back to the bounds for rows written
  around the ORM).
* **Trend** groups the episodes in the window that *started* since the trend's start by
  the ISO week of ``started_at`` (Monday to Sunday, UTC), from the first week with one
  to the window's last week, gaps filled with empty weeks. The trend starts at
  ``since``; without it, at the Monday ``TREND_WEEKS - 1`` (25) weeks before the
  window's last week, so it spans at most 26 weeks; ``window.trend_since`` says where.
* **Intents**: ``Intent`` rows declared in ``[since, until)`` by someone other than the
  wait's approver; ``ended_after_intent``: episodes in the window with
  ``first_intent_at`` (the first such intent written while the episode was open) and
  ``ended_at`` both set.

All figures in hours are floats rounded to 2 decimals; times are naive UTC.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import JSON, Text, cast, func, literal_column, select, true
from sqlalchemy.orm import Session

from ledger import loop, report_postgres, report_sqlite
from ledger.figures import (
    DIMENSIONS,
    KEY_NAMES,
    NO_FIGURES,
    Dialect,
    Figures,
    Window,
    delegated_intents,
    hours,
    monday_of,
    window_conditions,
)
from ledger.models import ApprovalWait as W
from ledger.models import Intent
from ledger.people import display_names
from ledger.suggest import suggestions
from rules.model import Rules

#: how far back ``suggestions`` look when the window has no ``since`` (``rules suggest``'s default)
SUGGEST_SINCE = timedelta(days=180)


def iso_week(monday: date) -> str:
    year, week, _ = monday.isocalendar()
    return f"{year}-W{week:02d}"


def to_datetime(value: Any) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(str(value))


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
    """Weekly rows from the first week with a wait to the window's last week, gaps filled.

    ``found`` holds only the weeks since ``Window.trend_since``, so without ``since``
    the trend is at most ``TREND_WEEKS`` long.
    """
    if not found:
        return []
    last = max(max(found), monday_of(window.last_instant(now)))
    weeks = []
    monday = min(found)
    while monday <= last:
        figures = found.get(monday, NO_FIGURES)
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

    The waits are grouped by their list as written (a few distinct lists among many
    waits), and only those lists are unnested by the database; an id twice in one
    list counts its wait once.
    """
    postgres = Dialect(session).postgres
    written = cast(W.unmapped, Text)
    # most episodes have an empty list: a text comparison skips them before any JSON parsing
    grouped = (select(written.label("list"), func.count().label("episodes"),
                      func.max(W.started_at).label("last_seen"))
               .where(written != literal_column("'[]'"), *window_conditions(window))
               .group_by(written))
    # OFFSET 0 keeps the test on each list's JSON type below out of the scan: parsed once
    # per distinct list, not once per wait (ix_waits_unmapped finds the waits)
    lists = (grouped.offset(0) if postgres else grouped).subquery("lists")
    as_json = cast(lists.c.list, JSON) if postgres else lists.c.list
    unnest = func.json_array_elements_text if postgres else func.json_each
    element = unnest(as_json).table_valued("value")
    query = select(lists.c.list, element.c.value, lists.c.episodes, lists.c.last_seen).join(
        element, true())
    if postgres:  # unnesting a JSON scalar is an error there; SQLite yields it as one value
        query = query.where(func.json_typeof(as_json) == "array")
    counted: set[tuple[str, str]] = set()
    found: dict[str, tuple[int, Any]] = {}
    for row in session.execute(query):
        value = str(row.value) if row.value is not None else ""
        if not value or value in known_jira_ids or (row.list, value) in counted:
            continue
        counted.add((row.list, value))
        episodes, last = found.get(value, (0, row.last_seen))
        found[value] = (episodes + row.episodes, max(last, row.last_seen))
    names = display_names(session, list(found))
    return [{"jira_id": jira_id, "name": names.get(jira_id), "episodes": count,
             "last_seen": to_datetime(last).isoformat()}
            for jira_id, (count, last) in sorted(found.items(), key=lambda i: (-i[1][0], i[0]))]


def intents(session: Session, window: Window) -> int:
    """Intents declared in ``[since, until)`` by someone other than the wait's approver."""
    return int(session.scalar(delegated_intents(select(func.count(Intent.id)), window)) or 0)


def bottleneck_report(
    session: Session,
    window: Window,
    *,
    now: datetime,
    levels: Sequence[str] = (),
    known_jira_ids: Collection[str] = (),
    longest: int = 20,
    rules: Rules | None = None,
) -> dict[str, Any]:
    """The whole report as JSON-ready data (see the module docstring for each definition).

    Args:
        now: naive UTC "now", the end of open waits' current age.
        levels: the rules' levels, lowest first, to order ``by_level``.
        known_jira_ids: Jira ids the rules file maps now; they drop out of ``unmapped``.
        longest: how many open waits ``longest_waiting`` lists.
        rules: the rules now: purposes, levels and people for the loop (``ledger.loop``)
            and the ``suggestions`` (``ledger.suggest``).
    """
    if rules is not None and not levels:
        levels = rules.levels
    trend_since = window.trend_since(now)
    # PostgreSQL: two passes on large windows, percentile_cont on small ones; SQLite has no
    # percentile_cont: one narrow scan folded in Python
    backend = report_postgres if Dialect(session).postgres else report_sqlite
    found, weeks = backend.breakdowns(session, window, now, trend_since)
    sections: dict[str, Any] = {}
    for name in DIMENSIONS:
        if name == "summary":
            summary = found[name]
            sections[name] = (summary[0][1] if summary else NO_FIGURES).to_dict()
        else:
            sections[name] = _rows(name, found[name], levels)
    sections["summary"]["intents"] = intents(session, window)
    purposes = {rule.name: rule.purpose for rule in rules.decisions} if rules else {}
    for row in sections["by_rule"]:
        row["purpose"] = purposes.get(row["rule"])
    return {
        "window": {
            "since": window.since.isoformat() if window.since else None,
            "until": window.until.isoformat() if window.until else None,
            "project": window.project,
            "team": window.team,
            "semantics": "overlap",
            "trend_since": trend_since.isoformat(),
            "generated_at": now.isoformat(),
        },
        **sections,
        "longest_waiting": longest_waiting(session, window, now, longest),
        "trend": trend(weeks, window, now),
        "unmapped": unmapped(session, window, known_jira_ids),
        "loop": loop.loop(session, window, now, rules),
        "delegation": loop.delegation(session, window, rules),
        **loop.intents_by(session, window, rules),
        "competence_gaps": loop.competence_gaps(session, window),
        "suggestions": [s.to_dict() for s in suggestions(
            session, rules, window.since or now - SUGGEST_SINCE, now)] if rules else [],
    }
