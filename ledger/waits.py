"""Approval waits in the ledger: open and close episodes from a ticket's changes.

Deliveries arrive out of order, so every boundary is stored as a StatusChange in
the payload's own time and an episode's end is looked up among them, never taken
from arrival order.

The questions asked about one ticket (which episode was open then, which boundary came
next) are answered from the ticket's collections (``TicketRecord.waits``, ``changes``,
``intents``): loaded once per ticket, or once per batch of tickets by a drain job, they
replace a round trip to the database per question, and see the rows this transaction
has added without a flush.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ledger.db import guarded
from ledger.models import ApprovalWait, Comment, Delivery, StatusChange, TicketRecord
from rules.model import Rules, Ticket, Verdict
from rules.waiting import field_approvers, is_waiting


#: ``session.info`` key of a drain batch's tickets by key (``jobs.batch``): every ticket the
#: batch names, locked and loaded up front, so a lookup needs no query
TICKETS = "leaderleader.tickets"
def find_ticket(session: Session, key: str | None) -> TicketRecord | None:
    """The ticket with ``key``: from the batch's tickets when it holds it, else a query."""
    if key is None:
        return None
    known = session.info.get(TICKETS, {}).get(key)
    if known is not None:
        return known  # type: ignore[no-any-return]
    return session.scalar(select(TicketRecord).where(TicketRecord.key == key))


def ticket_row(session: Session, view: Ticket, issue_id: str | None) -> TicketRecord:
    ticket = find_ticket(session, view.key)
    if ticket is None:
        ticket = TicketRecord(key=view.key, jira_id=issue_id, project=view.project)
        try:
            with session.begin_nested():
                session.add(ticket)
        except IntegrityError:  # another worker created it first
            ticket = session.scalars(select(TicketRecord).where(TicketRecord.key == view.key)).one()
        if TICKETS in session.info:
            session.info[TICKETS][view.key] = ticket
    return ticket


def update_ticket(ticket: TicketRecord, view: Ticket, issue_id: str | None, at: datetime) -> None:
    """Copy the snapshot unless the ledger already holds a newer one (late delivery)."""
    if ticket.updated_at is not None and ticket.updated_at > at:
        return
    ticket.jira_id = issue_id or ticket.jira_id
    ticket.project = view.project or ticket.project
    ticket.issue_type = view.issue_type
    ticket.summary = view.summary
    ticket.status = view.status
    ticket.status_id = view.status_id
    ticket.assignee = view.assignee
    ticket.reporter = view.reporter
    ticket.priority = view.priority
    ticket.labels = list(view.labels)
    ticket.components = list(view.components)
    ticket.fields = {k: list(v) if isinstance(v, tuple) else v for k, v in view.fields.items()}
    ticket.updated_at = at


def record_change(
    session: Session, ticket: TicketRecord, at: datetime, frm: str | None, to: str | None, enters: bool
) -> None:
    """Keep one boundary row per (ticket, time, destination); repeats are no-ops."""
    if not any(c.at == at and c.to_status == to for c in ticket.changes):
        ticket.changes.append(StatusChange(at=at, from_status=frm, to_status=to,
                                           enters_wait=enters, leaves_wait=not enters))


def _end_after(ticket: TicketRecord, started: datetime) -> datetime | None:
    """The first recorded departure after ``started`` (it may have arrived before the entry)."""
    return min((c.at for c in ticket.changes if c.leaves_wait and c.at > started), default=None)


def _moved_on_after(ticket: TicketRecord, started: datetime, rules: Rules) -> datetime | None:
    """When the ledger already knows the ticket had left an episode that began at ``started``.

    Deliveries arrive out of order: a later episode, or a newer snapshot of the ticket
    outside approval, can be in the ledger before this episode's entry arrives. Its exit
    is then still on the way; until it comes, the episode ended no later than that.
    """
    bounds = []
    later_start = min((w.started_at for w in ticket.waits if w.started_at > started), default=None)
    if later_start is not None:
        bounds.append(later_start)
    if ticket.updated_at is not None and ticket.updated_at > started and not is_waiting(
        rules, ticket.status, ticket.status_id, field_approvers(rules, ticket.fields or {})
    ):
        bounds.append(ticket.updated_at)
    return min(bounds, default=None)


def open_wait(
    session: Session,
    ticket: TicketRecord,
    at: datetime,
    snapshot: Ticket,
    verdict: Verdict,
    rules: Rules,
    *,
    source: str = "webhook",
) -> ApprovalWait | None:
    """Start an episode at ``at``; None if that episode is already in the ledger."""
    if any(w.started_at == at for w in ticket.waits):
        return None
    seen_end = _end_after(ticket, at)
    moved_on = None if seen_end is not None else _moved_on_after(ticket, at, rules)
    wait = ApprovalWait(
        issue_key=ticket.key,
        project=snapshot.project,
        team=verdict.holder_team,
        status=snapshot.status,
        started_at=at,
        ended_at=seen_end or moved_on,
        end_inferred=moved_on is not None,
        end_evidence="the ledger already held the ticket elsewhere" if moved_on else None,
        approver=verdict.approver,
        approver_level=verdict.approver_level,
        holder=verdict.holder,
        holder_level=verdict.holder_level,
        decider=verdict.decider,
        decision_rule=verdict.rule,
        decision_level=verdict.decision_level,
        flagged=verdict.flagged,
        unmapped=list(verdict.unmapped),
        verdict=verdict.to_dict(),
        ticket_snapshot=snapshot.to_dict(),
        rules_digest=rules.digest,
        source=source,
        competence_gap=verdict.competence_gap,
        competence=verdict.require if verdict.competence_gap else None,
        competent=verdict.competent,
    )
    try:
        with guarded(session):
            ticket.waits.append(wait)
    except IntegrityError:  # a racing worker recorded the same episode
        return None
    settle_intents(session, wait)  # intents whose delivery came before the wait's entry
    return wait


def close_wait(
    session: Session, ticket: TicketRecord, at: datetime, *, evidence: str | None = None
) -> ApprovalWait | None:
    """End the episode that was open at ``at`` (unless a known earlier end exists).

    ``evidence`` marks the end as inferred (the ticket was seen elsewhere at ``at``; its
    exit itself never arrived) and says what showed it. A later-arriving exit never
    moves an end that is already earlier; an exit seen at the very time of an inferred
    end turns it into a seen one.
    """
    wait = latest_wait(ticket, lambda w: w.started_at < at)
    if wait is None:
        return None
    if wait.ended_at is not None and wait.ended_at <= at:
        if wait.ended_at == at and wait.end_inferred and evidence is None:
            wait.end_inferred, wait.end_evidence = False, None
        return None
    wait.ended_at = at
    wait.end_inferred = evidence is not None
    wait.end_evidence = evidence[:255] if evidence else None
    settle_intents(session, wait)  # an intent written after this end is not its own
    return wait


def wait_began_near(session: Session, ticket: TicketRecord, at: datetime, within: timedelta,
                    *, status: str | None = None, changelog_entry: bool = False,
                    created: bool = False, came_from: str | None = None) -> bool:
    """Is a wait recorded as beginning within ``within`` of ``at`` that may be this entry?

    The same entry reported by two kinds of webhook (a workflow post-function and an
    issue event), or by a webhook and Jira's changelog, carries times a little apart
    and no common key. It cannot be the same entry when the wait went into another
    status, when the ledger knows the ticket left approval in between, for a
    ``changelog_entry``, when another changelog entry opened the wait (two changelog
    entries are two transitions however close in time), nor when one is the ticket's
    creation (``created``) and the other a move from another status (``came_from``):
    a ticket created waiting that is seen entering from elsewhere left in between, even
    if that exit is still on its way.
    """
    near = [w for w in ticket.waits if at - within <= w.started_at <= at + within]
    if status is not None:
        near = [w for w in near if (w.status or "").strip().lower() == status.strip().lower()]
    left = [c.at for c in ticket.changes
            if c.leaves_wait and at - within <= c.at <= at + within]
    near = [w for w in near if not any(min(at, w.started_at) < t < max(at, w.started_at)
                                       for t in left)]
    if created:
        moved_in = {c.at for c in ticket.changes if c.enters_wait and c.from_status is not None}
        near = [w for w in near if w.started_at not in moved_in]
    elif came_from is not None and near:
        creations = set(session.scalars(select(Delivery.payload_at).where(
            Delivery.issue_key == ticket.key, Delivery.event == "jira:issue_created",
            Delivery.payload_at.in_([w.started_at for w in near]))))
        near = [w for w in near if w.started_at not in creations]
    if not near or not changelog_entry:
        return bool(near)
    keyed = set(session.scalars(select(Delivery.payload_at).where(
        Delivery.issue_key == ticket.key, Delivery.payload_at.in_([w.started_at for w in near]),
        Delivery.transition_key.like("changelog:%"))))
    return any(w.started_at not in keyed for w in near)


def latest_wait(ticket: TicketRecord, which: Any) -> ApprovalWait | None:
    """The ticket's latest-starting episode for which ``which(wait)`` holds, if any."""
    return max((w for w in ticket.waits if which(w)), key=lambda w: w.started_at, default=None)


def wait_open_at(ticket: TicketRecord, at: datetime) -> ApprovalWait | None:
    """The episode that was open at ``at`` (a comment's time), if any.

    A comment written after the latest episode ended belongs to no episode: it is not
    an answer to a wait that was already over.
    """
    return latest_wait(ticket, lambda w: w.started_at <= at and (
        w.ended_at is None or w.ended_at > at))


def marker_for(wait: ApprovalWait, kind: str) -> str:
    """A marker derived from Jira's own data, so it survives a lost ledger too."""
    started_ms = int(wait.started_at.replace(tzinfo=UTC).timestamp() * 1000)
    return f"leaderleader:{kind}:{wait.issue_key}:{started_ms}"


def add_comment(session: Session, wait: ApprovalWait, kind: str, now: datetime, *,
                flush: bool = True) -> Comment:
    """A pending comment on ``wait``; with ``flush=False`` its id comes with the next flush
    (a drain batch flushes once for all its deliveries)."""
    comment = Comment(
        wait=wait, kind=kind, state="pending", marker=marker_for(wait, kind), created_at=now
    )
    session.add(comment)
    if flush:
        session.flush()
    return comment


def settle_intents(session: Session, wait: ApprovalWait) -> None:
    """Give a wait whose bounds just became known exactly the intents written inside them.

    Deliveries arrive out of order: an intent may come before its wait's entry, or be
    attached to a wait whose earlier end arrives later.
    """
    ticket = wait.ticket
    for intent in ticket.intents:
        inside = wait.started_at <= intent.declared_at and (
            wait.ended_at is None or intent.declared_at < wait.ended_at)
        if not (intent.wait is None and inside or intent.wait is wait and not inside):
            continue
        owner = wait if intent.wait is None else (
            wait_open_at(ticket, intent.declared_at))  # a later wait, or none
        intent.wait = owner
        intent.by_approver = owner is not None and is_approver(owner, intent.author,
                                                               intent.author_handle)
        if owner is not None and owner is not wait:
            _first_intent(owner)
    _first_intent(wait)


def _first_intent(wait: ApprovalWait) -> None:
    first = min((i.declared_at for i in wait.ticket.intents
                 if i.wait is wait and not i.by_approver), default=None)
    if wait.first_intent_at != first:
        wait.first_intent_at = first


def is_approver(wait: ApprovalWait, author: str | None, handle: str | None) -> bool:
    """Is the comment's author one of the approvers the wait was waiting on?"""
    approvers = (wait.verdict or {}).get("approvers") or []
    return bool(author) and (author in approvers or author == wait.approver) or (
        handle is not None and handle == wait.approver)
