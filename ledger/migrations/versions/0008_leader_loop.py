"""the whole leader-leader loop: competence gaps, replies to intents, outcomes

``approval_waits`` gains the competence gap found when the wait began, when the ticket
reached its approver, the status it left approval into, the approver's reply to the
wait's intent (acknowledged / objected) and the outcome of a decision taken by intent
(reopened / reverted). ``tickets`` keeps the status category of its latest state, so a
move from a done-category status back to a not-done one is seen as a reopen.

Revision ID: 0008
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

WAIT_COLUMNS = (
    ("competence_gap", sa.Boolean(), False),
    ("competence", sa.String(length=128), None),
    ("competent", sa.String(length=128), None),
    ("reached_at", sa.DateTime(), None),
    ("end_status", sa.String(length=128), None),
    ("reply", sa.String(length=16), None),
    ("replied_at", sa.DateTime(), None),
    ("outcome", sa.String(length=16), None),
    ("outcome_at", sa.DateTime(), None),
)


def upgrade() -> None:
    with op.batch_alter_table("approval_waits", schema=None) as batch_op:
        for name, kind, default in WAIT_COLUMNS:
            batch_op.add_column(sa.Column(
                name, kind, nullable=default is None,
                server_default=sa.false() if default is False else None))
    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.add_column(sa.Column("status_category", sa.String(length=32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.drop_column("status_category")
    with op.batch_alter_table("approval_waits", schema=None) as batch_op:
        for name, _kind, _default in reversed(WAIT_COLUMNS):
            batch_op.drop_column(name)
