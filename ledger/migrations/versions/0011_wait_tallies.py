"""the report's counts of all history, kept as waits are written (PostgreSQL)

Grouping every wait of years of history by approver, level, team, rule and percentile
bucket was half the report's time, grouping the ended ones by week for ``delegation``
a fifth. ``wait_tallies`` and ``delegation_tallies`` keep those counts instead: a
trigger on ``approval_waits`` appends, for every change that matters to them, the
wait's old contribution with a minus sign and its new one; a trigger on ``tickets``
does the same for the open waits of a ticket deleted or restored (an open wait of a
deleted ticket is left out of every window). Only appends: two workers never wait for
each other's rows, so no lock order to keep. The scheduler folds the rows now and then
(``ledger.tallies.fold``), so the report reads a few thousand rows, not every wait.

A wait's contribution is computed exactly as the report's scan computes it: its
duration (the stored ``wait_seconds``, else its bounds), the bucket of that duration
(migration 0009's ``BUCKET``), counted when it ended or its ticket is not deleted.
A decision (an ended wait) counts in ``delegation`` per ISO week of its end, approver
level and decision level, and as taken by intent when an intent came before its end.
Existing waits are counted once here. SQLite keeps the tables empty: its report scans.

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

COLUMNS = ("approver, approver_level, team, decision_rule, bucket, episodes, flagged, ended, "
           "after_intent, waits, total")

#: one wait's contribution, times ``sign``: ``wait`` and ``bucket`` as the report computes
#: them. (Plain arguments, not the table's row type, which would tie the table to it.)
CONTRIBUTION = """
CREATE OR REPLACE FUNCTION leaderleader_wait_tally(
    varchar, varchar, varchar, varchar,  -- approver, approver_level, team, decision_rule
    boolean, timestamp, timestamp, float8,  -- flagged, started_at, ended_at, wait_seconds
    timestamp, integer)  -- first_intent_at, sign
RETURNS TABLE (approver varchar, approver_level varchar, team varchar, decision_rule varchar,
               bucket integer, episodes bigint, flagged bigint, ended bigint,
               after_intent bigint, waits bigint, total float8)
LANGUAGE sql IMMUTABLE AS $$
  SELECT $1, $2, $3, $4,
         floor(least(sqrt(greatest(d.wait, 0.0::float8)) * 0.1::float8, 1048575.0))::integer,
         $10::bigint,
         CASE WHEN $5 IS TRUE THEN $10 ELSE 0 END::bigint,
         CASE WHEN $7 IS NOT NULL THEN $10 ELSE 0 END::bigint,
         CASE WHEN $9 IS NOT NULL AND $7 IS NOT NULL THEN $10 ELSE 0 END::bigint,
         CASE WHEN d.wait IS NOT NULL THEN $10 ELSE 0 END::bigint,
         $10 * coalesce(d.wait, 0.0::float8)
  FROM (SELECT coalesce($8, (CASE WHEN $7 IS NOT NULL
               THEN extract(epoch FROM $7 - $6) END)::float8) AS wait) AS d
$$
"""

#: is a wait in every window now (ended, or its ticket not deleted)?
COUNTED = """
CREATE OR REPLACE FUNCTION leaderleader_wait_counted(timestamp, integer)  -- ended_at, ticket
RETURNS boolean LANGUAGE sql STABLE AS $$
  SELECT $1 IS NOT NULL OR NOT EXISTS (
    SELECT 1 FROM tickets AS t WHERE t.id = $2 AND t.deleted IS TRUE)
$$
"""


def _tally(row: str, sign: str) -> str:
    """The call of ``leaderleader_wait_tally`` for a row (OLD, NEW or an alias)."""
    return (f"leaderleader_wait_tally({row}.approver, {row}.approver_level, {row}.team, "
            f"{row}.decision_rule, {row}.flagged, {row}.started_at, {row}.ended_at, "
            f"{row}.wait_seconds, {row}.first_intent_at, {sign})")


DELEGATION_COLUMNS = "week, approver_level, decision_level, decisions, by_intent"


def _decision(row: str, sign: str) -> str:
    """The values of a row's contribution to ``delegation_tallies`` (an ended wait's)."""
    return (f"date_trunc('week', {row}.ended_at), {row}.approver_level, {row}.decision_level, "
            f"{sign}, CASE WHEN {row}.first_intent_at <= {row}.ended_at THEN {sign} ELSE 0 END")


#: the columns a wait's contributions depend on: a change to none of them appends nothing
COUNTED_COLUMNS = ("approver", "approver_level", "team", "decision_rule", "decision_level",
                   "flagged", "started_at", "ended_at", "wait_seconds", "first_intent_at")


def _contributions(row: str, sign: str) -> str:
    """Append a row's (OLD or NEW) contributions to both tallies, those that count."""
    return f"""
    IF leaderleader_wait_counted({row}.ended_at, {row}.ticket_id) THEN
      INSERT INTO wait_tallies ({COLUMNS}) SELECT * FROM {_tally(row, sign)};
    END IF;
    IF {row}.ended_at IS NOT NULL THEN
      INSERT INTO delegation_tallies ({DELEGATION_COLUMNS}) VALUES ({_decision(row, sign)});
    END IF;"""


def _values(row: str) -> str:
    return "(" + ", ".join(f"{row}.{column}" for column in COUNTED_COLUMNS) + ")"


ON_WAITS = f"""
CREATE OR REPLACE FUNCTION leaderleader_tally_waits() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'UPDATE' AND {_values("OLD")} IS NOT DISTINCT FROM {_values("NEW")} THEN
    RETURN NULL;  -- nothing the counts depend on changed
  END IF;
  IF TG_OP <> 'INSERT' THEN{_contributions("OLD", "-1")}
  END IF;
  IF TG_OP <> 'DELETE' THEN{_contributions("NEW", "1")}
  END IF;
  RETURN NULL;
END $$
"""

ON_TICKETS = f"""
CREATE OR REPLACE FUNCTION leaderleader_tally_tickets() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  -- a ticket's open waits count while it is not deleted
  INSERT INTO wait_tallies ({COLUMNS})
  SELECT c.* FROM approval_waits AS w,
       {_tally("w", "CASE WHEN NEW.deleted IS TRUE THEN -1 ELSE 1 END")} AS c
  WHERE w.ticket_id = NEW.id AND w.ended_at IS NULL;
  RETURN NULL;
END $$
"""

TRIGGERS = [
    "CREATE TRIGGER tally_waits AFTER INSERT OR UPDATE OR DELETE ON approval_waits "
    "FOR EACH ROW EXECUTE FUNCTION leaderleader_tally_waits()",
    "CREATE TRIGGER tally_tickets AFTER UPDATE OF deleted ON tickets FOR EACH ROW "
    "WHEN (OLD.deleted IS DISTINCT FROM NEW.deleted) EXECUTE FUNCTION leaderleader_tally_tickets()",
]

DELEGATION_BACKFILL = f"""
INSERT INTO delegation_tallies ({DELEGATION_COLUMNS})
SELECT date_trunc('week', ended_at), approver_level, decision_level, count(*),
       count(*) FILTER (WHERE first_intent_at <= ended_at)
FROM approval_waits WHERE ended_at IS NOT NULL
GROUP BY 1, 2, 3
"""

BACKFILL = f"""
INSERT INTO wait_tallies ({COLUMNS})
SELECT c.approver, c.approver_level, c.team, c.decision_rule, c.bucket, sum(c.episodes),
       sum(c.flagged), sum(c.ended), sum(c.after_intent), sum(c.waits), sum(c.total)
FROM approval_waits AS w, {_tally("w", "1")} AS c
WHERE leaderleader_wait_counted(w.ended_at, w.ticket_id)
GROUP BY c.approver, c.approver_level, c.team, c.decision_rule, c.bucket
"""


def upgrade() -> None:
    op.create_table(
        "wait_tallies",
        sa.Column("approver", sa.String(length=128), nullable=True),
        sa.Column("approver_level", sa.String(length=64), nullable=True),
        sa.Column("team", sa.String(length=128), nullable=True),
        sa.Column("decision_rule", sa.String(length=256), nullable=True),
        sa.Column("bucket", sa.Integer(), nullable=True),
        sa.Column("episodes", sa.BigInteger(), nullable=False),
        sa.Column("flagged", sa.BigInteger(), nullable=False),
        sa.Column("ended", sa.BigInteger(), nullable=False),
        sa.Column("after_intent", sa.BigInteger(), nullable=False),
        sa.Column("waits", sa.BigInteger(), nullable=False),
        sa.Column("total", sa.Float(), nullable=False),
    )
    op.create_table(
        "delegation_tallies",
        sa.Column("week", sa.DateTime(), nullable=True),
        sa.Column("approver_level", sa.String(length=64), nullable=True),
        sa.Column("decision_level", sa.String(length=64), nullable=True),
        sa.Column("decisions", sa.BigInteger(), nullable=False),
        sa.Column("by_intent", sa.BigInteger(), nullable=False),
    )
    if op.get_bind().dialect.name != "postgresql":
        return
    for statement in (CONTRIBUTION, COUNTED, ON_WAITS, ON_TICKETS, *TRIGGERS, BACKFILL,
                      DELEGATION_BACKFILL):
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS tally_tickets ON tickets")
        op.execute("DROP TRIGGER IF EXISTS tally_waits ON approval_waits")
        for function in ("leaderleader_tally_tickets()", "leaderleader_tally_waits()",
                         "leaderleader_wait_counted(timestamp, integer)",
                         "leaderleader_wait_tally(varchar, varchar, varchar, varchar, boolean, "
                         "timestamp, timestamp, float8, timestamp, integer)"):
            op.execute(f"DROP FUNCTION IF EXISTS {function}")
    op.drop_table("delegation_tallies")
    op.drop_table("wait_tallies")
