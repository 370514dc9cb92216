"""Applying a drain job's batch of deliveries in one transaction, in few round trips.

On PostgreSQL each statement is a round trip, and one delivery asked about a dozen
questions one at a time (is it new? the ticket? its waits? its boundaries? its intents?
the people it names?). A batch asks each question once for all its deliveries instead:

* every delivery's ledger row in one ``INSERT … ON CONFLICT DO NOTHING``: the rows that
  come back are the new deliveries, the others are repeats;
* the tickets the batch names: the missing ones created in one statement, then all of
  them locked (``FOR UPDATE``, in key order, so two batches on the same tickets wait for
  each other and never deadlock) and read with their waits, boundaries and intents;
* the people named: the missing ones recorded, then all read, in one statement each;
* after the deliveries are applied, the outcomes in one ``executemany`` and the rows
  they made in one flush.

The batch runs without a savepoint per delivery. A delivery that raises fails the whole
batch instead; the caller then rolls it back and applies the batch again the careful
way (``apply_delivery`` in a savepoint each), where that delivery is rolled back alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session, selectinload

from connector.events import CommentPosted, IssueChanged
from jobs.deliveries import Applied, Parsed, answer_in, apply_parsed, is_intent
from ledger.db import UNGUARDED, insert_new_many
from ledger.models import Delivery, TicketRecord
from ledger.people import USERS, SeenUser, load_users
from ledger.waits import TICKETS
from rules.model import Rules, utc_now


def _new_rows(session: Session, batch: Sequence[Parsed]) -> list[int | None]:
    """Record every delivery's row at once; per delivery its row id, or None for a repeat.

    A repeat of a delivery id or a transition earlier in the same batch is one, as it
    would be applied one by one.
    """
    first: dict[Any, int] = {}
    for n, parsed in enumerate(batch):
        row = parsed.row()
        for unique in (("id", row["delivery_id"]), ("transition", row["transition_key"])):
            if unique[1] is not None:
                first.setdefault(unique, n)
    fresh = {n for n, parsed in enumerate(batch)
             if first[("id", parsed.delivery_id)] == n
             and first.get(("transition", parsed.row()["transition_key"]), n) == n}
    rows = sorted((batch[n].row() for n in fresh), key=lambda row: row["delivery_id"])
    ids = {delivery_id: row_id for row_id, delivery_id in insert_new_many(
        session, Delivery, rows, returning=("id", "delivery_id"))}
    return [ids.get(parsed.delivery_id) if n in fresh else None
            for n, parsed in enumerate(batch)]


def _creates_ticket(event: Any) -> bool:
    """Does applying this event create its ticket when the ledger lacks it (``ticket_row``)?"""
    if isinstance(event, IssueChanged):
        return True
    return (isinstance(event, CommentPosted) and bool(event.key) and event.ticket is not None
            and (is_intent(event.body) or answer_in(event.body) is not None))


def _lock_tickets(session: Session, events: Sequence[Any]) -> None:
    """Create the batch's missing tickets, then lock and read all it names, with their rows."""
    firsts: dict[str, dict[str, Any]] = {}
    for event in events:
        if _creates_ticket(event):
            view = event.ticket
            firsts.setdefault(view.key, {"key": view.key, "jira_id": event.issue_id,
                                         "project": view.project})
    insert_new_many(session, TicketRecord, [firsts[key] for key in sorted(firsts)])
    keys = sorted({key for event in events if (key := getattr(event, "key", None))})
    tickets = session.scalars(
        select(TicketRecord).where(TicketRecord.key.in_(keys)).order_by(TicketRecord.key)
        .with_for_update(of=TicketRecord)
        .options(selectinload(TicketRecord.waits), selectinload(TicketRecord.changes),
                 selectinload(TicketRecord.intents))).all() if keys else []
    session.info[TICKETS] = {ticket.key: ticket for ticket in tickets}


def _load_people(session: Session, batch: Sequence[Parsed]) -> None:
    """The people the batch names, and the assignees a change may name by Data Center key."""
    first_seen: dict[str, tuple[SeenUser, datetime]] = {}
    keys: set[str] = set()
    for parsed in batch:
        for user in parsed.users:
            if user.get("jira_id"):
                first_seen.setdefault(str(user["jira_id"]), (user, parsed.event.at))
        if isinstance(parsed.event, IssueChanged):
            keys.update(value for value in [parsed.event.ticket.assignee, *(
                c.from_id for c in parsed.event.changes if c.field_id == "assignee")] if value)
    load_users(session, first_seen, keys)


def apply_batch(session: Session, rules: Rules, batch: Sequence[Parsed]) -> list[Applied]:
    """Apply ``batch`` (in lock order) in ``session`` without savepoints; the caller commits.

    Raises on the first delivery that fails: the transaction is then the caller's to roll
    back, and the batch's to apply again one savepoint per delivery.
    """
    session.info[UNGUARDED] = True
    try:
        rows = _new_rows(session, batch)
        fresh = [parsed for parsed, row in zip(batch, rows, strict=True) if row is not None]
        _lock_tickets(session, [parsed.event for parsed in fresh])
        _load_people(session, fresh)
        applied = [apply_parsed(session, rules, parsed, row)
                   for parsed, row in zip(batch, rows, strict=True)]
        now = utc_now()
        outcomes = [{"id": row, "outcome": done.outcome, "processed_at": now}
                    for row, done in zip(rows, applied, strict=True) if row is not None]
        if outcomes:
            session.execute(update(Delivery), outcomes)
        session.flush()
        return applied
    finally:
        for key in (UNGUARDED, TICKETS, USERS):
            session.info.pop(key, None)
