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
    """The users named in the rules' approver field, if one is configured."""
    field = rules.waiting.approver_field
    return users_in(fields.get(field)) if field else ()


def is_waiting(rules: Rules, status: Any, status_id: Any, approvers: Iterable[str]) -> bool:
    """Waiting for approval: in one of the rules' waiting statuses.

    The approver field only says *who* approves: Jira leaves it filled after the
    decision, so a filled field is no wait by itself. Only a rules file that names no
    statuses at all has nothing else to go by; there a filled field is the wait.
    """
    if rules.waiting.statuses:
        return status_waits(rules, status, status_id)
    return any(True for _ in approvers)


def ticket_waits(rules: Rules, ticket: Ticket) -> bool:
    """``is_waiting`` for a ticket's current snapshot."""
    return is_waiting(rules, ticket.status, ticket.status_id, field_approvers(rules, ticket.fields))
