"""Approval waits in the ledger: open and close episodes from a ticket's changes.

Deliveries arrive out of order, so every boundary is stored as a StatusChange in
the payload's own time and an episode's end is looked up among them, never taken
from arrival order.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ledger.models import ApprovalWait, Comment, StatusChange, TicketRecord
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
    wait = ApprovalWait(
        ticket_id=ticket.id,
        issue_key=ticket.key,
        project=snapshot.project,
        team=verdict.holder_team,
        status=snapshot.status,
        started_at=at,
        ended_at=_end_after(session, ticket, at) or _moved_on_after(session, ticket, at, rules),
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
    return wait


def close_wait(session: Session, ticket: TicketRecord, at: datetime) -> ApprovalWait | None:
    """End the episode that was open at ``at`` (unless a known earlier end exists)."""
    wait = session.scalar(
        select(ApprovalWait)
        .where(ApprovalWait.ticket_id == ticket.id, ApprovalWait.started_at < at)
        .order_by(ApprovalWait.started_at.desc())
        .limit(1)
    )
    if wait is None or (wait.ended_at is not None and wait.ended_at <= at):
        return None
    wait.ended_at = at
    return wait


def wait_open_at(session: Session, ticket_id: int, at: datetime) -> ApprovalWait | None:
    """The episode a comment made at ``at`` belongs to (the open one, or the one then open)."""
    return session.scalar(
        select(ApprovalWait)
        .where(ApprovalWait.ticket_id == ticket_id, ApprovalWait.started_at <= at)
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
