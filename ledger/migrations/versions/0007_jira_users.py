"""jira users; intents' author level and approver mark

``jira_users`` keeps the display name (and email, where Jira sends it) of every Jira
user seen, so people missing from the rules file are shown by name, and maps Data
Center user keys to usernames. ``intents`` records the author's level and whether
the author is one of the wait's approvers (their own "I intend to approve" is not
counted as an intent in the report).

Revision ID: 0007
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "jira_users",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("jira_id", sa.String(128), nullable=False),
        sa.Column("user_key", sa.String(128), nullable=True),
        sa.Column("display_name", sa.String(256), nullable=True),
        sa.Column("email", sa.String(256), nullable=True),
        sa.Column("seen_at", sa.DateTime(), nullable=False),
        sa.UniqueConstraint("jira_id"),
    )
    op.create_index("ix_jira_users_user_key", "jira_users", ["user_key"])
    with op.batch_alter_table("intents", schema=None) as batch_op:
        batch_op.add_column(sa.Column("author_level", sa.String(64), nullable=True))
        batch_op.add_column(sa.Column("by_approver", sa.Boolean(), nullable=False,
                                      server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table("intents", schema=None) as batch_op:
        batch_op.drop_column("by_approver")
        batch_op.drop_column("author_level")
    op.drop_index("ix_jira_users_user_key", table_name="jira_users")
    op.drop_table("jira_users")
