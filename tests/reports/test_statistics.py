"""PostgreSQL's statistics on the expressions the report groups by (migration 0009).

The planner uses a statistics object only when the query's expression is the one it was
made on. Should ``ledger.percentiles.bucket`` or the week of ``ended_at`` change without
a new migration, the planner would again take each wait for a group of its own and give
up the parallel aggregates: these tests then fail.
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from ledger.db import make_engine, make_sessionmaker
from ledger.figures import Dialect
from ledger.models import ApprovalWait as W
from ledger.percentiles import bucket
from service.settings import Settings

WAITS = 600


def _estimated_groups(session: Session, *keys: Any) -> float:
    query = select(*keys, func.count()).group_by(*keys)
    compiled = query.compile(dialect=session.get_bind().dialect,
                             compile_kwargs={"render_postcompile": True})
    plan = session.connection().exec_driver_sql(
        f"EXPLAIN (FORMAT JSON) {compiled}", compiled.params).scalar_one()
    return float(plan[0]["Plan"]["Plan Rows"])


@pytest.fixture()
def session(database_url: str) -> Any:
    url = Settings(database_url=database_url).effective_database_url
    if not url.startswith("postgresql"):
        pytest.skip("statistics on expressions are PostgreSQL's")
    engine = make_engine(url)
    with engine.begin() as connection:  # 600 ended waits: 4 durations, 3 weeks of ends
        connection.execute(text(
            "INSERT INTO tickets (id, key, project, summary, labels, components, fields, "
            "deleted) SELECT i, 'S-' || i, 'S', '', '[]', '[]', '{}', false "
            "FROM generate_series(1, :n) AS i"), {"n": WAITS})
        connection.execute(text(
            "INSERT INTO approval_waits (ticket_id, issue_key, project, started_at, ended_at, "
            "wait_seconds, flagged, unmapped, verdict, ticket_snapshot, source) "
            "SELECT i, 'S-' || i, 'S', timestamp '2026-11-02' + i * interval '50 minutes', "
            "timestamp '2026-11-02' + i * interval '50 minutes' + (i % 4 + 1) * interval '1 h', "
            "(i % 4 + 1) * 3600.0, false, '[]', '{}', '{}', 'webhook' "
            "FROM generate_series(1, :n) AS i"), {"n": WAITS})
        connection.execute(text("ANALYZE approval_waits"))
    with make_sessionmaker(engine)() as session:
        yield session
    engine.dispose()


def test_the_planner_knows_how_many_buckets_the_waits_fill(session: Session) -> None:
    assert _estimated_groups(session, bucket(Dialect(session).wait())) <= 20


def test_the_planner_knows_how_many_weeks_the_ends_fall_in(session: Session) -> None:
    assert _estimated_groups(session, Dialect(session).week_start(W.ended_at)) <= 20


def test_without_the_statistics_it_would_not(session: Session) -> None:
    """The check above means something: the same query without the statistics."""
    session.execute(text("DROP STATISTICS st_waits_bucket"))
    session.execute(text("ANALYZE approval_waits"))
    assert _estimated_groups(session, bucket(Dialect(session).wait())) >= WAITS / 2
    session.rollback()
