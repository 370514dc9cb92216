"""Approval waits rebuilt from a ticket's changelog (pure), for backfill and ``rules explain``."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from connector.shapes import assignee_items, item_user, normalise_field, status_items, user_id


@dataclass(frozen=True)
class Episode:
    started_at: datetime
    ended_at: datetime | None
    status: str
    assignee_before: str | None  # who had the ticket just before it went into approval
    approver_assignee: str | None  # who had it while it waited
    status_id: str | None = None  # the waiting status's id, when the changelog gives it
    approvers: tuple[str, ...] = ()  # the approver field's users when the wait began


def jira_time(value: Any) -> datetime | None:
    """Jira's ``2026-11-20T10:15:02.511+0000`` as naive UTC (None when unreadable)."""
    if not isinstance(value, str) or not value:
        return None
    text = value.strip().replace("Z", "+00:00")
    if len(text) > 5 and text[-5] in "+-" and text[-4:].isdigit():
        text = text[:-2] + ":" + text[-2:]  # +0000 -> +00:00 for fromisoformat
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is None else parsed.astimezone(UTC).replace(tzinfo=None)


def _waits(statuses: set[str], name: Any, status_id: Any) -> bool:
    return any(isinstance(v, str) and v.strip().lower() in statuses for v in (name, status_id))


def _field_items(history: Any, field_id: str) -> list[dict[str, Any]]:
    items = history.get("items") if isinstance(history, dict) else None
    return [i for i in items or [] if isinstance(i, dict) and (
        i.get("fieldId") == field_id or str(i.get("field") or "") == field_id)]


def _users(raw: Any) -> tuple[str, ...]:
    """A user-picker item's ``from``/``to``: one id, or a multi-picker's ``[id1, id2]``."""
    if not isinstance(raw, str) or not raw.strip():
        return ()
    return tuple(u for u in (p.strip() for p in re.split(r"[,\s]+", raw.strip().strip("[]"))) if u)


def _current_users(value: Any) -> tuple[str, ...]:
    found = normalise_field(value)
    if isinstance(found, tuple):
        return tuple(str(v) for v in found if v)
    return (str(found),) if isinstance(found, str) and found.strip() else ()


def approval_episodes(
    issue: dict[str, Any], waiting_statuses: Iterable[str], approver_field: str | None = None
) -> list[Episode]:
    """Every stretch the ticket spent waiting for approval, oldest first.

    Waiting means a waiting status or, when ``approver_field`` is given, that field set
    (SPEC §5); each boundary is the history entry that crossed it.
    """
    statuses = {s.strip().lower() for s in waiting_statuses}
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
        approvers = _users(first_approver.get("from")) if first_approver else _current_users(
            fields.get(approver_field))

    def waiting() -> bool:
        return _waits(statuses, *status) or bool(approvers)

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
                approvers = _users(item.get("to"))
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
