"""stored wait duration

``approval_waits.wait_seconds`` holds ``ended_at - started_at`` in seconds once a wait
has ended, so the bottleneck report sorts and sums a plain number instead of computing
an interval for every row. Existing ended waits are filled here; new ones when they end.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("approval_waits", schema=None) as batch_op:
        batch_op.add_column(sa.Column("wait_seconds", sa.Float(), nullable=True))
    if op.get_bind().dialect.name == "postgresql":
        seconds = "extract(epoch FROM ended_at - started_at)"
    else:  # julianday() carries fractions of a day: round to the millisecond
        seconds = "round((julianday(ended_at) - julianday(started_at)) * 86400.0, 3)"
    op.execute(
        f"UPDATE approval_waits SET wait_seconds = {seconds} WHERE ended_at IS NOT NULL"
    )


def downgrade() -> None:
    with op.batch_alter_table("approval_waits", schema=None) as batch_op:
        batch_op.drop_column("wait_seconds")
