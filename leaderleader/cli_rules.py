"""``leaderleader rules check FILE`` and ``leaderleader rules explain ISSUE-KEY``."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import click
from sqlalchemy import Engine

from connector.shapes import is_issue_key
from rules.engine import evaluate
from rules.loader import check_rules
from rules.model import Rules, Ticket, Verdict
from service.runtime import require_rules
from service.settings import Settings


def ledger_engine(settings: Settings, instead: str = "") -> Engine:
    """The ledger's engine for reading only: a missing SQLite ledger is said, not created empty."""
    from sqlalchemy.engine import make_url

    from ledger.db import make_engine

    url = settings.effective_database_url
    path = make_url(url).database if url.startswith("sqlite") else None
    if path and path != ":memory:" and not Path(path).exists():
        raise click.ClickException(
            f"there is no ledger yet at {path}: set LEADERLEADER_HOME or DATABASE_URL to the "
            f"service's ledger{instead}"
        )
    return make_engine(url)


@click.group()
def rules() -> None:
    """Check and explain the rules file."""


@rules.command("check")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--strict", is_flag=True, help="Treat warnings as errors.")
@click.option("--against-ledger", is_flag=True,
              help="Also list people the ledger has seen waiting or holding information "
                   "who are not in this file (reads DATABASE_URL).")
def check(file: Path, strict: bool, against_ledger: bool) -> None:
    """Validate a rules file: every problem as FILE:LINE: message; exit 1 if any error."""
    if not file.exists():
        raise click.ClickException(f"{file}: no such file")
    try:
        result = check_rules(file)
    except OSError as error:
        raise click.ClickException(f"{file}: cannot read the file ({error.strerror})") from None
    for problem in result.errors:
        click.echo(f"{problem}", err=True)
    for problem in result.warnings:
        click.echo(f"{problem.source}:{problem.line}: warning: {problem.message}", err=True)
    failed = bool(result.errors) or (strict and bool(result.warnings))
    if failed:
        count = len(result.errors) + (len(result.warnings) if strict else 0)
        raise click.ClickException(f"{file}: {count} problem(s); the rules were not accepted")
    assert result.rules is not None
    # the ledger is read before anything is said, so an unusable one never follows an "ok"
    missing = _missing_people(result.rules) if against_ledger else []
    summary = (
        f"{file}: ok ({len(result.rules.people)} people, {len(result.rules.levels)} levels, "
        f"{len(result.rules.decisions)} decision rules"
    )
    if result.warnings:
        summary += f", {len(result.warnings)} warning(s)"
    click.echo(summary + ")")
    if against_ledger:
        for jira_id, episodes in missing:
            click.echo(f"not in {file}: {jira_id} ({episodes} approval wait(s) in the ledger)")
        if not missing:
            click.echo("everyone the ledger has seen is in the file")


def _missing_people(current: Rules) -> list[tuple[str, int]]:
    """Jira ids recorded as unmapped in the ledger that this rules file still does not name."""
    from sqlalchemy import select
    from sqlalchemy.exc import SQLAlchemyError

    from ledger.db import make_sessionmaker
    from ledger.models import ApprovalWait

    engine = ledger_engine(Settings.from_env())
    seen: dict[str, int] = {}
    try:
        with make_sessionmaker(engine)() as session:
            for unmapped in session.scalars(
                # unmapped waits lack a level for the approver or the holder
                select(ApprovalWait.unmapped).where(
                    ApprovalWait.approver_level.is_(None) | ApprovalWait.holder_level.is_(None)
                )
            ):
                for jira_id in unmapped or []:
                    if current.person_by_jira(jira_id) is None:
                        seen[jira_id] = seen.get(jira_id, 0) + 1
    except SQLAlchemyError as error:  # unreachable, or a database that was never migrated
        raise click.ClickException(f"cannot read the ledger ({_reason(error)})") from None
    finally:
        engine.dispose()
    return sorted(seen.items(), key=lambda item: (-item[1], item[0]))


def describe(verdict: Verdict, rules: Rules, ticket: Ticket) -> list[str]:
    """The explanation a person reads: verdict, then the numbered chain of reasoning."""

    def who(handle: str | None, level: str | None) -> str:
        if handle is None:
            return "nobody"
        person = rules.people.get(handle)
        name = f"{person.name} ({handle})" if person else handle
        return f"{name}, {level}" if level else name

    if not verdict.waiting:
        headline = "not waiting for approval: nothing to flag"
    elif verdict.flagged:
        headline = "FLAGGED: the decision waits above the level that holds the information"
    elif verdict.unmapped:
        headline = "not flagged: someone involved is not in the rules file"
    else:
        headline = "not flagged: the approver is at the right level"
    lines = [f"{ticket.key}: {ticket.summary}", f"status: {ticket.status}", f"verdict: {headline}"]
    if verdict.waiting:
        lines.append(f"approver: {who(verdict.approver, verdict.approver_level)}")
        lines.append(f"information holder: {who(verdict.holder, verdict.holder_level)}")
        if verdict.rule:
            lines.append(f"decision rule: {verdict.rule} (decided at {verdict.decision_level})")
        if verdict.decider:
            lines.append(f"suggested decider: {who(verdict.decider, verdict.decider_level)}")
        if verdict.unmapped:
            lines.append("not in the rules file: " + ", ".join(verdict.unmapped))
    lines.append("why:")
    lines.extend(f"  {n}. {reason}" for n, reason in enumerate(verdict.reasons, 1))
    return lines


def _ticket_from_jira(settings: Settings, rules_: Rules, key: str) -> Ticket:
    from connector.errors import JiraError
    from connector.history import approval_episodes
    from connector.shapes import ticket_from_issue
    from service.runtime import jira_connector

    jira = jira_connector(settings)
    try:
        jira.connect()  # a wrong or unreachable JIRA_URL is said now, in one line
        issue = jira.fetch_issue(key)
    except JiraError as error:
        raise click.ClickException(f"cannot fetch {key} from Jira: {error}") from None
    episodes = approval_episodes(issue, rules_)
    before = episodes[-1].assignee_before if episodes and episodes[-1].ended_at is None else None
    return ticket_from_issue(issue, assignee_before_approval=before)


def _ticket_from_ledger(settings: Settings, key: str) -> Ticket | None:
    from sqlalchemy import select
    from sqlalchemy.exc import SQLAlchemyError

    from ledger.db import make_sessionmaker
    from ledger.models import ApprovalWait

    engine = ledger_engine(settings, instead=", or set JIRA_URL to fetch the ticket from Jira")
    try:
        with make_sessionmaker(engine)() as session:
            wait = session.scalar(
                select(ApprovalWait)
                .where(ApprovalWait.issue_key == key)
                .order_by(ApprovalWait.started_at.desc())
                .limit(1)
            )
            return Ticket.from_dict(wait.ticket_snapshot) if wait else None
    except SQLAlchemyError as error:  # a ledger that cannot be reached or was never migrated
        raise click.ClickException(
            f"cannot read {key} from the ledger ({_reason(error)}); "
            "set JIRA_URL to fetch it from Jira"
        ) from None
    finally:
        engine.dispose()


def _reason(error: Exception) -> str:
    """A database error's first line (the driver's own words: host and port, no password)."""
    text = str(getattr(error, "orig", None) or error).strip()
    return text.splitlines()[0] if text else type(error).__name__


@rules.command("explain")
@click.argument("key")
@click.option("--rules-file", type=click.Path(dir_okay=False, path_type=Path),
              help="Rules to evaluate with (default: RULES_FILE).")
def explain(key: str, rules_file: Path | None) -> None:
    """Fetch a ticket, evaluate the rules, print why it is or is not flagged. Posts nothing."""
    settings = Settings.from_env()
    if rules_file is not None:
        settings = replace(settings, rules_file=rules_file)
    given, key = key, key.strip().upper()
    if not (is_issue_key(key) or key.isdigit()):
        raise click.ClickException(f"'{given}' is not an issue key (write it like PAY-123)")
    current = require_rules(settings)
    if settings.jira_url:
        ticket = _ticket_from_jira(settings, current, key)
        origin = f"from {settings.jira_url}"
    else:
        found = _ticket_from_ledger(settings, key)
        if found is None:
            raise click.ClickException(
                f"{key} is not in the ledger; set JIRA_URL to fetch it from Jira"
            )
        ticket, origin = found, "from the ledger (JIRA_URL is not set)"
    verdict = evaluate(current, ticket)
    click.echo(f"(ticket {origin}; rules {settings.rules_file})")
    for line in describe(verdict, current, ticket):
        click.echo(line)
