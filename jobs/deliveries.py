"""Applying one verified delivery to the ledger: ticket, approval wait, intent, comment.

No rq job lives here: the inbox's drain job (``jobs.inbox``) hands each delivery over
as plain data, the delivery id and the raw body as Jira sent it, with the rules to
judge it by. ``apply_delivery`` writes it into the
caller's transaction; ``after_commit`` queues, counts and logs once it is durable. The
ledger's unique delivery id makes a second run of the same delivery a no-op, so Jira's
retries and rq's retries are both harmless.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from connector.events import (
    CommentPosted,
    FieldChange,
    IssueChanged,
    IssueDeleted,
    decode_body,
    parse_event,
)
from connector.shapes import changelog_users
from jobs.comments import enqueue_comment
from ledger.db import insert_new
from ledger.models import Delivery, Intent, TicketRecord
from ledger.waits import (
    add_comment,
    close_wait,
    open_wait,
    record_change,
    ticket_row,
    update_ticket,
    wait_open_at,
)
from rules.engine import evaluate
from rules.model import Rules, Ticket, utc_now
from rules.waiting import field_approvers, is_waiting, ticket_waits
from service.metrics import count, observe_latency
from service.runtime import Runtime

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


@dataclass(frozen=True)
class Applied:
    """What applying one delivery did; the rest (queue, metrics, log) follows the commit."""

    outcome: str
    comments: tuple[int, ...]
    received: datetime
    extra: dict[str, Any]


def apply_delivery(
    session: Session, rules: Rules, delivery_id: str, body: str, received_at: str
) -> Applied:
    """Apply one webhook delivery to the ledger in ``session``; the caller commits."""
    received = datetime.fromisoformat(received_at)
    event = parse_event(decode_body(body), received_at=received)
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
            apply_comment(session, event.comment, rules)
    elif isinstance(event, CommentPosted):
        outcome = apply_comment(session, event, rules)
    elif isinstance(event, IssueDeleted):
        outcome = apply_delete(session, event)
    else:
        outcome = "ignored"
    session.execute(update(Delivery).where(Delivery.id == row)
                    .values(outcome=outcome, processed_at=utc_now()))
    return Applied(outcome, tuple(comments), received, extra)


def after_commit(runtime: Runtime, applied: Applied) -> None:
    """Queue the comments a committed delivery asked for; count and log it."""
    for comment_id in applied.comments:
        enqueue_comment(runtime, comment_id)
    count(runtime.redis, "processed", applied.outcome)
    if applied.outcome == "duplicate":
        log.info("jira.delivery.duplicate", extra=applied.extra)
        return
    observe_latency(runtime.redis, (utc_now() - applied.received).total_seconds())
    log.info("jira.delivery.processed", extra={**applied.extra, "outcome": applied.outcome})


def wait_transition(
    rules: Rules, ticket: Ticket, changes: Sequence[FieldChange], *, created: bool
) -> tuple[bool, bool]:
    """(waiting before this change, waiting after it), from the changelog and the snapshot."""
    after = ticket_waits(rules, ticket)
    if created:
        return False, after
    status_before: tuple[str | None, str | None] = (ticket.status, ticket.status_id)
    approvers_before = field_approvers(rules, ticket.fields)
    for change in changes:
        if change.field_id == "status":
            status_before = (change.from_string, change.from_id)
        elif rules.waiting.approver_field and change.field_id == rules.waiting.approver_field:
            approvers_before = changelog_users(change.from_id or change.from_string)
    return is_waiting(rules, *status_before, approvers_before), after


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
        reassigned = next((c for c in event.changes if c.field_id == "assignee"), None)
        if reassigned is not None:
            handed_from = reassigned.from_id
        elif event.changes:  # a changelog that leaves the assignee alone: it was this one
            handed_from = view.assignee
        else:  # no changelog: the ledger's last snapshot, when it is older than this one
            handed_from = previous_assignee
        snapshot = replace(view, assignee_before_approval=handed_from)
        verdict = evaluate(rules, snapshot)
        wait = open_wait(session, ticket, event.at, snapshot, verdict, rules)
        if wait is None:
            return "wait-known", []
        if verdict.flagged and wait.ended_at is None:
            comment = add_comment(session, wait, "flag", utc_now())
            return "flagged", [comment.id]
        return ("unmapped" if verdict.unmapped else "wait-opened"), []
    if before and not after:
        record_change(session, ticket, event.at, frm, view.status, enters=False)
        return ("wait-closed" if close_wait(session, ticket, event.at) else "wait-end-recorded"), []
    return "updated", []


def _comment_ticket(session: Session, event: CommentPosted) -> TicketRecord | None:
    if event.key:
        ticket = session.scalar(select(TicketRecord).where(TicketRecord.key == event.key))
        if ticket is None and event.ticket is not None:
            ticket = ticket_row(session, event.ticket, event.issue_id)
        return ticket
    if event.issue_id:
        return session.scalar(select(TicketRecord).where(TicketRecord.jira_id == event.issue_id))
    return None


def apply_comment(session: Session, event: CommentPosted, rules: Rules) -> str:
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
    person = rules.person_by_jira(event.author)
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
    ticket = session.scalar(select(TicketRecord).where(TicketRecord.key == event.key))
    if ticket is None:
        return "deleted-unknown"
    ticket.deleted = True
    close_wait(session, ticket, event.at)
    return "deleted"
