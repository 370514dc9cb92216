"""Jira webhook payloads turned into typed events, once, at the edge.

Pure (no Flask, no I/O), so the intake can validate with it and the worker can
rebuild the same event from the stored body. Tolerant of the shapes Jira really
sends: Cloud and Server/Data Center users, changelog items without ``fieldId``,
comment events with a cut-down issue or none at all, ``null`` everywhere.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from connector.payload import PayloadError
from connector.shapes import is_issue_key, jira_time, ticket_from_issue, user_id
from rules.model import Ticket, utc_now

ISSUE_EVENTS = frozenset({"jira:issue_created", "jira:issue_updated"})
COMMENT_EVENTS = frozenset({"comment_created", "comment_updated"})
DELETE_EVENTS = frozenset({"jira:issue_deleted"})
#: What we call a workflow post-function's body ("Trigger a webhook" on a transition):
#: Jira gives it no ``webhookEvent``, only a top-level ``transition`` object.
WORKFLOW_TRANSITION = "workflow_transition"
LINK_EVENTS = frozenset({"issuelink_created"})
#: Known events we deliberately do nothing with (acknowledged so Jira does not retry).
IGNORED_EVENTS = frozenset(
    {
        "comment_deleted",
        "worklog_created",
        "worklog_updated",
        "worklog_deleted",
        "issuelink_deleted",
        "attachment_created",
        "attachment_deleted",
        "jira:version_created",
        "jira:version_released",
        "jira:version_updated",
        "project_created",
        "project_updated",
        "sprint_started",
        "sprint_closed",
        "board_updated",
        "user_created",
        "user_updated",
    }
)

_COMMENT_SELF = re.compile(r"/issue/(?P<issue>[^/]+)/comment/")
MAX_KEY_LENGTH = 64
MAX_ID_LENGTH = 64
#: A JSON escape of a NUL or of a surrogate: text no database column can hold as sent.
@dataclass(frozen=True)
class FieldChange:
    """One changelog item: a field moving from one value to another."""

    field_id: str
    from_id: str | None
    from_string: str | None
    to_id: str | None
    to_string: str | None


@dataclass(frozen=True)
class IssueChanged:
    event: str
    at: datetime
    ticket: Ticket
    issue_id: str | None
    actor: str | None
    changes: tuple[FieldChange, ...] = ()
    comment: CommentPosted | None = None  # Server's "issue_commented" carries one
    #: the change's natural key: the same transition sent again under another delivery
    #: id (two webhooks on one site) carries the same key
    transition_key: str | None = None
    #: ``statusCategory.key`` of the ticket's status now: new / indeterminate / done
    status_category: str | None = None

    @property
    def key(self) -> str:
        return self.ticket.key


@dataclass(frozen=True)
class CommentPosted:
    event: str
    at: datetime
    comment_id: str
    body: str
    author: str | None
    key: str | None = None
    issue_id: str | None = None
    ticket: Ticket | None = None


@dataclass(frozen=True)
class IssueDeleted:
    """An issue deleted in Jira: its open wait ends there."""

    event: str
    at: datetime
    key: str


@dataclass(frozen=True)
class LinkCreated:
    """Two issues linked (``issuelink_created``): Jira sends ids and the link type only."""

    event: str
    at: datetime
    source_id: str
    destination_id: str
    type_name: str = ""
    outward: str = ""  # how the source relates to the destination ("reverts")
    inward: str = ""  # how the destination relates to the source ("is reverted by")
    key: str | None = None


@dataclass(frozen=True)
class Ignored:
    """A known event we do nothing with: acknowledged, so Jira does not retry it."""

    event: str
    at: datetime
    reason: str
    key: str | None = field(default=None)


Event = IssueChanged | CommentPosted | IssueDeleted | LinkCreated | Ignored


def _object(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise PayloadError(f"{what} must be a JSON object")
    return value


def _identifier(value: Any, what: str) -> str | None:
    text = _text(value)
    if text is not None and len(text) > MAX_ID_LENGTH:
        raise PayloadError(f"{what} is longer than {MAX_ID_LENGTH} characters")
    return text


def _issue_key(issue: dict[str, Any]) -> str:
    key = issue.get("key")
    if not isinstance(key, str) or not key:
        raise PayloadError("'issue.key' is missing or not a string")
    if len(key) > MAX_KEY_LENGTH or not is_issue_key(key):
        raise PayloadError("'issue.key' is not a Jira issue key (like PAY-123)")
    return key


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, (str, int, float)) and not isinstance(value, bool):
        return str(value)
    return None


def event_time(payload: dict[str, Any], fallback: datetime | None = None) -> datetime:
    """The payload's own time (epoch ms) as naive UTC; Jira orders events by it, so do we.

    A body without ``timestamp`` is not placed at its arrival time (a late or replayed
    delivery would then sit in front of history the ledger already holds): it takes the
    time Jira itself gives the change, the issue's ``fields.updated`` (for a comment,
    the comment's ``updated``/``created``), and only with none of these the arrival time.
    """
    raw = payload.get("timestamp")
    if raw is None:
        return _own_time(payload) or fallback or utc_now()
    if isinstance(raw, bool) or not isinstance(raw, (int, float)):
        raise PayloadError("'timestamp' must be a number (epoch milliseconds)")
    try:
        return datetime.fromtimestamp(raw / 1000, UTC).replace(tzinfo=None)
    except (OverflowError, OSError, ValueError):
        raise PayloadError("'timestamp' is out of range") from None


def _own_time(payload: dict[str, Any]) -> datetime | None:
    comment = payload.get("comment")
    if isinstance(comment, dict):
        found = jira_time(comment.get("updated")) or jira_time(comment.get("created"))
        if found is not None:
            return found
    issue = payload.get("issue")
    fields = issue.get("fields") if isinstance(issue, dict) else None
    return jira_time(fields.get("updated")) if isinstance(fields, dict) else None


def field_changes(changelog: Any) -> tuple[FieldChange, ...]:
    """Changelog items keyed by field id; older Server items have only a display name."""
    if changelog is None:
        return ()
    changelog = _object(changelog, "'changelog'")
    items = changelog.get("items") or []
    if not isinstance(items, list):
        raise PayloadError("'changelog.items' must be a list")
    changes = []
    for item in items:
        if not isinstance(item, dict):
            raise PayloadError("'changelog.items' entries must be objects")
        field_id = _text(item.get("fieldId")) or (_text(item.get("field")) or "").lower()
        if not field_id:
            continue
        from_id = _text(item.get("tmpFromAccountId")) or _text(item.get("from"))
        to_id = _text(item.get("tmpToAccountId")) or _text(item.get("to"))
        changes.append(
            FieldChange(
                field_id=field_id,
                from_id=from_id,
                from_string=_text(item.get("fromString")),
                to_id=to_id,
                to_string=_text(item.get("toString")),
            )
        )
    return tuple(changes)


def _comment(event: str, at: datetime, raw: Any, issue: Any) -> CommentPosted:
    comment = _object(raw, "'comment'")
    comment_id = _identifier(comment.get("id"), "'comment.id'")
    if not comment_id:
        raise PayloadError("'comment.id' is missing")
    body = comment.get("body")
    if not isinstance(body, str):
        body = ""  # a v3 (ADF) body is not wiki text; it cannot be an intent we can read
    author = comment.get("author") if isinstance(comment.get("author"), dict) else None
    issue_id = None
    key = None
    ticket = None
    if isinstance(issue, dict):
        issue_id = _identifier(issue.get("id"), "'issue.id'")
        if issue.get("key") is not None:
            key = _issue_key(issue)
            ticket = ticket_from_issue(issue)
    if issue_id is None:
        # Server/DC comment events may omit the issue: its id is in the comment's URL.
        match = _COMMENT_SELF.search(_text(comment.get("self")) or "")
        issue_id = _identifier(match.group("issue"), "'comment.self'") if match else None
    return CommentPosted(
        event=event,
        at=at,
        comment_id=comment_id,
        body=body,
        author=user_id(author),
        key=key,
        issue_id=issue_id,
        ticket=ticket,
    )


def _link(event: str, at: datetime, raw: Any) -> LinkCreated:
    link = _object(raw, "'issueLink'")
    source = _identifier(link.get("sourceIssueId"), "'issueLink.sourceIssueId'")
    destination = _identifier(link.get("destinationIssueId"), "'issueLink.destinationIssueId'")
    if not source or not destination:
        raise PayloadError("'issueLink' must name its sourceIssueId and destinationIssueId")
    kind: dict[str, Any] = link["issueLinkType"] if isinstance(link.get("issueLinkType"),
                                                                dict) else {}
    return LinkCreated(event=event, at=at, source_id=source, destination_id=destination,
                       type_name=_text(kind.get("name")) or "",
                       outward=_text(kind.get("outwardName")) or "",
                       inward=_text(kind.get("inwardName")) or "")


def parse_event(payload: Any, *, received_at: datetime | None = None) -> Event:
    """Turn a decoded webhook body into an event, or raise PayloadError saying why not."""
    payload = _object(payload, "the body")
    name = payload.get("webhookEvent")
    if name is None and isinstance(payload.get("transition"), dict):
        return workflow_transition(payload, received_at)
    if not isinstance(name, str) or not name:
        raise PayloadError("'webhookEvent' is missing or not a string")
    at = event_time(payload, received_at)

    if name in ISSUE_EVENTS:
        issue = _object(payload.get("issue"), "'issue'")
        _issue_key(issue)
        if issue.get("fields") is not None and not isinstance(issue.get("fields"), dict):
            raise PayloadError("'issue.fields' must be an object")
        comment = None
        # Server/DC reports comments inside jira:issue_updated too, a deleted one included:
        # that one is not something said on the ticket any more.
        deleted = payload.get("issue_event_type_name") == "issue_comment_deleted"
        if payload.get("comment") is not None and not deleted:
            comment = _comment("comment_created", at, payload["comment"], issue)
        status = (issue.get("fields") or {}).get("status")
        category = status.get("statusCategory") if isinstance(status, dict) else None
        return IssueChanged(
            status_category=_text(category.get("key")) if isinstance(category, dict) else None,
            event=name,
            at=at,
            ticket=ticket_from_issue(issue),
            issue_id=_identifier(issue.get("id"), "'issue.id'"),
            actor=user_id(payload.get("user") if isinstance(payload.get("user"), dict) else None),
            changes=field_changes(payload.get("changelog")),
            comment=comment,
            transition_key=_changelog_key(issue, payload.get("changelog")),
        )
    if name in COMMENT_EVENTS:
        return _comment(name, at, payload.get("comment"), payload.get("issue"))
    if name in DELETE_EVENTS:
        issue = _object(payload.get("issue"), "'issue'")
        return IssueDeleted(event=name, at=at, key=_issue_key(issue))
    if name in LINK_EVENTS:
        return _link(name, at, payload.get("issueLink"))
    reason = "known event, not used" if name in IGNORED_EVENTS else "unknown event"
    issue = payload.get("issue")
    key = _text(issue.get("key")) if isinstance(issue, dict) else None
    return Ignored(event=name, at=at, reason=reason, key=key)


def _changelog_key(issue: dict[str, Any], changelog: Any) -> str | None:
    """``changelog:KEY:ID``: Jira's changelog id names one change, whoever delivers it."""
    if not isinstance(changelog, dict) or not changelog.get("items"):
        return None
    changelog_id = _identifier(changelog.get("id"), "'changelog.id'")
    return f"changelog:{issue['key']}:{changelog_id}" if changelog_id else None


def workflow_transition(payload: dict[str, Any], received_at: datetime | None = None) -> IssueChanged:
    """A workflow post-function's body as the status change it reports.

    Jira fires it during the transition, so ``issue.fields.status`` may still show the
    status being left: the status is ``transition.to_status`` (a name; the body carries
    no status ids). Its natural key is the issue, the transition and the time.
    """
    transition = _object(payload.get("transition"), "'transition'")
    issue = _object(payload.get("issue"), "'issue'")
    key = _issue_key(issue)
    if issue.get("fields") is not None and not isinstance(issue.get("fields"), dict):
        raise PayloadError("'issue.fields' must be an object")
    to_status = transition.get("to_status")
    if not isinstance(to_status, str) or not to_status.strip():
        raise PayloadError("'transition.to_status' is missing or not a string")
    from_status = _text(transition.get("from_status"))
    at = event_time(payload, received_at)
    snapshot = ticket_from_issue(issue)
    from_id = snapshot.status_id if snapshot.status == from_status else None
    to_id = snapshot.status_id if snapshot.status == to_status else None
    change = FieldChange("status", from_id, from_status, to_id, to_status)
    raw_time = payload.get("timestamp")
    when = str(int(raw_time)) if isinstance(raw_time, (int, float)) else at.isoformat()
    transition_id = _identifier(transition.get("transitionId"), "'transition.transitionId'")
    workflow = _identifier(transition.get("workflowId"), "'transition.workflowId'")
    return IssueChanged(
        event=WORKFLOW_TRANSITION,
        at=at,
        ticket=replace(snapshot, status=to_status, status_id=to_id),
        issue_id=_identifier(issue.get("id"), "'issue.id'"),
        actor=user_id(payload.get("user") if isinstance(payload.get("user"), dict) else None),
        changes=(change,),
        transition_key=f"transition:{key}:{workflow or ''}:{transition_id or to_status}:{when}",
    )
