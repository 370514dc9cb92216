"""indexes for the bottleneck report

The report filters approval waits by project or team within a time window, lists open
waits oldest first, and counts intents in a window; these indexes serve those queries.

Revision ID: 0002
Revises: 0001
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("approval_waits", schema=None) as batch_op:
        batch_op.create_index("ix_waits_project_started", ["project", "started_at"], unique=False)
        batch_op.create_index("ix_waits_team_started", ["team", "started_at"], unique=False)
        batch_op.create_index("ix_waits_open_started", ["ended_at", "started_at"], unique=False)
    with op.batch_alter_table("intents", schema=None) as batch_op:
        batch_op.create_index("ix_intents_declared", ["declared_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("intents", schema=None) as batch_op:
        batch_op.drop_index("ix_intents_declared")
    with op.batch_alter_table("approval_waits", schema=None) as batch_op:
        batch_op.drop_index("ix_waits_open_started")
        batch_op.drop_index("ix_waits_team_started")
        batch_op.drop_index("ix_waits_project_started")
