"""The report's counts of all history, kept as waits are written (PostgreSQL only).

Triggers (migration 0011) append, for each change to a wait that matters to the
report's counts, the wait's old contribution with a minus sign and its new one:

* ``wait_tallies``: per finest group (approver, level, team, rule) and percentile
  bucket, what pass 1 of the report counts by grouping every wait in the window;
* ``delegation_tallies``: per ISO week of a decision's end, approver level and
  decision level, what ``delegation`` counts by grouping every ended wait.

The report reads their sums for a window over all history with no filter (``usable``)
instead of grouping half a million waits; every other window, and SQLite, groups the
waits themselves. ``fold`` sums the appended rows into one row per group; the
scheduler runs it every ``FOLD_SECONDS``, so the report reads a few thousand rows plus
the latest changes.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import BigInteger, Float, Table, case, cast, func, select, text
from sqlalchemy.orm import Session

from ledger.figures import Window
from ledger.models import delegation_tallies as D
from ledger.models import wait_tallies as T

#: how often the scheduler folds the appended rows
FOLD_SECONDS = 300
#: from this many rows on the report groups the waits instead (no fold for a long while)
READ_AT_MOST = 200_000

_WAIT_KEYS = ("approver", "approver_level", "team", "decision_rule", "bucket")
_WAIT_SUMS = ("episodes", "flagged", "ended", "after_intent", "waits", "total")
_DECISION_KEYS = ("week", "approver_level", "decision_level")
_DECISION_SUMS = ("decisions", "by_intent")


def _fold(table: str, keys: tuple[str, ...], sums: tuple[str, ...]) -> Any:
    """One statement: delete every row, insert their sums per group (all-zero groups go)."""
    columns = ", ".join(keys + sums)
    return text(
        f"WITH gone AS (DELETE FROM {table} RETURNING {columns}) "
        f"INSERT INTO {table} ({columns}) "
        f"SELECT {', '.join(keys)}, {', '.join(f'sum({name})' for name in sums)} "
        f"FROM gone GROUP BY {', '.join(keys)} "
        f"HAVING {' OR '.join(f'sum({name}) <> 0' for name in sums)}")


_FOLDS = (_fold("wait_tallies", _WAIT_KEYS, _WAIT_SUMS),
          _fold("delegation_tallies", _DECISION_KEYS, _DECISION_SUMS))


def fold(session: Session) -> None:
    """Sum the rows into one per group; the caller commits.

    A report reading meanwhile sees the rows before or after, which add up the same;
    rows appended by transactions still open are left for the next fold.
    """
    if session.get_bind().dialect.name == "postgresql":
        for statement in _FOLDS:
            session.execute(statement)


def usable(session: Session, window: Window, table: Table = T) -> bool:
    """Can the report read ``table``'s sums? PostgreSQL, all history, no filter, and not
    too many rows to add up."""
    if session.get_bind().dialect.name != "postgresql":
        return False
    if window.since or window.until or window.project or window.team:
        return False
    rows = session.scalar(select(func.count()).select_from(
        select(table).limit(READ_AT_MOST).subquery()))
    return bool(rows is not None and rows < READ_AT_MOST)


def finest_counts() -> Any:
    """Pass 1's counts per finest group and bucket, as its grouping of the waits gives them."""
    summed = {name: cast(func.sum(T.c[name]), BigInteger) for name in _WAIT_SUMS[:-1]}
    return (
        select(*(T.c[name] for name in _WAIT_KEYS),
               *(value.label(name) for name, value in summed.items()),
               case((summed["waits"] > 0, cast(func.sum(T.c.total), Float))).label("total"))
        .group_by(*(T.c[name] for name in _WAIT_KEYS))
        .having(summed["episodes"] != 0)
    )


def decisions() -> Any:
    """``delegation``'s rows: week, approver_level, decision_level, n, by_intent."""
    return (
        select(D.c.week, D.c.approver_level, D.c.decision_level,
               cast(func.sum(D.c.decisions), BigInteger).label("n"),
               cast(func.sum(D.c.by_intent), BigInteger).label("by_intent"))
        .group_by(D.c.week, D.c.approver_level, D.c.decision_level)
        .having(func.sum(D.c.decisions) != 0)
    )
