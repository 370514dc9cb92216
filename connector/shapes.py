"""Jira's JSON shapes translated into the engine's plain types (pure, no I/O).

Works for webhook ``issue`` objects and REST issues alike (both carry ``fields``).
Tolerant everywhere: Jira sends ``null`` for most fields, omits others, and shapes
users differently on Cloud (``accountId``) and Server/Data Center (``name``/``key``).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from rules.model import Ticket

#: Jira issue keys: a project key (letters, digits, underscores) and a number. Keys end
#: up in Jira API paths, so anything else is refused where it comes in.
ISSUE_KEY = re.compile(r"[A-Za-z][A-Za-z0-9_]*-[0-9]+")


def is_issue_key(text: str) -> bool:
    return bool(ISSUE_KEY.fullmatch(text))


def user_id(user: Any) -> str | None:
    """Cloud accountId, else the Server/DC username, else its key."""
    if not isinstance(user, dict):
        return None
    for attribute in ("accountId", "name", "key"):
        value = user.get(attribute)
        if isinstance(value, str) and value:
            return value
    return None


def _is_user(value: dict[str, Any]) -> bool:
    return any(k in value for k in ("accountId", "emailAddress", "displayName")) or (
        "name" in value and "key" in value
    )


def seen_user(value: Any) -> dict[str, str | None] | None:
    """A user object as the ledger keeps it: id, Data Center key, display name, email."""
    if not isinstance(value, dict) or not any(
            k in value for k in ("accountId", "emailAddress", "displayName")):
        return None  # a project also has a name and a key: only users carry these
    jira_id = user_id(value)
    if jira_id is None:
        return None

    def text(attribute: str) -> str | None:
        found = value.get(attribute)
        return found if isinstance(found, str) and found else None

    return {"jira_id": jira_id, "key": text("key") if "accountId" not in value else None,
            "display_name": text("displayName"), "email": text("emailAddress")}


def users_seen(payload: Any, _depth: int = 0) -> list[dict[str, str | None]]:
    """Every user object anywhere in a payload or issue (fields, changelog authors, approvals)."""
    found: list[dict[str, str | None]] = []
    if _depth > 12:
        return found
    if isinstance(payload, dict):
        user = seen_user(payload)
        if user is not None:
            return [user]
        for value in payload.values():
            found.extend(users_seen(value, _depth + 1))
    elif isinstance(payload, list):
        for value in payload:
            found.extend(users_seen(value, _depth + 1))
    return found


#: Jira Service Management's decisions on an approval and on each approver's part.
PENDING = "pending"


def _is_approval(value: Any) -> bool:
    return isinstance(value, dict) and isinstance(value.get("approvers"), list) and (
        "finalDecision" in value)


def _approval_time(value: Any) -> float | None:
    """``createdDate``/``completedDate``: epoch ms, ``{"epochMillis": …}`` or an ISO text."""
    if isinstance(value, dict):
        value = value.get("epochMillis", value.get("iso8601"))
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str) and value:

        parsed = jira_time(value)
        return parsed.timestamp() * 1000 if parsed else None
    return None


def normalise_approvals(approvals: list[Any]) -> dict[str, Any]:
    """JSM's Approvals field -> the current approval: its decision and who has yet to answer.

    The current approval is the latest one still pending (by ``createdDate``, else the
    field's order); when none is pending, the latest one, whose final decision stands.
    """
    steps = [a for a in approvals if _is_approval(a)]
    order = sorted(range(len(steps)), key=lambda i: (_approval_time(steps[i].get("createdDate"))
                                                     or 0.0, i))
    pending = [i for i in order if str(steps[i].get("finalDecision")).lower() == PENDING]
    current = steps[pending[-1] if pending else order[-1]]
    people = [a for a in current["approvers"] if isinstance(a, dict)]
    return {
        "approval": str(current.get("name") or current.get("id") or ""),
        "decision": str(current.get("finalDecision") or PENDING).lower(),
        "approvers": [u for u in (user_id(a.get("approver")) for a in people) if u],
        "pending": [u for u in (user_id(a.get("approver")) for a in people
                                if str(a.get("approverDecision") or PENDING).lower() == PENDING) if u],
    }


def approval_during(value: Any, start_ms: float, end_ms: float | None) -> dict[str, Any] | None:
    """For a past wait: the JSM approval it waited on, as it stood when the wait began.

    The latest approval created by the wait's end (a minute's slack for clocks) and not
    completed before it began; every approver of it was then still to answer.
    """
    if not isinstance(value, list):
        return None
    slack = 60_000.0
    steps = [a for a in value if _is_approval(a)
             and (end_ms is None or (_approval_time(a.get("createdDate")) or 0.0) <= end_ms + slack)
             and (_approval_time(a.get("completedDate")) or start_ms) >= start_ms - slack]
    if not steps:
        return None
    current = max(steps, key=lambda a: _approval_time(a.get("createdDate")) or 0.0)
    approval = normalise_approvals([current])
    return {**approval, "decision": PENDING, "pending": approval["approvers"]}


def normalise_field(value: Any) -> Any:
    """User -> id, list of users -> tuple of ids, option -> its value, numbers stay numbers.

    JSM's Approvals field (a list of approval objects) -> ``normalise_approvals``.
    """
    if isinstance(value, list) and value and any(_is_approval(v) for v in value):
        return normalise_approvals(value)
    if isinstance(value, dict):
        if _is_user(value):
            return user_id(value)
        for attribute in ("value", "name", "key", "id"):
            if attribute in value and isinstance(value[attribute], (str, int, float)):
                return value[attribute]
        return None
    if isinstance(value, list):
        return tuple(normalise_field(v) for v in value if v is not None)
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return None


def _name(value: Any, attribute: str = "name") -> str | None:
    if isinstance(value, dict):
        found = value.get(attribute)
        return str(found) if isinstance(found, (str, int)) else None
    return None


def _strings(values: Any, attribute: str | None = None) -> tuple[str, ...]:
    if not isinstance(values, list):
        return ()
    out = []
    for value in values:
        if attribute is None and isinstance(value, str):
            out.append(value)
        elif attribute is not None and isinstance(value, dict):
            found = value.get(attribute)
            if isinstance(found, str):
                out.append(found)
    return tuple(out)


def ticket_from_issue(issue: Any, *, assignee_before_approval: str | None = None) -> Ticket:
    """A Ticket from a webhook or REST issue; never raises on missing or odd fields."""
    issue = issue if isinstance(issue, dict) else {}
    fields = issue.get("fields") if isinstance(issue.get("fields"), dict) else {}
    key = issue.get("key") if isinstance(issue.get("key"), str) else ""
    project = _name(fields.get("project"), "key") or (key.rsplit("-", 1)[0] if "-" in key else "")
    status = fields.get("status")
    custom = {
        name: normalise_field(value)
        for name, value in fields.items()
        if name.startswith("customfield_") and value is not None
    }
    summary = fields.get("summary")
    return Ticket(
        key=key,
        project=project,
        issue_type=_name(fields.get("issuetype")),
        status=_name(status),
        status_id=_name(status, "id"),
        summary=summary if isinstance(summary, str) else "",
        labels=_strings(fields.get("labels")),
        components=_strings(fields.get("components"), "name"),
        priority=_name(fields.get("priority")),
        assignee=user_id(fields.get("assignee")),
        reporter=user_id(fields.get("reporter")),
        assignee_before_approval=assignee_before_approval,
        fields=custom,
    )


def _items(changelog: Any, field_id: str) -> list[dict[str, Any]]:
    if not isinstance(changelog, dict) or not isinstance(changelog.get("items"), list):
        return []
    found = []
    for item in changelog["items"]:
        if not isinstance(item, dict):
            continue
        # Older Server/DC items have no fieldId: only a display name in "field".
        given = item.get("fieldId") or str(item.get("field") or "").lower()
        if given == field_id:
            found.append(item)
    return found


def status_items(changelog: Any) -> list[dict[str, Any]]:
    return _items(changelog, "status")


def assignee_items(changelog: Any) -> list[dict[str, Any]]:
    return _items(changelog, "assignee")


def item_user(item: dict[str, Any], side: str) -> str | None:
    """The user id on one side ("from"/"to") of an assignee item (Cloud tmp* ids first)."""
    tmp = item.get("tmpFromAccountId" if side == "from" else "tmpToAccountId")
    value = tmp or item.get(side)
    return str(value) if value else None


def changelog_users(raw: Any) -> tuple[str, ...]:
    """A user-picker item's ``from``/``to``: one id, or a multi-picker's ``[id1, id2]``."""
    if not isinstance(raw, str) or not raw.strip():
        return ()
    return tuple(u for u in (p.strip() for p in re.split(r"[,\s]+", raw.strip().strip("[]"))) if u)


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
