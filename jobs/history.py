"""History: import past approval waits from Jira (backfill) and replay rules over them (simulate).

Backfill posts nothing. It is safe to re-run and resumes after an interruption: a
ticket whose history was imported as of Jira's current ``updated`` is skipped without
any database work, and every wait is keyed by (ticket, start) so nothing doubles; a
wait the webhooks recorded is recognised even when its start differs by a few seconds
from the changelog's time.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from connector.history import Episode, approval_episodes
from connector.shapes import (
    approval_during,
    jira_time,
    normalise_field,
    ticket_from_issue,
    users_seen,
)
from ledger.models import ApprovalWait, TicketRecord
from ledger.people import remember_users
from ledger.waits import close_wait, open_wait, record_change, update_ticket
from rules.engine import evaluate
from rules.model import Rules, Ticket, Verdict, utc_now

#: A Jira user id as the rules file names it (Data Center keys -> usernames).
Resolve = Callable[[str | None], str | None]


def user_resolver(jira: Any, rules: Rules) -> Resolve:
    """Map Data Center user keys (``JIRAUSER10100``) in changelogs to usernames.

    Ids the rules file knows are kept; on Cloud (accountIds, no keys) nothing is asked.
    Otherwise Jira's user API is asked once per key (the connector caches the answer).
    """
    def resolve(value: str | None) -> str | None:
        if not value or rules.person_by_jira(value) is not None or jira.deployment == "cloud":
            return value
        return jira.username_for_key(value) or value

    return resolve


def _resolved(episode: Episode, resolve: Resolve | None) -> Episode:
    if resolve is None:
        return episode
    return replace(episode, assignee_before=resolve(episode.assignee_before),
                   approver_assignee=resolve(episode.approver_assignee),
                   approvers=tuple(resolve(a) or a for a in episode.approvers))


@dataclass
class BackfillCounts:
    tickets: int = 0
    skipped: int = 0
    waits: int = 0
    flagged: int = 0


def import_issue(session: Session, issue: dict[str, Any], rules: Rules,
                 resolve: Resolve | None = None) -> tuple[int, int] | None:
    """Rebuild one ticket's approval waits from its changelog; None if already up to date."""
    snapshot = ticket_from_issue(issue)
    if not snapshot.key:
        return None
    fields = issue.get("fields") or {}
    updated = jira_time(fields.get("updated")) or utc_now()
    ticket = session.scalar(select(TicketRecord).where(TicketRecord.key == snapshot.key))
    if ticket is not None and ticket.history_through is not None and ticket.history_through >= updated:
        return None
    if ticket is None:
        ticket = TicketRecord(key=snapshot.key, jira_id=str(issue.get("id") or "") or None,
                        project=snapshot.project)
        session.add(ticket)
        session.flush()
    remember_users(session, users_seen(issue), updated)
    waits = flagged = 0
    approver_field = rules.waiting.approver_field
    for found in approval_episodes(issue, rules):
        episode = _resolved(found, resolve)
        if _recorded_by_webhook(session, ticket, episode):
            continue
        record_change(session, ticket, episode.started_at, None, episode.status, enters=True)
        view = _with_jsm_approval(episode_view(snapshot, episode, approver_field),
                                  approver_field, fields, episode, resolve)
        verdict = evaluate(rules, view)
        wait = open_wait(session, ticket, episode.started_at, view, verdict, rules, source="backfill")
        if episode.ended_at is not None:
            record_change(session, ticket, episode.ended_at, episode.status, None, enters=False)
            close_wait(session, ticket, episode.ended_at)
        if wait is not None:
            waits += 1
            flagged += int(verdict.flagged)
    update_ticket(ticket, snapshot, str(issue.get("id") or "") or None, updated)
    ticket.history_through = updated
    return waits, flagged


#: How far a webhook's timestamp and the changelog's time of one transition may differ.
SAME_TRANSITION = timedelta(seconds=60)


def _recorded_by_webhook(session: Session, ticket: TicketRecord, episode: Episode) -> bool:
    """Is this episode a wait the webhooks recorded already (its start a little off)?

    A webhook's ``timestamp`` and the changelog entry's ``created`` for the same
    transition differ by a few milliseconds to seconds. The webhooks' record stands;
    only an end they missed is taken from the history.
    """
    start = episode.started_at
    known = session.scalar(
        select(ApprovalWait).where(
            ApprovalWait.ticket_id == ticket.id,
            ApprovalWait.source == "webhook",
            ApprovalWait.started_at.between(start - SAME_TRANSITION, start + SAME_TRANSITION),
        ).limit(1)
    )
    if known is None:
        return False
    if episode.ended_at is not None and known.ended_at is None:
        record_change(session, ticket, episode.ended_at, episode.status, None, enters=False)
        close_wait(session, ticket, episode.ended_at)
    return True


def _with_jsm_approval(view: Ticket, field: str | None, fields: dict[str, Any],
                       episode: Episode, resolve: Resolve | None) -> Ticket:
    """A JSM Approvals field as it stood when the wait began (its changelog says nothing)."""
    if not field:
        return view

    def ms(at: datetime) -> float:
        return at.replace(tzinfo=UTC).timestamp() * 1000

    now = normalise_field(fields.get(field))
    if episode.ended_at is None and isinstance(now, dict):
        approval: dict[str, Any] | None = now  # waiting still: on whoever has yet to answer
    else:
        approval = approval_during(fields.get(field), ms(episode.started_at),
                                   ms(episode.ended_at) if episode.ended_at else None)
    if approval is None:
        return view
    if resolve is not None:
        approval["pending"] = [resolve(a) or a for a in approval["pending"]]
    return replace(view, fields={**view.fields, field: approval})


def episode_view(snapshot: Ticket, episode: Episode, approver_field: str | None) -> Ticket:
    """The ticket as it stood when the wait began: its status, assignee and approver field then."""
    fields = dict(snapshot.fields)
    if approver_field:
        fields.pop(approver_field, None)
        if episode.approvers:
            fields[approver_field] = episode.approvers
    return replace(
        snapshot,
        status=episode.status,
        status_id=episode.status_id,
        assignee=episode.approver_assignee,  # None: it waited unassigned (not today's assignee)
        assignee_before_approval=episode.assignee_before,
        fields=fields,
    )


def backfill(
    sessions: Any, issues: Iterable[dict[str, Any]], rules: Rules, *, batch: int = 50,
    resolve: Resolve | None = None,
) -> Iterator[BackfillCounts]:
    """Import issues, committing every ``batch`` tickets; yields running counts per issue."""
    counts = BackfillCounts()
    session: Session = sessions()
    try:
        for n, issue in enumerate(issues, 1):
            result = import_issue(session, issue, rules, resolve)
            if result is None:
                counts.skipped += 1
            else:
                counts.tickets += 1
                counts.waits += result[0]
                counts.flagged += result[1]
            if n % batch == 0:
                session.commit()
            yield counts
        session.commit()
    finally:
        session.close()


def since_clause(since: str | None) -> str:
    """``90d`` -> ``updated >= -90d`` (JQL's own relative date syntax), normalised."""
    if not since:
        return ""
    return f"updated >= -{since.strip().lower()}"


#: ten thousand years: further back than any Jira, and inside what a datetime can hold
_LONGEST = timedelta(days=3_650_000)


def parse_since(value: str) -> timedelta:
    """``90d``, ``12w``, ``36h`` -> a timedelta; ValueError with a readable message otherwise."""
    units = {"w": 7 * 24, "d": 24, "h": 1}
    text = value.strip().lower()
    # ASCII digits only: str.isdigit() also takes '²' and other scripts' digits, which JQL does not
    if not re.fullmatch(r"[0-9]{1,9}[wdh]", text):
        raise ValueError(f"--since must look like 90d, 12w or 36h, not {value!r}")
    span = timedelta(hours=int(text[:-1]) * units[text[-1]])
    if span > _LONGEST:
        raise ValueError(f"--since {value.strip()} reaches back further than any Jira history")
    return span


@dataclass(frozen=True)
class Replayed:
    key: str
    started_at: datetime
    was_flagged: bool
    verdict: Verdict
    #: the verdict of a candidate rules file, when one is compared with the current rules
    candidate: Verdict | None = None
    was: Verdict | None = None  # the verdict recorded when the wait began

    @property
    def changed(self) -> bool:
        """Would the candidate say something different here: flag or not, or, both flagging,
        name another decider or rule in the comment?"""
        if self.candidate is None:
            return False
        now, then = self.verdict, self.candidate
        if now.flagged != then.flagged:
            return True
        return now.flagged and (now.decider, now.rule) != (then.decider, then.rule)


def simulate(session: Session, rules: Rules, since: datetime | None = None,
             candidate: Rules | None = None) -> list[Replayed]:
    """Run the current rules (and a candidate's, if given) over every recorded wait.

    No Jira, no posting: each wait's stored ticket snapshot is evaluated again.
    """
    query = select(ApprovalWait).order_by(ApprovalWait.started_at, ApprovalWait.id)
    if since is not None:
        query = query.where(ApprovalWait.started_at >= since)
    replayed = []
    for wait in session.scalars(query):
        if not wait.ticket_snapshot:
            continue
        ticket = Ticket.from_dict(wait.ticket_snapshot)
        verdict = evaluate(rules, ticket)
        other = evaluate(candidate, ticket) if candidate is not None else None
        was = Verdict.from_dict(wait.verdict) if wait.verdict else None
        replayed.append(Replayed(wait.issue_key, wait.started_at, wait.flagged, verdict, other,
                                 was))
    return replayed
