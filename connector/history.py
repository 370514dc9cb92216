"""Approval waits rebuilt from a ticket's changelog (pure), for backfill and ``rules explain``."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from connector.shapes import assignee_items, item_user, status_items, user_id


@dataclass(frozen=True)
class Episode:
    started_at: datetime
    ended_at: datetime | None
    status: str
    assignee_before: str | None  # who had the ticket just before it went into approval
    approver_assignee: str | None  # who had it while it waited


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


def approval_episodes(issue: dict[str, Any], waiting_statuses: Iterable[str]) -> list[Episode]:
    """Every stretch the ticket spent in a waiting status, oldest first."""
    statuses = {s.strip().lower() for s in waiting_statuses}
    fields = issue.get("fields") or {}
    histories = sorted(
        (h for h in (issue.get("changelog") or {}).get("histories") or [] if isinstance(h, dict)),
        key=lambda h: jira_time(h.get("created")) or datetime.min,
    )
    # Start from the state before the first change, taken from the first items' "from".
    first_status = next((items[0] for h in histories if (items := status_items(h))), None)
    first_assignee = next((items[0] for h in histories if (items := assignee_items(h))), None)
    status_now = fields.get("status") or {}
    current = (first_status.get("fromString"), first_status.get("from")) if first_status else (
        status_now.get("name"), status_now.get("id"))
    assignee = item_user(first_assignee, "from") if first_assignee else user_id(fields.get("assignee"))
    episodes: list[Episode] = []
    open_start: tuple[datetime, str, str | None, str | None] | None = None
    created = jira_time(fields.get("created"))
    if _waits(statuses, *current) and created is not None:
        open_start = (created, str(current[0] or current[1]), None, assignee)
    for history in histories:
        at = jira_time(history.get("created"))
        if at is None:
            continue
        before = assignee
        for item in assignee_items(history):
            assignee = item_user(item, "to")
        for item in status_items(history):
            was = _waits(statuses, item.get("fromString"), item.get("from"))
            now = _waits(statuses, item.get("toString"), item.get("to"))
            if now and not was and open_start is None:
                open_start = (at, str(item.get("toString") or item.get("to")), before, assignee)
            elif was and not now and open_start is not None:
                episodes.append(Episode(open_start[0], at, *open_start[1:]))
                open_start = None
    if open_start is not None:
        episodes.append(Episode(open_start[0], None, *open_start[1:]))
    return episodes
