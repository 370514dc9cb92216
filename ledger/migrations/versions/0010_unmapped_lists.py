"""an index of the waits with someone unmapped (PostgreSQL)

The report's ``unmapped`` section counts waits per list of Jira ids the rules file did
not map. Most waits have an empty list, yet finding the others meant turning every
wait's list into text (a tenth of the report's time on 1,000,000 transitions). This
partial index holds only the waits whose list is not empty, by that list, so the
section reads them in the list's order and groups them without sorting. Writes: an
entry only for such a wait. SQLite's report path tallies in one scan and gains nothing.

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.create_index("ix_waits_unmapped", "approval_waits", [sa.text("(CAST(unmapped AS TEXT))")],
                        postgresql_where=sa.text("CAST(unmapped AS TEXT) <> '[]'"))


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.drop_index("ix_waits_unmapped", table_name="approval_waits")
