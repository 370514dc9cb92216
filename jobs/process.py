"""The worker's first job: a verified delivery becomes ledger rows (and maybe a comment).

The inbox's drain job (``jobs.inbox``) hands each delivery over as plain data: the
delivery id and the raw body as Jira sent it. ``apply_delivery`` writes it into the
caller's transaction; ``after_commit`` queues, counts and logs once it is durable. The
ledger's unique delivery id makes a second run of the same delivery a no-op, so Jira's
retries and rq's retries are both harmless.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from jobs.context import current_runtime, enqueue_comment
from jobs.waits import (
    add_comment,
    ticket_row,
    update_ticket,
    close_wait,
    open_wait,
    record_change,
    wait_open_at,
    wait_transition,
)
from ledger.db import insert_new
from ledger.models import Delivery, Intent, Ticket
from leaderleader.metrics import count, observe_latency
from rules.engine import evaluate
from rules.model import Rules
from webhooks.events import CommentPosted, IssueChanged, IssueDeleted, decode_body, parse_event

log = logging.getLogger("leaderleader.jobs")

# "I intend to" at the start, after any quoting or markup Jira users put in front.
# Markup may also close right after the words ("_I intend to_"), so what follows
# "to" only has to be something other than a letter or a digit.
_INTENT = re.compile(
    r"^(?:\s|>|\*|_|-|\+|#|bq\.|h[1-6]\.|\{(?:quote|panel|color)[^}]*\})*"
    r"i\s+intend\s+to(?![^\W_])",
    re.IGNORECASE,
)


def is_intent(body: str) -> bool:
    return bool(_INTENT.match(body or ""))


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


@dataclass(frozen=True)
class Applied:
    """What applying one delivery did; the rest (queue, metrics, log) follows the commit."""

    outcome: str
    comments: tuple[int, ...]
    received: datetime
    extra: dict[str, Any]


def apply_delivery(session: Session, delivery_id: str, body: str, received_at: str) -> Applied:
    """Apply one webhook delivery to the ledger in ``session``; the caller commits."""
    runtime = current_runtime()
    received = datetime.fromisoformat(received_at)
    event = parse_event(decode_body(body), received_at=received)
    rules = runtime.rules.require()
    key = getattr(event, "key", None)
    extra = {"delivery": delivery_id, "issue": key, "webhook_event": event.event}
    row = insert_new(session, Delivery, {
        "delivery_id": delivery_id, "event": event.event, "issue_key": key,
        "payload_at": event.at, "received_at": received, "body": body,
        "outcome": "received",
    }, unique=["delivery_id"])
    if row is None:  # recorded before: Jira's retry, or rq's
        return Applied("duplicate", (), received, extra)
    comments: list[int] = []
    if isinstance(event, IssueChanged):
        outcome, comments = apply_issue_change(session, event, rules)
        if event.comment is not None:
            apply_comment(session, event.comment)
    elif isinstance(event, CommentPosted):
        outcome = apply_comment(session, event)
    elif isinstance(event, IssueDeleted):
        outcome = apply_delete(session, event)
    else:
        outcome = "ignored"
    session.execute(update(Delivery).where(Delivery.id == row)
                    .values(outcome=outcome, processed_at=_now()))
    return Applied(outcome, tuple(comments), received, extra)


def after_commit(applied: Applied) -> None:
    """Queue the comments a committed delivery asked for; count and log it."""
    runtime = current_runtime()
    for comment_id in applied.comments:
        enqueue_comment(runtime, comment_id)
    count(runtime.redis, "processed", applied.outcome)
    if applied.outcome == "duplicate":
        log.info("jira.delivery.duplicate", extra=applied.extra)
        return
    observe_latency(runtime.redis, (_now() - applied.received).total_seconds())
    log.info("jira.delivery.processed", extra={**applied.extra, "outcome": applied.outcome})


def apply_issue_change(
    session: Session, event: IssueChanged, rules: Rules
) -> tuple[str, list[int]]:
    """Update the ticket; open or close an approval wait; queue a comment when flagged."""
    view = event.ticket
    ticket = ticket_row(session, view, event.issue_id)
    previous_assignee = ticket.assignee if ticket.updated_at and ticket.updated_at < event.at else None
    update_ticket(ticket, view, event.issue_id, event.at)
    before, after = wait_transition(
        rules, view, event.changes, created=event.event == "jira:issue_created"
    )
    status_change = next((c for c in event.changes if c.field_id == "status"), None)
    frm = status_change.from_string if status_change else None
    if after and not before:
        record_change(session, ticket, event.at, frm, view.status, enters=True)
        handed_from = next(
            (c.from_id for c in event.changes if c.field_id == "assignee"), previous_assignee
        )
        snapshot = replace(view, assignee_before_approval=handed_from)
        verdict = evaluate(rules, snapshot)
        wait = open_wait(session, ticket, event.at, snapshot, verdict, rules)
        if wait is None:
            return "wait-known", []
        if verdict.flagged and wait.ended_at is None:
            comment = add_comment(session, wait, "flag", _now())
            return "flagged", [comment.id]
        return ("unmapped" if verdict.unmapped else "wait-opened"), []
    if before and not after:
        record_change(session, ticket, event.at, frm, view.status, enters=False)
        return ("wait-closed" if close_wait(session, ticket, event.at) else "wait-end-recorded"), []
    return "updated", []


def _comment_ticket(session: Session, event: CommentPosted) -> Ticket | None:
    if event.key:
        ticket = session.scalar(select(Ticket).where(Ticket.key == event.key))
        if ticket is None and event.ticket is not None:
            ticket = ticket_row(session, event.ticket, event.issue_id)
        return ticket
    if event.issue_id:
        return session.scalar(select(Ticket).where(Ticket.jira_id == event.issue_id))
    return None


def apply_comment(session: Session, event: CommentPosted) -> str:
    """Record an "I intend to …" comment as an intent on the wait it answers."""
    if not is_intent(event.body):
        return "comment-ignored"
    ticket = _comment_ticket(session, event)
    if ticket is None:
        return "intent-unknown-ticket"
    existing = session.scalar(
        select(Intent).where(Intent.issue_key == ticket.key, Intent.jira_comment_id == event.comment_id)
    )
    if existing is not None:
        existing.body = event.body  # comment_updated: keep the latest wording
        return "intent-updated"
    wait = wait_open_at(session, ticket.id, event.at)
    rules = current_runtime().rules.get()
    person = rules.person_by_jira(event.author) if rules else None
    session.add(
        Intent(
            wait_id=wait.id if wait else None,
            issue_key=ticket.key,
            jira_comment_id=event.comment_id,
            author=event.author,
            author_handle=person.handle if person else None,
            body=event.body,
            declared_at=event.at,
        )
    )
    if wait is not None and (wait.first_intent_at is None or event.at < wait.first_intent_at):
        wait.first_intent_at = event.at
    return "intent"


def apply_delete(session: Session, event: IssueDeleted) -> str:
    ticket = session.scalar(select(Ticket).where(Ticket.key == event.key))
    if ticket is None:
        return "deleted-unknown"
    ticket.deleted = True
    close_wait(session, ticket, event.at)
    return "deleted"
