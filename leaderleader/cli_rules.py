"""``leaderleader rules check FILE`` and ``leaderleader rules explain ISSUE-KEY``."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import click

from connector.shapes import is_issue_key
from rules.engine import evaluate
from rules.loader import RulesError, check_rules, load_rules
from rules.model import Rules, Ticket, Verdict
from service.settings import ConfigError, Settings

#: a Jira issue key (PROJECT-123) or issue id; anything else is refused before it reaches a URL


def settings_or_exit() -> Settings:
    try:
        return Settings.from_env()
    except ConfigError as error:
        raise click.ClickException(f"configuration: {error}") from None


def rules_or_exit(settings: Settings) -> Rules:
    """The rules in ``settings.rules_file``, or one readable error."""
    try:
        return load_rules(settings.rules_file)
    except RulesError as error:
        raise click.ClickException(f"the rules file is invalid:\n{error}") from None
    except OSError as error:
        raise click.ClickException(f"{settings.rules_file}: {error.strerror}") from None


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
    summary = (
        f"{file}: ok ({len(result.rules.people)} people, {len(result.rules.levels)} levels, "
        f"{len(result.rules.decisions)} decision rules"
    )
    if result.warnings:
        summary += f", {len(result.warnings)} warning(s)"
    click.echo(summary + ")")
    if against_ledger:
        missing = _missing_people(result.rules)
        for jira_id, episodes in missing:
            click.echo(f"not in {file}: {jira_id} ({episodes} approval wait(s) in the ledger)")
        if not missing:
            click.echo("everyone the ledger has seen is in the file")


def _missing_people(current: Rules) -> list[tuple[str, int]]:
    """Jira ids recorded as unmapped in the ledger that this rules file still does not name."""
    from sqlalchemy import select

    from ledger.db import make_engine, make_sessionmaker
    from ledger.models import ApprovalWait

    settings = settings_or_exit()
    engine = make_engine(settings.effective_database_url)
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
    except Exception as error:  # noqa: BLE001 - an unreachable or empty ledger, said in one line
        raise click.ClickException(f"cannot read the ledger: {type(error).__name__}") from None
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
        if verdict.purpose:
            lines.append(f"purpose: {verdict.purpose}")
        if verdict.require:
            gap = (f"competence gap: nobody at the information level holds it; nearest who "
                   f"does: {who(verdict.competent, None)}" if verdict.competence_gap else "held")
            lines.append(f"requires competence: {verdict.require} ({gap})")
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
        issue = jira.fetch_issue(key)
    except JiraError as error:
        raise click.ClickException(f"cannot fetch {key} from Jira: {error}") from None
    episodes = approval_episodes(issue, rules_)
    before = episodes[-1].assignee_before if episodes and episodes[-1].ended_at is None else None
    return ticket_from_issue(issue, assignee_before_approval=before)


def _ticket_from_ledger(settings: Settings, key: str) -> Ticket | None:
    from sqlalchemy import select
    from sqlalchemy.exc import SQLAlchemyError

    from ledger.db import make_engine, make_sessionmaker
    from ledger.models import ApprovalWait

    engine = make_engine(settings.effective_database_url)
    try:
        with make_sessionmaker(engine)() as session:
            wait = session.scalar(
                select(ApprovalWait)
                .where(ApprovalWait.issue_key == key)
                .order_by(ApprovalWait.started_at.desc())
                .limit(1)
            )
            return Ticket.from_dict(wait.ticket_snapshot) if wait else None
    except SQLAlchemyError as error:  # no ledger yet, or one that cannot be reached
        raise click.ClickException(
            f"cannot read {key} from the ledger ({type(error).__name__}); "
            "set JIRA_URL to fetch it from Jira"
        ) from None
    finally:
        engine.dispose()


@rules.command("explain")
@click.argument("key")
@click.option("--rules-file", type=click.Path(dir_okay=False, path_type=Path),
              help="Rules to evaluate with (default: RULES_FILE).")
def explain(key: str, rules_file: Path | None) -> None:
    """Fetch a ticket, evaluate the rules, print why it is or is not flagged. Posts nothing."""
    settings = settings_or_exit()
    if rules_file is not None:
        settings = replace(settings, rules_file=rules_file)
    given, key = key, key.strip().upper()
    if not (is_issue_key(key) or key.isdigit()):
        raise click.ClickException(f"'{given}' is not an issue key (write it like PAY-123)")
    current = rules_or_exit(settings)
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

