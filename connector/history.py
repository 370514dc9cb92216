"""Approval waits rebuilt from a ticket's changelog (pure), for backfill and ``rules explain``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from connector.shapes import (
    assignee_items,
    changelog_users,
    item_user,
    jira_time,
    normalise_field,
    status_items,
    user_id,
)
from rules.model import Rules
from rules.waiting import is_waiting, users_in


@dataclass(frozen=True)
class Episode:
    started_at: datetime
    ended_at: datetime | None
    status: str
    assignee_before: str | None  # who had the ticket just before it went into approval
    approver_assignee: str | None  # who had it while it waited
    status_id: str | None = None  # the waiting status's id, when the changelog gives it
    approvers: tuple[str, ...] = ()  # the approver field's users when the wait began


def _field_items(history: Any, field_id: str) -> list[dict[str, Any]]:
    items = history.get("items") if isinstance(history, dict) else None
    return [i for i in items or [] if isinstance(i, dict) and (
        i.get("fieldId") == field_id or str(i.get("field") or "") == field_id)]


def approval_episodes(issue: dict[str, Any], rules: Rules) -> list[Episode]:
    """Every stretch the ticket spent waiting for approval, oldest first.

    Waiting is ``rules.waiting.is_waiting`` applied to the status and the approver field
    as each history entry left them; each boundary is the entry that crossed it.
    """
    approver_field = rules.waiting.approver_field
    fields = issue.get("fields") or {}
    histories = sorted(
        (h for h in (issue.get("changelog") or {}).get("histories") or [] if isinstance(h, dict)),
        key=lambda h: (jira_time(h.get("created")) or datetime.min, _id_order(h.get("id"))),
    )
    # Start from the state before the first change, taken from the first items' "from".
    first_status = next((items[0] for h in histories if (items := status_items(h))), None)
    first_assignee = next((items[0] for h in histories if (items := assignee_items(h))), None)
    first_approver = next(
        (items[0] for h in histories if approver_field and (items := _field_items(h, approver_field))),
        None,
    )
    status_now = fields.get("status") or {}
    status: tuple[Any, Any] = (first_status.get("fromString"), first_status.get("from")) if first_status else (
        status_now.get("name"), status_now.get("id"))
    assignee = item_user(first_assignee, "from") if first_assignee else user_id(fields.get("assignee"))
    approvers: tuple[str, ...] = ()
    if approver_field:
        approvers = (changelog_users(first_approver.get("from")) if first_approver
                     else users_in(normalise_field(fields.get(approver_field))))

    def waiting() -> bool:
        return is_waiting(rules, *status, approvers)

    def opening(at: datetime, before: str | None) -> tuple[datetime, str, str | None, str | None,
                                                            str | None, tuple[str, ...]]:
        sid = str(status[1]) if status[1] is not None else None
        return (at, str(status[0] or status[1] or ""), before, assignee, sid, approvers)

    episodes: list[Episode] = []
    open_start = None
    created = jira_time(fields.get("created"))
    if waiting() and created is not None:
        open_start = opening(created, None)
    for history in histories:
        at = jira_time(history.get("created"))
        if at is None:
            continue
        was = waiting()
        before = assignee
        for item in assignee_items(history):
            assignee = item_user(item, "to")
        for item in status_items(history):
            status = (item.get("toString"), item.get("to"))
        if approver_field:
            for item in _field_items(history, approver_field):
                approvers = changelog_users(item.get("to"))
        now = waiting()
        if now and not was and open_start is None:
            open_start = opening(at, before)
        elif was and not now and open_start is not None:
            episodes.append(Episode(open_start[0], at, *open_start[1:]))
            open_start = None
    if open_start is not None:
        episodes.append(Episode(open_start[0], None, *open_start[1:]))
    return episodes


def _id_order(value: Any) -> tuple[int, str]:
    """History ids are numbers in practice: entries with the same time keep Jira's order."""
    text = str(value or "")
    return (int(text), "") if text.isdigit() else (0, text)
