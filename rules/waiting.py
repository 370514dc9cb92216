"""Is a ticket waiting for approval, and who is named to approve it?

The one answer to both questions: the webhook path, backfill, ``rules explain``,
``simulate`` and the engine all ask these functions, so the ledger and the verdict can
never disagree about the same ticket. Pure: plain values in, plain values out.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from rules.model import Rules, Ticket


def status_waits(rules: Rules, name: Any, status_id: Any) -> bool:
    """Is this status one of the rules' waiting-for-approval statuses?

    The rules file names statuses by name or by id; both are compared trimmed and
    case-insensitively (ids are digits, so case never matters for them).
    """
    wanted = {s.strip().lower() for s in rules.waiting.statuses}
    return any(isinstance(v, (str, int)) and str(v).strip().lower() in wanted
               for v in (name, status_id))


def users_in(value: Any) -> tuple[str, ...]:
    """The user ids in an approver field's normalised value: one id, or a list of them."""
    values: Iterable[Any] = value if isinstance(value, (list, tuple)) else (value,)
    return tuple(v for v in values if isinstance(v, str) and v.strip())


def field_approvers(rules: Rules, fields: Mapping[str, Any]) -> tuple[str, ...]:
    """The users named in the rules' approver field, if one is configured.

    For Jira Service Management's Approvals field (normalised to its current approval
    by ``connector.shapes``): the approvers whose decision is still pending.
    """
    field = rules.waiting.approver_field
    if not field:
        return ()
    value = fields.get(field)
    if isinstance(value, Mapping):
        return users_in(value.get("pending")) if approval_decision(value) == "pending" else ()
    return users_in(value)


def approval_decision(value: Any) -> str | None:
    """A JSM approval's final decision ("pending", "approved", "declined"); None for other fields."""
    if isinstance(value, Mapping) and isinstance(value.get("decision"), str):
        return str(value["decision"])
    return None


def approval_decided(rules: Rules, fields: Mapping[str, Any]) -> str | None:
    """The final decision of the current JSM approval in the approver field, once it is taken."""
    field = rules.waiting.approver_field
    decision = approval_decision(fields.get(field)) if field else None
    return decision if decision not in (None, "pending") else None


def is_waiting(rules: Rules, status: Any, status_id: Any, approvers: Iterable[str]) -> bool:
    """Waiting for approval: in one of the rules' waiting statuses.

    The approver field only says *who* approves: Jira (and JSM's Approvals field) leave it
    filled after the decision, so a filled field is no wait by itself. Only a rules file that names no
    statuses at all has nothing else to go by; there a filled field is the wait.
    """
    if rules.waiting.statuses:
        return status_waits(rules, status, status_id)
    return any(True for _ in approvers)


def ticket_waits(rules: Rules, ticket: Ticket) -> bool:
    """``is_waiting`` for a ticket's current snapshot; a final JSM approval decision ends it."""
    return approval_decided(rules, ticket.fields) is None and is_waiting(rules, ticket.status, ticket.status_id, field_approvers(rules, ticket.fields))
