"""The reconciliation round: what Jira says, against what the ledger remembers.

Jira's webhooks are best-effort: an exit that never arrives leaves a wait open for
ever, an entry that never arrives leaves a wait unseen. Each round asks Jira, in
batches of at most ``KEYS_PER_SEARCH`` keys per search call:

1. which tickets sit in an approval status now (``status in (…)`` over the projects
   the ledger and the rules file know). Those the ledger holds no open wait for were
   never seen entering: their wait is opened from their changelog, like any new wait
   (a flagged one gets its comment);
2. about every open wait whose ticket that search did not return (``key in (…)``):
   those Jira shows outside approval are closed, their end inferred, at the time the
   changelog gives when it has it (else the round's time).

A ticket still waiting is returned by the first search and asked about no further,
so the round costs about one search call per 100 keys. Fields asked for: status,
assignee, ``updated`` and the approver field; the second search also brings the
latest changelog entries Jira embeds (never paged further). Tickets found waiting
unseen are read whole (``key in (…)`` again, all fields, the changelog paged only
where Jira cut it), for their verdict and the start of their wait.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from connector.client import KEYS_PER_SEARCH, JiraConnector
from connector.errors import PermanentJiraError
from connector.history import approval_episodes
from connector.shapes import jira_time, ticket_from_issue
from jobs.comments import enqueue_comment
from jobs.history import SAME_TRANSITION, episode_view
from ledger.models import ApprovalWait, TicketRecord
from ledger.waits import (
    add_comment,
    close_wait,
    open_wait,
    record_change,
    ticket_row,
    update_ticket,
    wait_began_near,
)
from rules.engine import evaluate
from rules.model import Rules, utc_now
from rules.waiting import ticket_waits
from service.metrics import add, count
from service.runtime import Runtime

log = logging.getLogger("leaderleader.reconcile")


@dataclass
class Reconciled:
    """What one round found, and what it cost."""

    open_waits: int = 0  # open waits the ledger held when the round began
    keys: int = 0  # distinct tickets Jira was asked about or answered with
    still_waiting: int = 0
    closed: int = 0
    missing: int = 0  # open waits whose ticket Jira did not return (deleted, hidden)
    opened: int = 0  # waits found in Jira that the ledger never saw enter
    flagged: int = 0
    jira_calls: int = 0
    seconds: float = 0.0
    comments: list[int] = field(default_factory=list)

    def __str__(self) -> str:
        return (f"reconciled {self.open_waits} open wait(s): {self.closed} closed, "
                f"{self.still_waiting} still waiting, {self.missing} not found in Jira; "
                f"{self.opened} wait(s) opened that no webhook reported ({self.flagged} flagged); "
                f"{self.jira_calls} Jira call(s) for {self.keys} ticket(s) in {self.seconds:.1f}s")

    def figures(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "comments"}


def _batches(items: Sequence[str], size: int = KEYS_PER_SEARCH) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _fields(rules: Rules) -> list[str]:
    extra = [rules.waiting.approver_field] if rules.waiting.approver_field else []
    return ["status", "assignee", "updated", "created", *extra]


def _quoted(values: Sequence[str]) -> str:
    return ", ".join('"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"' for v in values)


def waiting_jql(rules: Rules, projects: Sequence[str]) -> str | None:
    """``status in (…) AND project in (…)``; None when the rules name no status or no project."""
    if not rules.waiting.statuses or not projects:
        return None
    return (f"status in ({_quoted(rules.waiting.statuses)}) "
            f"AND project in ({_quoted(projects)}) ORDER BY key")


def known_projects(session: Session, rules: Rules) -> list[str]:
    """The projects the ledger has seen tickets of, and those the rules file's teams own."""
    seen = {p for p in session.scalars(select(TicketRecord.project).distinct()) if p}
    for team in rules.teams.values():
        seen.update(team.projects)
    return sorted(seen)


def left_approval_at(issue: dict[str, Any], rules: Rules, since: datetime) -> datetime | None:
    """The first exit from approval after ``since`` that the issue's changelog shows."""
    ends = [e.ended_at for e in approval_episodes(issue, rules)
            if e.ended_at is not None and e.ended_at > since]
    return min(ends, default=None)


def reconcile(runtime: Runtime) -> Reconciled:
    """One round: close the waits Jira shows ended, open those it shows unseen."""
    rules = runtime.rules.require()
    jira = runtime.jira()
    began, calls = time.monotonic(), jira.calls
    result = Reconciled()
    now = utc_now()
    with runtime.sessions() as session:
        open_keys = sorted(set(session.scalars(
            select(ApprovalWait.issue_key).join(TicketRecord)
            .where(ApprovalWait.ended_at.is_(None), TicketRecord.deleted.is_(False)))))
        result.open_waits = len(open_keys)
        jql = waiting_jql(rules, known_projects(session, rules))
        waiting_now = _waiting_in_jira(jira, rules, jql) if jql is not None else set()
        unseen = sorted(waiting_now - set(open_keys))
        for batch in _batches(unseen):
            for issue in jira.issues_by_keys(batch, ["*all"], complete=True):
                _open_unseen(session, rules, issue, result)
            session.commit()
        to_ask = [k for k in open_keys if k not in waiting_now]
        result.still_waiting = len(open_keys) - len(to_ask)
        for batch in _batches(to_ask):
            found = {str(i.get("key")): i for i in jira.issues_by_keys(batch, _fields(rules))}
            ended: dict[str, dict[str, Any]] = {}
            for key in batch:
                answer = found.get(key)
                if answer is None:
                    result.missing += 1
                elif ticket_waits(rules, ticket_from_issue(answer)):
                    result.still_waiting += 1
                else:
                    ended[key] = answer
            result.closed += _close_ended(session, rules, ended, now)
            session.commit()
        result.keys = len(set(open_keys) | waiting_now)
    result.jira_calls = jira.calls - calls
    result.seconds = round(time.monotonic() - began, 3)
    for comment_id in result.comments:
        enqueue_comment(runtime, comment_id)
    _record(runtime, result)
    return result


def _waiting_in_jira(jira: JiraConnector, rules: Rules, jql: str) -> set[str]:
    """The keys of the tickets Jira shows in approval now (empty if Jira refuses the query).

    A status the site does not have (a typo in the rules file) makes Jira refuse the
    whole query: the round then goes on with the open waits alone, asked by key.
    """
    waiting: set[str] = set()
    try:
        for issue in jira.search_issues(jql, fields=",".join(_fields(rules)), changelog=False):
            key = str(issue.get("key") or "")
            if key and ticket_waits(rules, ticket_from_issue(issue)):
                waiting.add(key)  # (the search is eventually consistent: trust the fields)
    except PermanentJiraError as error:
        if error.status != 400:
            raise
        log.warning("reconcile.search_refused", extra={"jql": jql, "reason": str(error)})
        return set()
    return waiting


def _close_ended(session: Session, rules: Rules, answers: dict[str, dict[str, Any]],
                 now: datetime) -> int:
    """Close these tickets' open waits at the exit each changelog shows (else now); how many.

    The open waits of the whole batch, with their tickets, come in one query (not two
    per ticket): a round that finds many waits ended costs statements per wait closed only.
    They are closed in ticket key order, the order a drain batch takes tickets in.
    """
    if not answers:
        return 0
    rows = session.execute(
        select(ApprovalWait, TicketRecord).join(TicketRecord)
        .where(TicketRecord.key.in_(list(answers)), ApprovalWait.ended_at.is_(None))
        .order_by(TicketRecord.key, ApprovalWait.started_at)).all()
    closed = 0
    for wait, ticket in rows:
        issue = answers[ticket.key]
        status = (issue.get("fields") or {}).get("status") or {}
        seen = left_approval_at(issue, rules, wait.started_at)
        at = seen or max(now, wait.started_at)
        when = "its changelog's time" if seen else "the time of the round"
        evidence = f"reconciliation: Jira has the ticket in '{status.get('name')}' (ended at {when})"
        record_change(session, ticket, at, wait.status, status.get("name"), enters=False)
        if close_wait(session, ticket, at, evidence=evidence) is not None:
            closed += 1
    return closed


def _open_unseen(session: Session, rules: Rules, issue: dict[str, Any], result: Reconciled) -> None:
    """Open the wait of a ticket in approval that no webhook reported entering.

    The ticket is read whole: its fields decide the verdict, its changelog dates the entry.
    """
    episodes = approval_episodes(issue, rules)
    current = episodes[-1] if episodes and episodes[-1].ended_at is None else None
    if current is None:
        return
    snapshot = ticket_from_issue(issue)
    issue_id = str(issue.get("id") or "") or None
    ticket = ticket_row(session, snapshot, issue_id)
    if wait_began_near(session, ticket, current.started_at, SAME_TRANSITION):
        return  # the ledger knows this stay (ended by an inference Jira now contradicts)
    updated = jira_time((issue.get("fields") or {}).get("updated")) or current.started_at
    update_ticket(ticket, snapshot, issue_id, updated)
    view = episode_view(snapshot, current, rules.waiting.approver_field)
    verdict = evaluate(rules, view)
    record_change(session, ticket, current.started_at, None, current.status, enters=True)
    wait = open_wait(session, ticket, current.started_at, view, verdict, rules, source="reconcile")
    if wait is None:
        return
    result.opened += 1
    if verdict.flagged and wait.ended_at is None:
        result.flagged += 1
        result.comments.append(add_comment(session, wait, "flag", utc_now()).id)


def _record(runtime: Runtime, result: Reconciled) -> None:
    """Log the round's findings and cost; count them in /metrics."""
    count(runtime.redis, "reconcile", "rounds")
    for label in ("keys", "jira_calls", "closed", "opened", "flagged", "missing"):
        add(runtime.redis, "reconcile", label, getattr(result, label))
    add(runtime.redis, "reconcile", "seconds", result.seconds)
    log.info("reconcile.round", extra=result.figures())
