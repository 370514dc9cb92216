"""indexes that spare the bottleneck report whole-table scans

The report's leader-leader sections read only the waits with an intent and those with
a competence gap: two partial indexes hold just those rows. The exact percentiles'
second pass reads the waits of a few duration ranges: an index on ``wait_seconds``
finds them. Writes: the partial indexes cost nothing for the many waits outside them;
``ix_waits_wait`` is one more entry per wait, updated when the wait ends (an update
that already touches ``ix_waits_open``). Every window excludes the open waits of deleted
tickets: ``ix_tickets_deleted`` holds just those tickets' ids (usually none), so the
exclusion reads an index of a few entries instead of the whole ``tickets`` table.

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    deleted = sa.text("deleted IS TRUE")
    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.create_index("ix_tickets_deleted", ["id"], unique=False,
                              postgresql_where=deleted, sqlite_where=deleted)
    with op.batch_alter_table("approval_waits", schema=None) as batch_op:
        batch_op.create_index("ix_waits_wait", ["wait_seconds"], unique=False)
        intent = sa.text("first_intent_at IS NOT NULL")
        batch_op.create_index("ix_waits_intent", ["first_intent_at"], unique=False,
                              postgresql_where=intent, sqlite_where=intent)
        gap = sa.text("competence_gap IS TRUE")
        batch_op.create_index("ix_waits_gap", ["started_at"], unique=False,
                              postgresql_where=gap, sqlite_where=gap)


def downgrade() -> None:
    with op.batch_alter_table("approval_waits", schema=None) as batch_op:
        batch_op.drop_index("ix_waits_gap")
        batch_op.drop_index("ix_waits_intent")
        batch_op.drop_index("ix_waits_wait")
    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.drop_index("ix_tickets_deleted")
