"""Approval waits in the ledger: open and close episodes from a ticket's changes.

Deliveries arrive out of order, so every boundary is stored as a StatusChange in
the payload's own time and an episode's end is looked up among them, never taken
from arrival order.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import func, or_, select, true
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ledger.models import ApprovalWait, Comment, Delivery, Intent, StatusChange, TicketRecord
from rules.model import Rules, Ticket, Verdict
from rules.waiting import field_approvers, is_waiting


def ticket_row(session: Session, view: Ticket, issue_id: str | None) -> TicketRecord:
    ticket = session.scalar(select(TicketRecord).where(TicketRecord.key == view.key))
    if ticket is None:
        ticket = TicketRecord(key=view.key, jira_id=issue_id, project=view.project)
        try:
            with session.begin_nested():
                session.add(ticket)
        except IntegrityError:  # another worker created it first
            ticket = session.scalars(select(TicketRecord).where(TicketRecord.key == view.key)).one()
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
    exists = session.scalar(
        select(StatusChange.id).where(
            StatusChange.ticket_id == ticket.id, StatusChange.at == at, StatusChange.to_status == to
        )
    )
    if exists is None:
        session.add(
            StatusChange(
                ticket_id=ticket.id,
                at=at,
                from_status=frm,
                to_status=to,
                enters_wait=enters,
                leaves_wait=not enters,
            )
        )
        session.flush()


def _end_after(session: Session, ticket: TicketRecord, started: datetime) -> datetime | None:
    """The first recorded departure after ``started`` (it may have arrived before the entry)."""
    return session.scalar(
        select(StatusChange.at)
        .where(
            StatusChange.ticket_id == ticket.id,
            StatusChange.leaves_wait.is_(True),
            StatusChange.at > started,
        )
        .order_by(StatusChange.at)
        .limit(1)
    )


def _moved_on_after(session: Session, ticket: TicketRecord, started: datetime, rules: Rules) -> datetime | None:
    """When the ledger already knows the ticket had left an episode that began at ``started``.

    Deliveries arrive out of order: a later episode, or a newer snapshot of the ticket
    outside approval, can be in the ledger before this episode's entry arrives. Its exit
    is then still on the way; until it comes, the episode ended no later than that.
    """
    bounds = []
    later_start = session.scalar(
        select(ApprovalWait.started_at)
        .where(ApprovalWait.ticket_id == ticket.id, ApprovalWait.started_at > started)
        .order_by(ApprovalWait.started_at)
        .limit(1)
    )
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
    existing = session.scalar(
        select(ApprovalWait).where(ApprovalWait.ticket_id == ticket.id, ApprovalWait.started_at == at)
    )
    if existing is not None:
        return None
    seen_end = _end_after(session, ticket, at)
    moved_on = None if seen_end is not None else _moved_on_after(session, ticket, at, rules)
    wait = ApprovalWait(
        ticket_id=ticket.id,
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
        with session.begin_nested():
            session.add(wait)
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
    wait = session.scalar(
        select(ApprovalWait)
        .where(ApprovalWait.ticket_id == ticket.id, ApprovalWait.started_at < at)
        .order_by(ApprovalWait.started_at.desc())
        .limit(1)
    )
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
                    *, status: str | None = None, changelog_entry: bool = False) -> bool:
    """Is a wait recorded as beginning within ``within`` of ``at`` that may be this entry?

    The same entry reported by two kinds of webhook (a workflow post-function and an
    issue event), or by a webhook and Jira's changelog, carries times a little apart
    and no common key. It cannot be the same entry when the wait went into another
    status, when the ledger knows the ticket left approval in between, or, for a
    ``changelog_entry``, when another changelog entry opened the wait (two changelog
    entries are two transitions however close in time).
    """
    near = session.scalars(select(ApprovalWait).where(
        ApprovalWait.ticket_id == ticket.id,
        ApprovalWait.started_at.between(at - within, at + within),
    )).all()
    if status is not None:
        near = [w for w in near if (w.status or "").strip().lower() == status.strip().lower()]
    left = session.scalars(select(StatusChange.at).where(
        StatusChange.ticket_id == ticket.id, StatusChange.leaves_wait.is_(True),
        StatusChange.at.between(at - within, at + within))).all()
    near = [w for w in near if not any(min(at, w.started_at) < t < max(at, w.started_at)
                                       for t in left)]
    if not near or not changelog_entry:
        return bool(near)
    keyed = set(session.scalars(select(Delivery.payload_at).where(
        Delivery.issue_key == ticket.key, Delivery.payload_at.in_([w.started_at for w in near]),
        Delivery.transition_key.like("changelog:%"))))
    return any(w.started_at not in keyed for w in near)


def wait_open_at(session: Session, ticket_id: int, at: datetime) -> ApprovalWait | None:
    """The episode that was open at ``at`` (a comment's time), if any.

    A comment written after the latest episode ended belongs to no episode: it is not
    an answer to a wait that was already over.
    """
    return session.scalar(
        select(ApprovalWait)
        .where(ApprovalWait.ticket_id == ticket_id, ApprovalWait.started_at <= at,
               or_(ApprovalWait.ended_at.is_(None), ApprovalWait.ended_at > at))
        .order_by(ApprovalWait.started_at.desc())
        .limit(1)
    )


def marker_for(wait: ApprovalWait, kind: str) -> str:
    """A marker derived from Jira's own data, so it survives a lost ledger too."""
    started_ms = int(wait.started_at.replace(tzinfo=UTC).timestamp() * 1000)
    return f"leaderleader:{kind}:{wait.issue_key}:{started_ms}"


def add_comment(session: Session, wait: ApprovalWait, kind: str, now: datetime) -> Comment:
    comment = Comment(
        wait=wait, kind=kind, state="pending", marker=marker_for(wait, kind), created_at=now
    )
    session.add(comment)
    session.flush()
    return comment


def settle_intents(session: Session, wait: ApprovalWait) -> None:
    """Give a wait whose bounds just became known exactly the intents written inside them.

    Deliveries arrive out of order: an intent may come before its wait's entry, or be
    attached to a wait whose earlier end arrives later.
    """
    session.flush()
    inside = (Intent.declared_at >= wait.started_at) & (
        Intent.declared_at < wait.ended_at if wait.ended_at is not None else true())
    for intent in session.scalars(select(Intent).where(
            Intent.issue_key == wait.issue_key,
            ((Intent.wait_id.is_(None)) & inside) | ((Intent.wait_id == wait.id) & ~inside))):
        owner = wait if intent.wait_id is None else (
            wait_open_at(session, wait.ticket_id, intent.declared_at))  # a later wait, or none
        intent.wait_id = owner.id if owner is not None else None
        intent.by_approver = owner is not None and is_approver(owner, intent.author,
                                                               intent.author_handle)
        if owner is not None and owner is not wait:
            _first_intent(session, owner)
    _first_intent(session, wait)


def _first_intent(session: Session, wait: ApprovalWait) -> None:
    session.flush()
    wait.first_intent_at = session.scalar(select(func.min(Intent.declared_at)).where(
        Intent.wait_id == wait.id, Intent.by_approver.is_(False)))


def is_approver(wait: ApprovalWait, author: str | None, handle: str | None) -> bool:
    """Is the comment's author one of the approvers the wait was waiting on?"""
    approvers = (wait.verdict or {}).get("approvers") or []
    return bool(author) and (author in approvers or author == wait.approver) or (
        handle is not None and handle == wait.approver)
