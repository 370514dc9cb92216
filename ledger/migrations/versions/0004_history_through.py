"""history imported through

``tickets.history_through`` records up to which Jira ``updated`` time backfill has
imported a ticket's history, so a ticket that webhooks touched after installation still
gets its older history imported.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.add_column(sa.Column("history_through", sa.DateTime(), nullable=True))
    # what backfill imported so far was marked by updated_at alone
    op.execute(
        "UPDATE tickets SET history_through = updated_at WHERE id IN "
        "(SELECT ticket_id FROM approval_waits WHERE source = 'backfill')"
    )


def downgrade() -> None:
    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.drop_column("history_through")
