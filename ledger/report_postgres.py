"""PostgreSQL's path for the bottleneck report: every breakdown without sorting every group.

Pass 1 (``_count``) is one statement: two hash aggregates, run side by side by parallel
workers, count the waits in the window per finest group (approver, level, team, rule)
and bucket (``ledger.percentiles``), and the waits that started inside it per week and
bucket; the database rolls the finest groups up to every breakdown, keeps the running
counts and returns each group's figures and the buckets that hold its wanted ranks.
Pass 2 (``_pick``) reads the waits of those buckets (a few percent of the window) and
ranks them here, one sort per wanted cell. The open waits (a few percent) have their own small query, their ages sorted by
``percentile_cont``.

The sort-based queries (``ledger.report_sorted``: one ``percentile_cont`` per group)
compute the same figures straightforwardly; they serve windows too small for the passes
to pay, the fallback should the passes disagree, and the reference the test suite
compares with. ``breakdowns`` chooses between them.
Windows and figures come from ``ledger.figures``.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Date,
    DateTime,
    Float,
    and_,
    case,
    cast,
    func,
    literal,
    null,
    or_,
    select,
    text,
    tuple_,
    type_coerce,
    union_all,
)
from sqlalchemy.orm import Session

from ledger.figures import (
    DIMENSIONS,
    FINEST,
    FRACTIONS,
    PICK,
    Dialect,
    Figures,
    Found,
    Window,
    started_inside,
    to_date,
    window_conditions,
)
from ledger import tallies
from ledger.models import ApprovalWait as W
from ledger.percentiles import Histogram, bucket, wait_ranges
from ledger.report_sorted import GROUPING_BITS, grouping_sets, sorted_breakdowns, sorted_weekly

log = logging.getLogger("leaderleader.report")

#: Memory for the sort-based queries: the waits of years of history sort in memory.
REPORT_WORK_MEM = "128MB"
def tune_postgres(session: Session) -> None:
    """For this transaction: one snapshot for every query, sorts in memory, no JIT.

    Must run before the transaction's first query (the report opens its own session).
    """
    session.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ"))
    session.execute(text(f"SET LOCAL work_mem = '{REPORT_WORK_MEM}'"))
    session.execute(text("SET LOCAL jit = off"))
    session.execute(text("SET LOCAL random_page_cost = 1.1"))


class _Group:
    """Plain figures of one breakdown group or week, and where its wanted ranks lie."""

    __slots__ = ("episodes", "flagged", "ended", "after_intent", "total", "waits")

    def __init__(self, row: Any) -> None:
        self.episodes, self.flagged, self.ended = row.episodes, row.flagged, row.ended
        self.after_intent, self.total = row.after_intent, row.total
        self.waits = Histogram(count=row.n)

    def figures(self, open_waits: Any = None) -> Figures:
        """With the group's ``aggregates`` row over its open waits, if it has any."""
        return Figures.from_seconds(
            episodes=self.episodes, flagged=self.flagged, ended=self.ended,
            ended_after_intent=self.after_intent, total=self.total,
            waits=self.waits.percentiles(),
            open_total=open_waits.open_total if open_waits else None,
            open_max=open_waits.open_max if open_waits else None,
            open_ages=open_waits.open_percentiles if open_waits else None,
        )


_SUMS = ("episodes", "flagged", "ended", "after_intent", "waits")


def _counts(sql: Dialect, *groups: Any, weeks: bool = False) -> list[Any]:
    """Per-cell counts, in ``_SUMS`` order then ``total``; weeks need no intents or total."""
    wait = sql.wait()
    after_intent = func.count().filter(W.first_intent_at.is_not(None), W.ended_at.is_not(None))
    return [
        *groups,
        bucket(wait).label("bucket"),
        func.count().label("episodes"),
        func.count().filter(W.flagged.is_(True)).label("flagged"),
        func.count(W.ended_at).label("ended"),
        (cast(literal(0), BigInteger) if weeks else after_intent).label("after_intent"),
        func.count(wait).label("waits"),
        (cast(null(), Float) if weeks else func.sum(wait)).label("total"),
    ]


def _count(
    session: Session, window: Window, trend_since: datetime
) -> dict[tuple[Any, ...], _Group]:
    """Pass 1: every group's plain figures, and the cells that hold its wanted ranks.

    Two hash aggregates (the finest groups per bucket, read from the tallies kept as
    waits are written when the window is all history; the weeks per bucket); the roll-up
    to each breakdown, the running counts and the choice of cells stay in the database.
    """
    sql = Dialect(session)
    finest = (tallies.finest_counts() if tallies.usable(session, window) else
              select(*_counts(sql, *FINEST)).where(*window_conditions(window))
              .group_by(*FINEST, "bucket")).subquery("finest")
    f = finest.c
    keys = (f.approver, f.approver_level, f.team, f.decision_rule)
    sets = [tuple_(*(keys[p] for p in positions), f.bucket) for positions in PICK.values()]
    rollup = (
        select(func.grouping(*keys).label("grouping"), *keys,
               cast(null(), DateTime()).label("week"), f.bucket,
               *(cast(func.sum(f[name]), BigInteger).label(name) for name in _SUMS),
               func.sum(f.total).label("total"))
        .group_by(func.grouping_sets(*sets))
    )
    week = type_coerce(sql.week_start(), DateTime()).label("week")
    weekly = (select(literal(-1).label("grouping"),
                     *(cast(null(), c.type).label(c.key) for c in FINEST), week,
                     *_counts(sql, weeks=True))
              .where(*started_inside(window, trend_since)).group_by(week, "bucket"))
    cells = union_all(rollup, weekly).subquery("cells")
    c = cells.c
    group = [c.grouping, c.approver, c.approver_level, c.team, c.decision_rule, c.week]
    running = func.sum(c.waits).over(partition_by=group, order_by=c.bucket, rows=(None, -1))
    windowed = select(
        *group, c.bucket, c.waits,
        func.coalesce(running, 0).label("before"),
        func.row_number().over(partition_by=group).label("first"),
        *(cast(func.sum(c[name]).over(partition_by=group), BigInteger)
          .label("n" if name == "waits" else name) for name in _SUMS),
        func.sum(c.total).over(partition_by=group).label("total"),
    ).subquery("windowed")
    w = windowed.c
    positions = [literal(f, Float) * cast(w.n - 1, Float) for f in FRACTIONS]
    holds = [and_(cast(w.before, Float) <= rank, rank < cast(w.before + w.waits, Float))
             for position in positions for rank in (func.floor(position), func.ceil(position))]
    query = select(windowed).where(or_(w.first == 1, and_(w.bucket.is_not(None), or_(*holds))))
    by_bits = {bits: name for name, bits in GROUPING_BITS.items()}
    groups: dict[tuple[Any, ...], _Group] = {}
    for row in session.execute(query):
        if row.grouping == -1:
            key: tuple[Any, ...] = ("week", row.week)
        else:
            kind = by_bits[row.grouping]
            finest_key = (row.approver, row.approver_level, row.team, row.decision_rule)
            key = (kind, *(finest_key[p] for p in PICK[kind]))
        found = groups.get(key)
        if found is None:
            found = groups[key] = _Group(row)
        if row.bucket is not None and row.waits:
            found.waits.cells[row.bucket] = (row.before, row.waits)
    return groups


#: A week's Monday and a bucket share one integer: days since ``_MONDAY`` times this, plus
#: the bucket.
_SHIFT = 2**20
_MONDAY = date(2000, 1, 3)


def _week_code(week: datetime, number: int) -> int:
    """A week's Monday and a bucket as one integer (days since a Monday, then the bucket)."""
    return (to_date(week) - _MONDAY).days * _SHIFT + number


def _stored_in(numbers: set[int]) -> Any:
    """The waits whose stored duration may lie in these buckets, or that have none stored
    (the ended ones fall back to their bounds): a range scan of ``ix_waits_wait``."""
    ranges = []
    for low, high in wait_ranges(numbers):
        bounds = [c for c in (low is not None and W.wait_seconds >= low,
                              high is not None and W.wait_seconds <= high) if c is not False]
        ranges.append(and_(*bounds) if bounds else W.wait_seconds.is_not(None))
    return or_(W.wait_seconds.is_(None), *ranges)


def _pick(
    session: Session, window: Window, trend_since: datetime,
    groups: dict[tuple[Any, ...], _Group],
) -> bool:
    """Pass 2: fill every histogram's ``picked`` waits; False if any rank did not come back.

    ``groups`` is keyed by (kind, *key): the finest-key positions of ``PICK`` per
    breakdown, or (week Monday,) for ``"week"``.
    """
    wanted: dict[tuple[Any, ...], tuple[_Group, int]] = {}
    buckets: dict[str, set[int]] = defaultdict(set)
    week_codes: set[int] = set()
    for (kind, *key), group in groups.items():
        cells = group.waits.wanted()
        if cells is None:
            return False
        for number, rank, inside in cells:
            wanted[(kind, *key, number, inside)] = (group, rank)
            buckets[kind].add(number)
            if kind == "week":
                week_codes.add(_week_code(key[0], number))
    if not wanted:
        return True
    sql = Dialect(session)
    wait = sql.wait()
    in_bucket = bucket(wait)
    is_inside = W.started_at >= trend_since
    week = case((is_inside, type_coerce(sql.week_start(), DateTime())))
    days = cast(type_coerce(sql.week_start(), DateTime()), Date) - _MONDAY
    code = case((is_inside, cast(days, BigInteger) * _SHIFT + in_bucket))
    combined = set().union(*(buckets[kind] for kind in PICK))
    candidates = (
        select(*FINEST, week.label("week"), in_bucket.label("bucket"), wait.label("wait"))
        .where(*window_conditions(window), wait.is_not(None),
               _stored_in(combined | buckets["week"]),
               or_(in_bucket.in_(sorted(combined)),
                   and_(in_bucket.in_(sorted(buckets["week"])), code.in_(sorted(week_codes)))))
    )
    # the few waits of the wanted cells, ranked here: gathered per finest group and bucket
    # (one dictionary step a wait), those lists joined per wanted cell, each cell sorted once
    by_finest: dict[tuple[Any, ...], list[float]] = defaultdict(list)
    by_week: dict[tuple[Any, ...], list[float]] = defaultdict(list)
    for approver, level, team, rule, week_of, number, value in (
            session.connection().execute(candidates)):
        by_finest[(approver, level, team, rule, number)].append(value)
        if week_of is not None:
            by_week[("week", week_of, number)].append(value)
    places: dict[tuple[Any, ...], list[tuple[int, _Group, int]]] = defaultdict(list)
    for place, (group, rank) in wanted.items():
        places[place[:-1]].append((int(place[-1]), group, rank))
    ranked: dict[tuple[Any, ...], list[float]] = {key: by_week[key] for key in places
                                                  if key[0] == "week" and key in by_week}
    for cell_key, values in by_finest.items():
        for kind, positions in PICK.items():
            within = (kind, *(cell_key[p] for p in positions), cell_key[-1])
            if within in places:
                ranked.setdefault(within, []).extend(values)
    found = 0
    for cell, values in ranked.items():
        values.sort()
        for inside, group, rank in places[cell]:
            if inside < len(values):
                group.waits.picked[rank] = values[inside]
                found += 1
    return found == len(wanted)


#: Below this many waits in the window (the planner's estimate) the sorts are quicker
#: than the two passes: a 3-month window of the benchmark holds ~45,000.
TWO_PASS_FROM = 100_000


def estimated_waits(session: Session, window: Window) -> float:
    """The planner's estimate of the waits in the window (EXPLAIN: nothing is read)."""
    query = select(W.id).where(*window_conditions(window))
    compiled = query.compile(dialect=session.get_bind().dialect,
                             compile_kwargs={"render_postcompile": True})
    plan = session.connection().exec_driver_sql(
        f"EXPLAIN (FORMAT JSON) {compiled}", compiled.params).scalar_one()
    return float(plan[0]["Plan"]["Plan Rows"])


def two_pass(
    session: Session, window: Window, now: datetime, trend_since: datetime
) -> tuple[Found, dict[date, Figures]] | None:
    """Every breakdown and the weekly figures, exact, without sorting every group.

    None when the window is small enough for the sorts (``TWO_PASS_FROM``), or when
    pass 2 did not find every rank pass 1 counted (it cannot when both read one
    snapshot); the caller then uses the sort-based queries.
    """
    if estimated_waits(session, window) < TWO_PASS_FROM:
        return None
    groups = _count(session, window, trend_since)
    if not _pick(session, window, trend_since, groups):
        log.warning("report.percentiles.mismatch")
        return None
    opened = grouping_sets(session, window, now, W.ended_at.is_(None))
    open_by_key = {(name, *key): figures for name, rows in opened.items() for key, figures in rows}
    found: Found = {name: [] for name in DIMENSIONS}
    weeks: dict[date, Figures] = {}
    for (kind, *key), group in groups.items():
        if kind == "week":
            weeks[to_date(key[0])] = group.figures()
        elif group.episodes:
            found[kind].append((tuple(key), group.figures(open_by_key.get((kind, *key)))))
    return found, weeks


def breakdowns(
    session: Session, window: Window, now: datetime, trend_since: datetime
) -> tuple[Found, dict[date, Figures]]:
    """Every breakdown and the weekly figures of the waits that started since
    ``trend_since``: the two passes on large windows, the sorts on small ones (or should
    the passes disagree, which they cannot within one snapshot)."""
    tune_postgres(session)
    fast = two_pass(session, window, now, trend_since)
    if fast is not None:
        return fast
    return (sorted_breakdowns(session, window, now),
            sorted_weekly(session, window, now, trend_since))
