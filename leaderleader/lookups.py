"""What ``rules check``, ``rules explain`` and ``simulate`` read from the ledger and from Jira.

Each function answers one question in plain values, so the commands only print. Ledger
problems are raised as ``click.ClickException`` with one readable line.
"""

from __future__ import annotations

import difflib
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from sqlalchemy import Engine, make_url, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from ledger.db import make_engine, make_sessionmaker
from ledger.models import ApprovalWait, StatusChange, TicketRecord
from ledger.people import display_names
from rules.model import Rules, Ticket
from service.settings import Settings

if TYPE_CHECKING:
    from connector.client import JiraConnector


@contextmanager
def ledger(settings: Settings, doing: str, hint: str = "") -> Iterator[Session]:
    """A session on the ledger for one question; any database failure as one line."""
    engine = ledger_engine(settings, hint)
    try:
        with make_sessionmaker(engine)() as session:
            yield session
    except SQLAlchemyError as error:  # a ledger that cannot be reached or was never migrated
        raise click.ClickException(f"cannot read {doing} from the ledger "
                                   f"({_reason(error)}){hint}") from None
    finally:
        engine.dispose()


def ledger_engine(settings: Settings, instead: str = "") -> Engine:
    """The ledger's engine for reading only: a missing SQLite ledger is said, not created empty."""
    url = settings.effective_database_url
    path = make_url(url).database if url.startswith("sqlite") else None
    if path and path != ":memory:" and not Path(path).exists():
        raise click.ClickException(
            f"there is no ledger yet at {path}: set LEADERLEADER_HOME or DATABASE_URL to the "
            f"service's ledger{instead}"
        )
    return make_engine(url)


def reach_jira(settings: Settings, command: str) -> JiraConnector:
    """A connector that has already reached Jira, for a command that reads from it.

    Connecting first means a missing, wrong or unreachable ``JIRA_URL`` is said at once,
    in one line, instead of after the command has read the ledger or after the
    ``jira`` library's own retries on the command's first real call.
    """
    from service.runtime import jira_connector

    if not settings.jira_url:
        raise click.ClickException(f"{command} needs JIRA_URL (and credentials) to read from Jira")
    jira = jira_connector(settings)
    jira.connect()
    return jira


def _reason(error: Exception) -> str:
    """A database error's first line (the driver's own words: host and port, no password)."""
    text = str(getattr(error, "orig", None) or error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def names_of(settings: Settings, jira_ids: Collection[str]) -> dict[str, str]:
    """Display names the ledger has seen for these Jira ids; none when there is no ledger."""
    wanted = [i for i in jira_ids if i]
    if not wanted:
        return {}
    try:
        with ledger(settings, "names") as session:
            return display_names(session, wanted)
    except click.ClickException:
        return {}  # names only make the text friendlier: never fail for want of them


def ticket_in_ledger(session: Session, key: str) -> Ticket | None:
    """The ticket's latest known state (waiting or not), with who had it before approval."""
    column = TicketRecord.jira_id if key.isdigit() else TicketRecord.key
    record = session.scalar(select(TicketRecord).where(column == key).limit(1))
    if record is None:
        return None
    wait = session.scalar(select(ApprovalWait).where(ApprovalWait.ticket_id == record.id)
                          .order_by(ApprovalWait.started_at.desc()).limit(1))
    before = None
    if wait is not None and wait.ended_at is None:
        before = (wait.ticket_snapshot or {}).get("assignee_before_approval")
    return Ticket.from_dict({
        "key": record.key, "project": record.project, "issue_type": record.issue_type,
        "status": record.status, "status_id": record.status_id, "summary": record.summary,
        "labels": record.labels or [], "components": record.components or [],
        "priority": record.priority, "assignee": record.assignee, "reporter": record.reporter,
        "assignee_before_approval": before, "fields": record.fields or {},
    })


def missing_people(session: Session, rules: Rules) -> list[tuple[str, int]]:
    """Jira ids recorded as unmapped in the ledger that these rules still do not name."""
    seen: dict[str, int] = {}
    for unmapped in session.scalars(
        # unmapped waits lack a level for the approver or the holder
        select(ApprovalWait.unmapped).where(
            ApprovalWait.approver_level.is_(None) | ApprovalWait.holder_level.is_(None)
        )
    ):
        for jira_id in unmapped or []:
            if rules.person_by_jira(jira_id) is None:
                seen[jira_id] = seen.get(jira_id, 0) + 1
    return sorted(seen.items(), key=lambda item: (-item[1], item[0]))


def suggestion(word: str, choices: Collection[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.5)
    if not close:
        lowered = {c.lower(): c for c in choices}
        close = [lowered[c] for c in difflib.get_close_matches(word.lower(), list(lowered), n=1,
                                                               cutoff=0.5)]
    return f"; did you mean '{close[0]}'?" if close else ""


def statuses_seen(session: Session) -> tuple[set[str], set[str]]:
    """Status names and ids the ledger has seen on tickets and in transitions."""
    names: set[str] = set()
    ids: set[str] = set()
    for name, status_id in session.execute(select(TicketRecord.status, TicketRecord.status_id)
                                           .distinct()):
        names.add(name or "")
        ids.add(status_id or "")
    for frm, to in session.execute(select(StatusChange.from_status, StatusChange.to_status)
                                   .distinct()):
        names.update((frm or "", to or ""))
    names.update(s or "" for s in session.scalars(select(ApprovalWait.status).distinct()))
    return names - {""}, ids - {""}


def unseen_statuses(session: Session, rules: Rules) -> list[str]:
    """Warnings for configured approval statuses no ticket in the ledger was ever in."""
    names, ids = statuses_seen(session)
    if not names and not ids:
        return []  # an empty ledger has seen nothing: no reason to doubt anything
    known = {n.strip().lower() for n in names} | {i.strip().lower() for i in ids}
    return [f"status '{status}' in waiting_for_approval.statuses was never seen in the ledger"
            + suggestion(status, sorted(names))
            for status in rules.waiting.statuses if status.strip().lower() not in known]


def jira_findings(jira: Any, rules: Rules) -> list[str]:
    """Where the rules name something Jira does not have: statuses, the field, people."""
    findings: list[str] = []
    statuses = jira.statuses()
    names = sorted({str(s.get("name")) for s in statuses if s.get("name")})
    known = {str(s.get(k) or "").strip().lower() for s in statuses for k in ("name", "id")}
    for status in rules.waiting.statuses:
        if status.strip().lower() not in known:
            findings.append(f"status '{status}' in waiting_for_approval.statuses is not a status "
                            "in Jira" + suggestion(status, names))
    field = rules.waiting.approver_field
    if field:
        fields = jira.fields()
        by_id = {str(f.get("id")): f for f in fields}
        if field not in by_id:
            by_name = {str(f.get("name")): str(f.get("id")) for f in fields if f.get("name")}
            # an approver field holds users (or JSM approvals): suggest among those first
            people = [i for i, f in by_id.items() if _holds_people(f)]
            close = (difflib.get_close_matches(field, people, n=1)
                     or difflib.get_close_matches(field, list(by_id), n=1))
            hint = (f"; did you mean '{close[0]}' ({by_id[close[0]].get('name')})?" if close else
                    f"; it is the name of {by_name[field]}: write that id" if field in by_name
                    else "")
            findings.append(f"approver_field '{field}' is not a field in Jira{hint}")
    for handle, person in rules.people.items():
        if jira.find_user(person.jira) is None:
            findings.append(f"people.{handle}: Jira has no user '{person.jira}'")
    return findings


def _holds_people(field: dict[str, Any]) -> bool:
    """A user picker (single or multi) or JSM's Approvals field, by its schema."""
    schema = field.get("schema")
    if not isinstance(schema, dict):
        return False
    return schema.get("type") in ("user", "sd-approvals") or schema.get("items") == "user"
