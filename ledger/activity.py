"""The comment activity log: every comment posted, rendered in dry-run, skipped or failed.

What a pilot is reviewed with (``leaderleader comments`` and ``/reports/activity``):
one row per comment with its ticket, the decision rule, the time and, for a comment
that was skipped or failed, the reason that was recorded.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ledger.models import ApprovalWait, Comment

#: every state a comment row can be in (see jobs/comments.py)
STATES = ("pending", "posted", "dry_run", "skipped", "failed")


@dataclass(frozen=True)
class CommentActivity:
    id: int
    at: datetime  # when it was posted or rendered; when it was queued if neither happened
    key: str
    summary: str
    kind: str  # "flag" or "reminder"
    state: str
    rule: str | None
    decision_level: str | None
    approver: str | None
    approver_level: str | None
    decider: str | None
    reason: str | None  # why it was skipped or failed (Jira's answer), or the last retry's cause
    body: str
    jira_comment_id: str | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "at": self.at.isoformat(timespec="seconds"), "key": self.key,
            "summary": self.summary, "kind": self.kind, "state": self.state, "rule": self.rule,
            "decision_level": self.decision_level, "approver": self.approver,
            "approver_level": self.approver_level, "decider": self.decider,
            "reason": self.reason, "body": self.body, "jira_comment_id": self.jira_comment_id,
        }


def comment_activity(
    session: Session,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    state: str | None = None,
    key: str | None = None,
    limit: int | None = None,
) -> list[CommentActivity]:
    """Comments newest first, filtered by time (``since`` inclusive, ``until`` exclusive),
    state and issue key (case-insensitive)."""
    at = func.coalesce(Comment.posted_at, Comment.created_at)
    query = (
        select(Comment, ApprovalWait, at.label("at"))
        .join(ApprovalWait, Comment.wait_id == ApprovalWait.id)
        .order_by(at.desc(), Comment.id.desc())
    )
    if since is not None:
        query = query.where(at >= since)
    if until is not None:
        query = query.where(at < until)
    if state is not None:
        query = query.where(Comment.state == state)
    if key is not None:
        query = query.where(ApprovalWait.issue_key == key.strip().upper())
    if limit is not None:
        query = query.limit(limit)
    rows = []
    for comment, wait, when in session.execute(query):
        snapshot = wait.ticket_snapshot or {}
        rows.append(CommentActivity(
            id=comment.id, at=when, key=wait.issue_key,
            summary=str(snapshot.get("summary") or ""), kind=comment.kind, state=comment.state,
            rule=wait.decision_rule, decision_level=wait.decision_level,
            approver=wait.approver, approver_level=wait.approver_level, decider=wait.decider,
            reason=comment.error, body=comment.body, jira_comment_id=comment.jira_comment_id,
        ))
    return rows
