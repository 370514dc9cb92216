"""Posting the one comment a flagged wait gets (and its one reminder).

Exactly once, whatever happens: the ledger has one row per (wait, kind); a Redis
lock keeps two workers from posting the same row at once; and before posting we
look on the ticket for a comment carrying this row's marker, because a worker may
have died after Jira accepted the comment but before the ledger recorded it.
"""

from __future__ import annotations

import logging
from datetime import date, datetime, timedelta

from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from connector.client import JiraConnector
from connector.errors import PermanentJiraError, TransientJiraError
from connector.shapes import jira_time, ticket_from_issue
from ledger.models import ApprovalWait, Comment, Intent
from ledger.waits import add_comment, close_wait
from rules.comment import render_comment, render_reminder
from rules.model import Rules, Ticket, Verdict, proceed_on_date, utc_now
from rules.waiting import ticket_waits
from service.metrics import count
from service.runtime import Runtime, current_runtime

log = logging.getLogger("leaderleader.jobs")

DONE = {"posted", "dry_run", "skipped", "failed"}


def proceed_on(started: datetime, rules: Rules, now: datetime | None = None) -> date:
    """The date an intent proposes to go ahead: after the reminder delay, on a weekday.

    Counted from when the comment is written (a late or replayed delivery still
    proposes a date in the future).
    """
    return proceed_on_date(max(started, now or utc_now()), rules.flag.remind_after)


def render_for(comment: Comment, rules: Rules, mention_style: str) -> str:
    wait = comment.wait
    verdict = Verdict.from_dict(wait.verdict)
    ticket = Ticket.from_dict(wait.ticket_snapshot)
    render = render_reminder if comment.kind == "reminder" else render_comment
    return render(
        rules,
        verdict,
        ticket,
        mention_style=mention_style,  # type: ignore[arg-type]
        proceed_on=proceed_on(wait.started_at, rules),
    )


def _job_id(comment_id: int) -> str:
    return f"leaderleader-comment-{comment_id}"


def enqueue_comment(runtime: Runtime, comment_id: int) -> Job:
    """Queue the posting of one comment; the job id is derived from the row, so at most one waits."""
    return runtime.queue.enqueue(
        post_comment,
        comment_id,
        job_id=_job_id(comment_id),
        retry=runtime.retry(),
        result_ttl=3600,
        failure_ttl=30 * 24 * 3600,
        description=f"comment {comment_id}",
    )


def post_comment(comment_id: int) -> str:
    """rq job: render and post (or, in dry-run, record) one comment; returns its final state."""
    runtime = current_runtime()
    lock = runtime.redis.lock(f"leaderleader:lock:comment:{comment_id}",
                              timeout=runtime.settings.comment_lock_seconds)
    if not lock.acquire(blocking=True, blocking_timeout=30):
        raise TransientJiraError(f"comment {comment_id} is being posted by another worker")
    try:
        state = _post_locked(runtime, comment_id)
        count(runtime.redis, "comments", state)
        return state
    finally:
        try:
            lock.release()
        except Exception:  # noqa: BLE001 - an expired lock is not worth failing the job
            log.warning("comment.lock.expired", extra={"comment": comment_id})


def _post_locked(runtime: Runtime, comment_id: int) -> str:
    rules = runtime.rules.require()
    with runtime.sessions() as session:
        comment = session.get(Comment, comment_id)
        if comment is None:
            return "missing"
        if comment.state in DONE:
            return comment.state
        wait = comment.wait
        extra = {"issue": wait.issue_key, "comment": comment_id, "kind": comment.kind}
        if wait.ended_at is not None:
            comment.state = "skipped"
            comment.error = "the ticket left approval before the comment was posted"
            session.commit()
            log.info("comment.skipped", extra=extra)
            return "skipped"
        if comment.kind == "flag" and holder_declared_intent(session, wait):
            comment.state = "skipped"
            comment.error = "the information holder already declared an intent"
            session.commit()
            log.info("comment.skipped", extra={**extra, "reason": comment.error})
            return "skipped"
        dry_run = runtime.dry_run()
        comment.body = render_for(comment, rules, runtime.mention_style())
        comment.attempts += 1
        if dry_run:  # no Jira to look at: the ledger's word is all there is
            comment.state = "dry_run"
            comment.posted_at = utc_now()
            session.commit()
            log.info("comment.dry_run", extra={**extra, "body": comment.body})
            return "dry_run"
        session.commit()
        jira = runtime.jira()
        try:
            moved_on = jira_says_not_waiting(jira, rules, wait)
            if moved_on is not None:
                # its exit never reached us: the wait ends here, inferred
                reason, since = moved_on
                close_wait(session, wait.ticket, since, evidence=f"before posting, {reason}")
                comment.state = "skipped"
                comment.error = reason
                session.commit()
                log.info("comment.skipped", extra={**extra, "reason": reason})
                return "skipped"
            try:
                jira_id = jira.find_marked_comment(wait.issue_key, comment.marker)
            except PermanentJiraError as error:
                # Cannot list comments (a proxy or a restricted account): the POST below
                # still gives Jira's authoritative answer for this ticket.
                log.warning("comment.lookup_failed", extra={**extra, "reason": str(error)})
                jira_id = None
            if jira_id is None:
                jira_id = jira.post_comment(wait.issue_key, comment.body, comment.marker)
            else:
                log.info("comment.found_earlier", extra=extra)
        except PermanentJiraError as error:
            comment.state = "failed"
            comment.error = str(error)
            session.commit()
            log.error("comment.failed", extra={**extra, "reason": str(error)})
            return "failed"
        except TransientJiraError as error:
            comment.error = str(error)
            session.commit()
            log.warning("comment.retry", extra={**extra, "reason": str(error)})
            raise
        comment.state = "posted"
        comment.jira_comment_id = jira_id
        comment.posted_at = utc_now()
        comment.error = None
        session.commit()
        log.info("comment.posted", extra=extra)
        return "posted"


def holder_declared_intent(session: Session, wait: ApprovalWait) -> bool:
    """Has the information holder said "I intend to …" on the ticket since the wait began?"""
    if not wait.holder:
        return False
    return session.scalar(
        select(Intent.id).where(
            Intent.issue_key == wait.issue_key,
            Intent.declared_at >= wait.started_at,
            or_(Intent.author_handle == wait.holder, Intent.author == wait.holder),
        ).limit(1)
    ) is not None


def jira_says_not_waiting(
    jira: JiraConnector, rules: Rules, wait: ApprovalWait
) -> tuple[str, datetime] | None:
    """Look before posting: one GET of the ticket. Why not to post and since when, or None.

    Since when: Jira's ``updated`` (no earlier than the exit), else now.
    """
    fields = ["status", "updated"] + ([rules.waiting.approver_field] if rules.waiting.approver_field else [])
    issue = jira.issue_state(wait.issue_key, fields)
    view = ticket_from_issue(issue)
    if ticket_waits(rules, view):
        return None
    updated = jira_time((issue.get("fields") or {}).get("updated"))
    since = updated if updated is not None and updated > wait.started_at else utc_now()
    return f"Jira says the ticket is no longer waiting (status '{view.status}')", since


def queue_reminders(runtime: Runtime, now: datetime | None = None) -> int:
    """Give each flagged wait still open past ``remind_after``, with no intent declared, its one reminder."""
    rules = runtime.rules.require()
    if rules.flag.remind_after is None:
        return 0
    now = now or utc_now()
    due = now - rules.flag.remind_after
    queued = []
    with runtime.sessions() as session:
        waits = session.scalars(
            select(ApprovalWait).where(
                ApprovalWait.flagged.is_(True),
                ApprovalWait.ended_at.is_(None),
                ApprovalWait.started_at <= due,
                ApprovalWait.source.in_(("webhook", "reconcile")),
                ApprovalWait.first_intent_at.is_(None),  # someone said "I intend to": moving
                ~ApprovalWait.comments.any(Comment.kind == "reminder"),
            )
        ).all()
        for wait in waits:
            queued.append(add_comment(session, wait, "reminder", now).id)
        session.commit()
    for comment_id in queued:
        enqueue_comment(runtime, comment_id)
    return len(queued)


#: a pending comment gets a new job once its own is gone; after rq gave up on a job
#: (its retries spent), the next try waits this long
GIVEN_UP_PAUSE = timedelta(minutes=5)
_ALIVE = {JobStatus.QUEUED, JobStatus.STARTED, JobStatus.SCHEDULED, JobStatus.DEFERRED}


def _job_alive(runtime: Runtime, comment_id: int, now: datetime) -> bool:
    """Does the comment's job still stand to run (queued, running, waiting for its retry)?"""
    try:
        job = Job.fetch(_job_id(comment_id), connection=runtime.redis)
    except NoSuchJobError:
        return False
    status = job.get_status(refresh=False)
    if status in _ALIVE:
        return True
    ended = job.ended_at.replace(tzinfo=None) if job.ended_at else None
    return status == JobStatus.FAILED and ended is not None and now - ended < GIVEN_UP_PAUSE


def requeue_pending(runtime: Runtime, older_than: timedelta = timedelta(seconds=30)) -> int:
    """Give a new job to each comment left pending without one.

    A worker can die between the ledger and the queue, and a round that wrote reminders
    can lose Redis before queuing them: the rows are pending with no job. A comment
    whose job is still queued, running or scheduled for a retry is left alone (its
    backoff holds); the job is idempotent, so a repeat would be harmless anyway.
    """
    now = utc_now()
    with runtime.sessions() as session:
        ids = session.scalars(
            select(Comment.id).where(Comment.state == "pending",
                                     Comment.created_at <= now - older_than)
        ).all()
    orphans = [comment_id for comment_id in ids if not _job_alive(runtime, comment_id, now)]
    for comment_id in orphans:
        enqueue_comment(runtime, comment_id)
    return len(orphans)
