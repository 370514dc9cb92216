"""Applying one verified delivery to the ledger: ticket, approval wait, intent, comment.

No rq job lives here: the inbox's drain job (``jobs.inbox``) hands each delivery over
as plain data, the delivery id and the raw body as Jira sent it (``parse_delivery``
reads it), with the rules to judge it by. ``apply_delivery`` writes it into the
caller's transaction (``jobs.batch`` does the same for a batch at once);
``after_commit`` queues, counts and logs once it is durable. The
ledger's unique delivery id makes a second run of the same delivery a no-op, so Jira's
retries and rq's retries are both harmless.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import cached_property
from datetime import datetime
from typing import Any

import redis
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from connector.events import (
    WORKFLOW_TRANSITION,
    CommentPosted,
    FieldChange,
    IssueChanged,
    IssueDeleted,
    LinkCreated,
    parse_event,
)
from connector.payload import decode_body
from connector.shapes import changelog_users, users_seen
from jobs.comments import enqueue_comment
from jobs.history import SAME_TRANSITION
from ledger import answers
from ledger.answers import ACKNOWLEDGED, OBJECTED, REOPENED
from ledger.db import insert_new
from ledger.models import Comment, Delivery, Intent, TicketRecord
from ledger.people import remember_users, username_for_key
from ledger.waits import (
    add_comment,
    close_wait,
    find_ticket,
    is_approver,
    open_wait,
    record_change,
    ticket_row,
    update_ticket,
    wait_began_near,
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
_LEAD = r"^(?:\s|>|\*|_|-|\+|#|bq\.|h[1-6]\.|\{(?:quote|panel|color)[^}]*\})*"


def _opening(words: str) -> re.Pattern[str]:
    """A comment that opens with ``words`` (a pattern), after the markup in front."""
    return re.compile(_LEAD + f"(?:{words})(?![^\\W_])", re.IGNORECASE)


_INTENT = _opening(r"i\s+intend\s+to")
#: the approver's answers to an intent (SPEC §9)
_ANSWERS = ((_opening(r"very\s+well"), ACKNOWLEDGED), (_opening(r"i\s+object|hold"), OBJECTED))


def is_intent(body: str) -> bool:
    return bool(_INTENT.match(body or ""))


def answer_in(body: str) -> str | None:
    """"acknowledged" for "Very well …", "objected" for "I object …" / "Hold …", else None."""
    return next((kind for pattern, kind in _ANSWERS if pattern.match(body or "")), None)


@dataclass(frozen=True)
class Applied:
    """What applying one delivery did; the rest (queue, metrics, log) follows the commit."""

    outcome: str
    #: the comments it asked for; their ids are known once the transaction is flushed
    comments: tuple[Comment, ...]
    received: datetime
    extra: dict[str, Any]


@dataclass(frozen=True)
class Parsed:
    """A delivery read and understood, before anything touches the ledger."""

    delivery_id: str
    body: str
    received: datetime
    payload: Any
    event: Any

    @cached_property
    def users(self) -> list[dict[str, str | None]]:
        """The people the delivery names (read once: a batch wants them before applying)."""
        return users_seen(self.payload)

    def row(self) -> dict[str, Any]:
        """The delivery's ledger row, as first recorded."""
        event = self.event
        return {"delivery_id": self.delivery_id, "event": event.event,
                "issue_key": getattr(event, "key", None), "payload_at": event.at,
                "received_at": self.received, "body": self.body, "outcome": "received",
                "transition_key": event.transition_key if isinstance(event, IssueChanged) else None}


def parse_delivery(delivery_id: str, body: str, received_at: str) -> Parsed:
    """Read a delivery as the inbox holds it; raises for one that can never be applied."""
    received = datetime.fromisoformat(received_at)
    payload = decode_body(body)
    return Parsed(delivery_id, body, received, payload, parse_event(payload, received_at=received))


def apply_delivery(session: Session, rules: Rules, parsed: Parsed) -> Applied:
    """Apply one webhook delivery to the ledger in ``session``: its row, then its effects;
    the caller commits. (A drain batch records all its rows at once: ``jobs.batch``.)"""
    row = insert_new(session, Delivery, parsed.row(), unique=None)
    applied = apply_parsed(session, rules, parsed, row)
    if row is not None:
        session.execute(update(Delivery).where(Delivery.id == row)
                        .values(outcome=applied.outcome, processed_at=utc_now()))
    return applied


def apply_parsed(session: Session, rules: Rules, parsed: Parsed, row: int | None) -> Applied:
    """Apply a delivery whose ledger row is ``row`` (None: recorded before, a duplicate).

    The caller stores the outcome on the row (a drain batch does it for all in one go).
    """
    event, delivery_id = parsed.event, parsed.delivery_id
    extra = {"delivery": delivery_id, "issue": getattr(event, "key", None),
             "webhook_event": event.event}
    if row is None:  # recorded before: Jira's retry, rq's, or the same transition re-sent
        return Applied("duplicate", (), parsed.received, extra)
    comments: list[Comment] = []
    # names to show for people missing from the rules file; Data Center keys to usernames
    remember_users(session, parsed.users, event.at)
    if isinstance(event, IssueChanged):
        category = _known_category(session, event)
        outcome, comments = apply_issue_change(session, event, rules, delivery_id)
        apply_loop_change(session, event, rules, category)
        if event.comment is not None:
            apply_comment(session, event.comment, rules)
    elif isinstance(event, CommentPosted):
        outcome = apply_comment(session, event, rules)
        if event.ticket is not None:
            apply_evidence(session, rules, event.ticket, event.at, delivery_id)
    elif isinstance(event, IssueDeleted):
        outcome = apply_delete(session, event)
    elif isinstance(event, LinkCreated):
        outcome = apply_link(session, event, rules)
    else:
        outcome = "ignored"
    return Applied(outcome, tuple(comments), parsed.received, extra)


def after_commit(runtime: Runtime, done: Sequence[Applied]) -> None:
    """Queue the comments committed deliveries asked for; count and log them (metrics in
    one round trip to Redis for the lot)."""
    pipe = runtime.redis.pipeline(transaction=False)
    for applied in done:
        for comment in applied.comments:
            enqueue_comment(runtime, comment.id)
        count(pipe, "processed", applied.outcome)
        if applied.outcome == "duplicate":
            log.info("jira.delivery.duplicate", extra=applied.extra)
            continue
        observe_latency(pipe, (utc_now() - applied.received).total_seconds())
        log.info("jira.delivery.processed", extra={**applied.extra, "outcome": applied.outcome})
    try:
        pipe.execute()
    except redis.RedisError:
        log.warning("metrics.write_failed", extra={"metric": "processed"})


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
    session: Session, event: IssueChanged, rules: Rules, delivery_id: str = ""
) -> tuple[str, list[Comment]]:
    """Update the ticket; open or close an approval wait; queue a comment when flagged.

    Evidence beats memory: when the delivery shows the ticket was not waiting just
    before it (a changelog *from* status that is no approval status, or a snapshot
    outside approval) while the ledger holds a wait open, that wait's exit was missed:
    it is closed at this delivery's time, marked inferred.
    """
    view = event.ticket
    ticket = ticket_row(session, view, event.issue_id)
    previous_assignee = ticket.assignee if ticket.updated_at and ticket.updated_at < event.at else None
    update_ticket(ticket, view, event.issue_id, event.at)
    before, after = wait_transition(
        rules, view, event.changes, created=event.event == "jira:issue_created"
    )
    status_change = next((c for c in event.changes if c.field_id == "status"), None)
    frm = status_change.from_string if status_change else None
    if after and not before and wait_began_near(
            session, ticket, event.at, SAME_TRANSITION, status=view.status,
            changelog_entry=(event.transition_key or "").startswith("changelog:"),
            created=event.event == "jira:issue_created", came_from=frm):
        return "wait-known", []
    inferred = None
    if not before and (status_change is not None or not after) and knows_status(rules, view):
        inferred = close_wait(session, ticket, event.at, evidence=_evidence(delivery_id, frm, view))
    if after and not before:
        record_change(session, ticket, event.at, frm, view.status, enters=True)
        reassigned = next((c for c in event.changes if c.field_id == "assignee"), None)
        if reassigned is not None:
            handed_from = reassigned.from_id
        elif event.changes and event.event != WORKFLOW_TRANSITION:
            # a changelog that leaves the assignee alone: it was this one (a post-function
            # body has no changelog of its own: it cannot say the assignee stayed)
            handed_from = view.assignee
        else:  # no changelog: the ledger's last snapshot, when it is older than this one
            handed_from = previous_assignee
        # Data Center changelogs may name the user by key: the rules file knows usernames
        handed_from = username_for_key(session, handed_from)
        snapshot = replace(view, assignee_before_approval=handed_from)
        verdict = evaluate(rules, snapshot)
        wait = open_wait(session, ticket, event.at, snapshot, verdict, rules)
        if wait is None:
            return "wait-known", []
        if verdict.flagged and wait.ended_at is None:
            return "flagged", [add_comment(session, wait, "flag", utc_now(), flush=False)]
        return ("unmapped" if verdict.unmapped else "wait-opened"), []
    if before and not after:
        record_change(session, ticket, event.at, frm, view.status, enters=False)
        closed = close_wait(session, ticket, event.at)
        if closed is not None:
            answers.wait_ended(closed, view.status, event.at)
        return ("wait-closed" if closed else "wait-end-recorded"), []
    return ("wait-closed-inferred" if inferred is not None else "updated"), []


def knows_status(rules: Rules, view: Ticket) -> bool:
    """Does this snapshot say where the ticket is? (A cut-down issue may carry no status.)"""
    if rules.waiting.statuses:
        return view.status is not None or view.status_id is not None
    return True


def _evidence(delivery_id: str, frm: str | None, view: Ticket) -> str:
    seen = f"came from '{frm}'" if frm is not None else f"was in '{view.status}'"
    return f"delivery {delivery_id}: the ticket {seen}"[:255]


def apply_evidence(session: Session, rules: Rules, view: Ticket, at: datetime, delivery_id: str) -> None:
    """A delivery's snapshot showing the ticket outside approval ends the wait the ledger holds."""
    if not rules.waiting.statuses or not knows_status(rules, view) or ticket_waits(rules, view):
        return  # a cut-down issue carries no approver field: only a status is evidence
    ticket = find_ticket(session, view.key)
    if ticket is not None:
        close_wait(session, ticket, at, evidence=_evidence(delivery_id, None, view))


def _comment_ticket(session: Session, event: CommentPosted) -> TicketRecord | None:
    if event.key:
        ticket = find_ticket(session, event.key)
        if ticket is None and event.ticket is not None:
            ticket = ticket_row(session, event.ticket, event.issue_id)
        return ticket
    if event.issue_id:
        return session.scalar(select(TicketRecord).where(TicketRecord.jira_id == event.issue_id))
    return None


def apply_comment(session: Session, event: CommentPosted, rules: Rules) -> str:
    """Record an "I intend to …" comment as an intent on the wait it answers."""
    if not is_intent(event.body):
        return apply_answer(session, event, rules) if answer_in(event.body) else "comment-ignored"
    ticket = _comment_ticket(session, event)
    if ticket is None:
        return "intent-unknown-ticket"
    existing = next((i for i in ticket.intents if i.jira_comment_id == event.comment_id), None)
    if existing is not None:
        existing.body = event.body  # comment_updated: keep the latest wording
        return "intent-updated"
    wait = wait_open_at(ticket, event.at)
    person = rules.person_by_jira(event.author)
    own = wait is not None and is_approver(wait, event.author, person.handle if person else None)
    ticket.intents.append(
        Intent(
            wait=wait,
            issue_key=ticket.key,
            jira_comment_id=event.comment_id,
            author=event.author,
            author_handle=person.handle if person else None,
            author_level=person.level if person else None,
            by_approver=own,
            body=event.body,
            declared_at=event.at,
        )
    )
    if wait is None:
        return "intent-no-wait"
    if own:  # "I intend to approve" from the approver: no decision moved closer to the work
        return "intent-by-approver"
    if wait.first_intent_at is None or event.at < wait.first_intent_at:
        wait.first_intent_at = event.at
    return "intent"


def apply_delete(session: Session, event: IssueDeleted) -> str:
    ticket = find_ticket(session, event.key)
    if ticket is None:
        return "deleted-unknown"
    ticket.deleted = True
    close_wait(session, ticket, event.at)
    return "deleted"


def apply_answer(session: Session, event: CommentPosted, rules: Rules) -> str:
    """The approver answers the intent of the wait the comment belongs to (the first answer counts)."""
    kind = answer_in(event.body)
    ticket = _comment_ticket(session, event)
    wait = wait_open_at(ticket, event.at) if ticket is not None else None
    if kind is None or wait is None:
        return "comment-ignored"
    person = rules.person_by_jira(event.author)
    approvers = set((wait.verdict or {}).get("approvers") or ())
    by_approver = event.author in approvers or (person is not None and person.handle == wait.approver)
    if not by_approver or not answers.answer(wait, kind, event.at):
        return "comment-ignored"
    return kind


def _known_category(session: Session, event: IssueChanged) -> str | None:
    """The status category the ledger knew before this change (None for a stale delivery)."""
    ticket = find_ticket(session, event.key)
    if ticket is None or (ticket.updated_at is not None and ticket.updated_at > event.at):
        return None
    return ticket.status_category


def apply_loop_change(session: Session, event: IssueChanged, rules: Rules,
                      category: str | None) -> None:
    """A change after the ticket's record is up to date: handed to the approver, or reopened."""
    ticket = find_ticket(session, event.key)
    if ticket is None:
        return
    handed = tuple(c.to_id for c in event.changes if c.field_id == "assignee" and c.to_id)
    if handed:
        answers.handed_to(ticket, handed, event.at)
    if event.status_category is None or ticket.updated_at != event.at:
        return
    if category == "done" and event.status_category != "done":
        answers.learn(session, ticket.id, REOPENED, event.at, rules.outcome_window)
    ticket.status_category = event.status_category


def apply_link(session: Session, event: LinkCreated, rules: Rules) -> str:
    """A link that says revert/rollback is the outcome of the decision taken by intent it points at."""
    words = (event.type_name, event.outward, event.inward)
    found = answers.linked(session, event.source_id, event.destination_id, words, event.at,
                           rules.outcome_window)
    return "outcome-reverted" if found else "link-ignored"
