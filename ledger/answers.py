"""What the leader-leader loop records on a wait after its intent: the answer, the outcome.

* **Answer** to an intent (``ApprovalWait.reply``): the first of an *acknowledgement* (the
  approver's comment starting "Very well", or the wait ending into a status that is not a
  rejection after the intent) or an *objection* (the approver's comment starting
  "I object" or "Hold"). Later answers do not replace the first. *Proceeded* is not
  stored: it is decided when the report is read (``ledger.loop``).
* **Outcome** of a decision taken by intent (a wait that ended after an intent): the
  ticket *reopened* (its status category went from ``done`` back to another) or
  *reverted* (an issue link whose type says revert/rollback, or whose other ticket's
  summary does) within the rules' ``outcome_window`` after the wait ended.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from ledger.models import ApprovalWait, TicketRecord

ACKNOWLEDGED, OBJECTED = "acknowledged", "objected"
REOPENED, REVERTED = "reopened", "reverted"

#: statuses a wait may end into that say "no": the approval transition is not an acknowledgement
_REJECTION = re.compile(r"reject|declin|denied|deny|refus|cancel|won'?t", re.IGNORECASE)
#: link types and summaries that say a change was undone
_REVERT = re.compile(r"revert|roll[\s-]*back", re.IGNORECASE)


def is_rejection(status: str | None) -> bool:
    return bool(status and _REJECTION.search(status))


def says_revert(*texts: str | None) -> bool:
    return any(text and _REVERT.search(text) for text in texts)


def answer(wait: ApprovalWait, kind: str, at: datetime) -> bool:
    """Record the answer to the wait's intent, unless it has none before ``at`` or has one."""
    if wait.first_intent_at is None or wait.first_intent_at > at or wait.reply is not None:
        return False
    wait.reply, wait.replied_at = kind, at
    return True


def wait_ended(wait: ApprovalWait, status: str | None, at: datetime) -> None:
    """The wait ended into ``status``: keep it; after an intent it acknowledges unless a rejection."""
    wait.end_status = status
    if not is_rejection(status):
        answer(wait, ACKNOWLEDGED, at)


def handed_to(ticket: TicketRecord, users: tuple[str, ...], at: datetime) -> None:
    """The ticket was assigned to ``users`` at ``at``: if one approves the open wait, it reached them."""
    wait = max((w for w in ticket.waits if w.started_at <= at), key=lambda w: w.started_at,
               default=None)
    if wait is None or (wait.ended_at is not None and wait.ended_at <= at):
        return
    approvers = set((wait.verdict or {}).get("approvers") or ())
    if approvers & set(users) and (wait.reached_at is None or wait.reached_at < at):
        wait.reached_at = at


def _decided_by_intent(session: Session, ticket_id: int, at: datetime,
                       window: timedelta) -> ApprovalWait | None:
    """The latest wait of the ticket that ended after an intent, no more than ``window`` before ``at``."""
    return session.scalar(
        select(ApprovalWait)
        .where(ApprovalWait.ticket_id == ticket_id, ApprovalWait.first_intent_at.is_not(None),
               ApprovalWait.ended_at.is_not(None), ApprovalWait.ended_at <= at,
               ApprovalWait.ended_at >= at - window, ApprovalWait.first_intent_at <= ApprovalWait.ended_at)
        .order_by(ApprovalWait.ended_at.desc()).limit(1))


def learn(session: Session, ticket_id: int, kind: str, at: datetime, window: timedelta) -> bool:
    """Mark the decision taken by intent that ``kind`` (reopened / reverted) came back to."""
    wait = _decided_by_intent(session, ticket_id, at, window)
    if wait is None or wait.outcome is not None:
        return False
    wait.outcome, wait.outcome_at = kind, at
    return True


def linked(session: Session, source_id: str, destination_id: str, link_words: tuple[str, ...],
           at: datetime, window: timedelta) -> bool:
    """An issue link: when it says revert/rollback, the linked decision taken by intent came back.

    Either end may be the decision (Jira names link directions freely); the destination is
    tried first ("A reverts B"). The link says revert when its type's name, outward or inward
    description does, or when the summary of the *other* ticket, as the ledger knows it, does.
    """
    tickets = {t.jira_id: t for t in session.scalars(
        select(TicketRecord).where(TicketRecord.jira_id.in_([source_id, destination_id])))}
    for mine, other in ((destination_id, source_id), (source_id, destination_id)):
        ticket = tickets.get(mine)
        if ticket is None:
            continue
        other_summary = tickets[other].summary if other in tickets else None
        if says_revert(*link_words, other_summary) and learn(session, ticket.id, REVERTED, at,
                                                             window):
            return True
    return False
