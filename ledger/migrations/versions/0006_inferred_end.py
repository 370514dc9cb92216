"""inferred ends and transition keys

``approval_waits.end_inferred`` marks a wait whose end was not seen as a transition but
inferred from evidence (a later delivery or Jira itself showing the ticket elsewhere);
``end_evidence`` says what showed it. ``deliveries.transition_key`` is the natural key of
the transition a delivery reports (the changelog id; for a workflow post-function, the
issue, the transition and its time), so the same transition sent twice under two
delivery ids is applied once.

Revision ID: 0006
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("approval_waits", schema=None) as batch_op:
        batch_op.add_column(sa.Column("end_inferred", sa.Boolean(), nullable=False,
                                      server_default=sa.false()))
        batch_op.add_column(sa.Column("end_evidence", sa.String(length=255), nullable=True))
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.add_column(sa.Column("transition_key", sa.String(length=200), nullable=True))
        batch_op.create_index("ix_deliveries_transition_key", ["transition_key"], unique=True)


def downgrade() -> None:
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.drop_index("ix_deliveries_transition_key")
        batch_op.drop_column("transition_key")
    with op.batch_alter_table("approval_waits", schema=None) as batch_op:
        batch_op.drop_column("end_evidence")
        batch_op.drop_column("end_inferred")
