"""The report benchmark's generated ledger: tickets with approval waits spread over three years.

Rows are made once, as dicts; SQLite takes them through SQLAlchemy's bulk insert and
PostgreSQL through ``COPY`` (5,000,000 transitions in minutes, not tens of minutes).
Afterwards the tables are vacuumed and analysed (``settle``), as autovacuum would have
done to a production ledger long since: see ``bench.report``.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, Table, insert, text
from sqlalchemy.orm import Session

from ledger.models import ApprovalWait, StatusChange, TicketRecord
from ledger.tallies import fold

PEOPLE = [("bob", "engineer"), ("alice", "tech_lead"), ("carol", "manager"), ("dana", "director"),
          ("erin", "vp"), ("712020:unmapped", None)]
RULES = ["Routine production deploy", "Spend under 5k", "Everything else", None]
START = datetime(2023, 11, 1)
END = datetime(2026, 11, 1)
CHUNK = 2000


def _chunks(
    tickets: int, waits_per_ticket: int, seed: int
) -> Iterator[tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]]:
    """(tickets, waits, status changes) rows, ``CHUNK`` tickets at a time."""
    rng = random.Random(seed)
    span = (END - START).total_seconds()
    for first in range(0, tickets, CHUNK):
        ids = range(first + 1, min(first + CHUNK, tickets) + 1)
        records = [{"id": i, "key": f"P{i % 7}-{i}", "project": f"P{i % 7}", "summary": "",
                    "labels": [], "components": [], "fields": {}, "deleted": False} for i in ids]
        waits: list[dict[str, Any]] = []
        changes: list[dict[str, Any]] = []
        for i in ids:
            for w in range(waits_per_ticket):
                started = START + timedelta(seconds=rng.random() * span)
                approver, level = rng.choice(PEOPLE)
                open_ = rng.random() < 0.02
                ended = None if open_ else started + timedelta(hours=rng.expovariate(1 / 30))
                waits.append({
                    "ticket_id": i, "issue_key": f"P{i % 7}-{i}", "project": f"P{i % 7}",
                    "team": rng.choice(["payments", "platform", None]), "status": "Awaiting Approval",
                    "started_at": started + timedelta(microseconds=w), "ended_at": ended,
                    "wait_seconds": None if ended is None
                    else (ended - started - timedelta(microseconds=w)).total_seconds(),
                    "approver": approver, "approver_level": level, "holder": "bob",
                    "holder_level": "engineer", "decider": "bob",
                    "decision_rule": rng.choice(RULES), "decision_level": "engineer",
                    "flagged": level in ("director", "vp"),
                    "unmapped": [approver] if level is None else [], "verdict": {},
                    "ticket_snapshot": {}, "source": "backfill", "end_inferred": False,
                    "competence_gap": False})
                changes.append({"ticket_id": i, "at": started + timedelta(microseconds=w),
                                "to_status": "Awaiting Approval", "enters_wait": True,
                                "leaves_wait": False})
                if ended is not None:
                    changes.append({"ticket_id": i, "at": ended, "to_status": "In Progress",
                                    "enters_wait": False, "leaves_wait": True})
        yield records, waits, changes


def _copy(cursor: Any, table: Table, rows: list[dict[str, Any]]) -> None:
    """``COPY`` the rows (all with the same keys) into ``table``; JSON values as text."""
    names = list(rows[0])
    json_columns = {c.name for c in table.columns if c.type.__class__.__name__ == "JSON"}
    with cursor.copy(f"COPY {table.name} ({', '.join(names)}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row([json.dumps(row[n]) if n in json_columns else row[n] for n in names])


def generate(engine: Engine, tickets: int, waits_per_ticket: int, seed: int = 7) -> int:
    """Load the ledger; returns the number of transitions (status changes)."""
    tables = (TicketRecord.__table__, ApprovalWait.__table__, StatusChange.__table__)
    transitions = 0
    if engine.dialect.name == "postgresql":
        raw = engine.raw_connection()
        try:
            with raw.driver_connection.cursor() as cursor:  # type: ignore[union-attr]
                for chunk in _chunks(tickets, waits_per_ticket, seed):
                    for table, rows in zip(tables, chunk, strict=True):
                        _copy(cursor, table, rows)  # type: ignore[arg-type]
                    transitions += len(chunk[2])
            raw.commit()
        finally:
            raw.close()
        return transitions
    with engine.begin() as conn:
        for chunk in _chunks(tickets, waits_per_ticket, seed):
            for table, rows in zip(tables, chunk, strict=True):
                conn.execute(insert(table), rows)  # type: ignore[arg-type]
            transitions += len(chunk[2])
    return transitions


def settle(engine: Engine) -> None:
    """Vacuum and analyse, as autovacuum does to a production ledger after a bulk load.

    Without it the first reads of a freshly loaded table set every row's hint bits
    (writing pages back), index-only scans must visit the heap (no page is marked
    all-visible yet), and autovacuum, on by default, may start on the new tables in the
    middle of the timed runs.
    """
    with Session(engine) as session:  # as the scheduler's round does within minutes
        fold(session)
        session.commit()
    with engine.connect() as conn:
        conn = conn.execution_options(isolation_level="AUTOCOMMIT")
        if engine.dialect.name == "postgresql":
            conn.execute(text("VACUUM (ANALYZE)"))
        else:
            conn.execute(text("ANALYZE"))
