"""What each database's planner needs from migration 0009 to read the report cheaply.

PostgreSQL: statistics on the expressions the report groups by. The planner uses a
statistics object only when the query's expression is the one it was made on. Should
``ledger.percentiles.bucket`` or the week of ``ended_at`` change without a new migration,
the planner would again take each wait for a group of its own and give up the parallel
aggregates: these tests then fail.

SQLite: the partial indexes of waits with a competence gap and of deleted tickets. Its
planner uses a partial index only when the query's condition is written as the index's
(SQLAlchemy writes ``IS 1``, not ``IS TRUE``); otherwise every report scans them whole.
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from ledger.db import make_engine, make_sessionmaker, upgrade
from ledger.figures import Dialect, Window, window_conditions
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


def _sqlite_plan(session: Session, query: Any) -> str:
    compiled = query.compile(dialect=session.get_bind().dialect,
                             compile_kwargs={"render_postcompile": True})
    rows = session.connection().exec_driver_sql(
        f"EXPLAIN QUERY PLAN {compiled}", tuple(compiled.params.values())).all()
    return " / ".join(row[-1] for row in rows)


def _gaps_query(window: Window = Window()) -> Any:
    """The competence gaps' query (``ledger.loop.competence_gaps``), its rows' ids."""
    return select(W.id).where(*window_conditions(window), W.competence_gap.is_(True))


@pytest.fixture()
def session(database_url: str) -> Any:
    url = Settings(database_url=database_url).effective_database_url
    engine = make_engine(url)
    if not url.startswith("postgresql"):
        upgrade(engine)
        with make_sessionmaker(engine)() as session:
            yield session
        engine.dispose()
        return
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


def test_the_planner_uses_0009_for_the_buckets_or_the_competence_gaps(session: Session) -> None:
    if Dialect(session).postgres:
        assert _estimated_groups(session, bucket(Dialect(session).wait())) <= 20
    else:
        assert "USING INDEX ix_waits_gap" in _sqlite_plan(session, _gaps_query())


def test_the_planner_uses_0009_for_the_weeks_or_the_deleted_tickets(session: Session) -> None:
    if Dialect(session).postgres:
        assert _estimated_groups(session, Dialect(session).week_start(W.ended_at)) <= 20
    else:  # the deleted tickets' exclusion, in every window's conditions
        assert "SCAN tickets USING" in _sqlite_plan(session, _gaps_query())


def test_without_the_statistics_it_would_not(session: Session) -> None:
    """The checks above mean something: the same queries without what 0009 made."""
    if Dialect(session).postgres:
        session.execute(text("DROP STATISTICS st_waits_bucket"))
        session.execute(text("ANALYZE approval_waits"))
        assert _estimated_groups(session, bucket(Dialect(session).wait())) >= WAITS / 2
    else:  # the index as first written, ``IS TRUE``: SQLite's planner passes it by
        session.execute(text("DROP INDEX ix_waits_gap"))
        session.execute(text("CREATE INDEX ix_waits_gap ON approval_waits (started_at) "
                             "WHERE competence_gap IS TRUE"))
        assert "ix_waits_gap" not in _sqlite_plan(session, _gaps_query())
    session.rollback()
