"""indexes that spare the bottleneck report whole-table scans

The report's leader-leader sections read only the waits with an intent and those with
a competence gap: two partial indexes hold just those rows. The exact percentiles'
second pass reads the waits of a few duration ranges: an index on ``wait_seconds``
finds them. Writes: the partial indexes cost nothing for the many waits outside them;
``ix_waits_wait`` is one more entry per wait, updated when the wait ends (an update
that already touches ``ix_waits_open``). Every window excludes the open waits of deleted
tickets: ``ix_tickets_deleted`` holds just those tickets' ids (usually none), so the
exclusion reads an index of a few entries instead of the whole ``tickets`` table.

PostgreSQL 14 and later only: statistics on two expressions the report groups by, the percentile
bucket of a wait (``ledger.percentiles.bucket``) and the week a wait ended
(``ledger.loop.delegation``). Without them the planner takes every wait for a group of
its own, and a group-per-wait hash table is too big to build in parallel; with them it
knows there are a few thousand groups and aggregates with parallel workers. ``ANALYZE``
(autovacuum) fills them; they cost nothing on writes. The expressions must stay those
the report writes (a test checks the planner uses them).

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


#: ``ledger.percentiles.bucket`` of ``ledger.figures.Dialect.wait``, as PostgreSQL parses it
BUCKET = ("floor(least(sqrt(greatest(coalesce(wait_seconds, (CASE WHEN ended_at IS NOT NULL "
          "THEN extract(epoch FROM ended_at - started_at) END)::float8), 0.0::float8)) "
          "* 0.1::float8, 1048575.0))::integer")
STATISTICS = {"st_waits_bucket": BUCKET, "st_waits_ended_week": "date_trunc('week', ended_at)"}


def upgrade() -> None:
    # each in the form the queries take on that database (SQLAlchemy writes ``IS 1`` on
    # SQLite), or SQLite's planner cannot tell that the query's rows are the index's
    deleted, deleted_sqlite = sa.text("deleted IS TRUE"), sa.text("deleted IS 1")
    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.create_index("ix_tickets_deleted", ["id"], unique=False,
                              postgresql_where=deleted, sqlite_where=deleted_sqlite)
    with op.batch_alter_table("approval_waits", schema=None) as batch_op:
        batch_op.create_index("ix_waits_wait", ["wait_seconds"], unique=False)
        intent = sa.text("first_intent_at IS NOT NULL")
        batch_op.create_index("ix_waits_intent", ["first_intent_at"], unique=False,
                              postgresql_where=intent, sqlite_where=intent)
        gap, gap_sqlite = sa.text("competence_gap IS TRUE"), sa.text("competence_gap IS 1")
        batch_op.create_index("ix_waits_gap", ["started_at"], unique=False,
                              postgresql_where=gap, sqlite_where=gap_sqlite)
    bind = op.get_bind()
    # expression statistics came with PostgreSQL 14; older servers plan without them
    if bind.dialect.name == "postgresql" and (bind.dialect.server_version_info or (0,)) >= (14,):
        for name, expression in STATISTICS.items():
            op.execute(f"CREATE STATISTICS {name} ON ({expression}) FROM approval_waits")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for name in STATISTICS:
            op.execute(f"DROP STATISTICS IF EXISTS {name}")
    with op.batch_alter_table("approval_waits", schema=None) as batch_op:
        batch_op.drop_index("ix_waits_gap")
        batch_op.drop_index("ix_waits_intent")
        batch_op.drop_index("ix_waits_wait")
    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.drop_index("ix_tickets_deleted")
