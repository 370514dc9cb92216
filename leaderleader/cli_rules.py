"""``leaderleader rules check FILE`` and ``leaderleader rules explain ISSUE-KEY``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

import click

from connector.shapes import is_issue_key
from rules.engine import evaluate
from rules.loader import CheckResult, check_rules
from rules.model import Rules, Ticket, Verdict
from service.runtime import require_rules
from service.settings import Settings


def checked(file: Path) -> CheckResult:
    """The file's check, its errors already printed (FILE:LINE: message, on stderr)."""
    if not file.exists():
        raise click.ClickException(f"{file}: no such file")
    try:
        result = check_rules(file)
    except OSError as error:
        raise click.ClickException(f"{file}: cannot read the file ({error.strerror})") from None
    for problem in result.errors:
        click.echo(f"{problem}", err=True)
    return result


@click.group()
def rules() -> None:
    """Check and explain the rules file."""


@rules.command("check")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--strict", is_flag=True, help="Treat warnings as errors.")
@click.option("--against-ledger", is_flag=True,
              help="Also list people the ledger has seen waiting or holding information "
                   "who are not in this file, and approval statuses it has never seen "
                   "(reads DATABASE_URL).")
@click.option("--against-jira", is_flag=True,
              help="Also check the statuses, the approver field and every person's Jira id "
                   "against Jira itself (reads JIRA_URL and its credentials).")
def check(file: Path, strict: bool, against_ledger: bool, against_jira: bool) -> None:
    """Validate a rules file: every problem as FILE:LINE: message; exit 1 if any error."""
    result = checked(file)
    for problem in result.warnings:
        click.echo(f"{problem.source}:{problem.line}: warning: {problem.message}", err=True)
    failed = bool(result.errors) or (strict and bool(result.warnings))
    if failed:
        count = len(result.errors) + (len(result.warnings) if strict else 0)
        raise click.ClickException(f"{file}: {count} problem(s); the rules were not accepted")
    assert result.rules is not None
    # the ledger and Jira are read before anything is said, so an unusable one never
    # follows an "ok"
    findings: list[str] = []
    missing: list[str] = []
    if against_ledger:
        missing, more = _against_ledger(file, result.rules)
        findings += more
    if against_jira:
        findings += _against_jira(file, result.rules)
    summary = (
        f"{file}: ok ({len(result.rules.people)} people, {len(result.rules.levels)} levels, "
        f"{len(result.rules.decisions)} decision rules"
    )
    if result.warnings:
        summary += f", {len(result.warnings)} warning(s)"
    click.echo(summary + ")")
    for line in missing:
        click.echo(line)
    for finding in findings:
        click.echo(f"{file}: warning: {finding}", err=True)
    if strict and findings:
        raise click.ClickException(f"{file}: {len(findings)} warning(s) against "
                                   "the ledger or Jira; the rules were not accepted")


def _against_ledger(file: Path, current: Rules) -> tuple[list[str], list[str]]:
    """Who the ledger has seen that the file misses (lines to print), and the warnings
    about configured statuses the ledger has never seen."""
    from leaderleader.lookups import ledger, missing_people, names_of, unseen_statuses

    settings = Settings.from_env()
    with ledger(settings, "approval waits") as session:
        missing = missing_people(session, current)
        statuses = unseen_statuses(session, current)
    names = names_of(settings, [jira_id for jira_id, _ in missing])
    lines = [f"not in {file}: {names[jira_id] + ' (' + jira_id + ')' if jira_id in names else jira_id}"
             f" ({episodes} approval wait(s) in the ledger)" for jira_id, episodes in missing]
    return lines or ["everyone the ledger has seen is in the file"], statuses


def _against_jira(file: Path, current: Rules) -> list[str]:
    from connector.errors import JiraError
    from leaderleader.lookups import jira_findings, reach_jira

    try:
        jira = reach_jira(Settings.from_env(), "--against-jira")
        findings = jira_findings(jira, current)
    except JiraError as error:
        raise click.ClickException(f"cannot check against Jira: {error}") from None
    if not findings:
        click.echo(f"statuses, approver field and people in {file} all exist in Jira")
    return findings


def _headline(verdict: Verdict, rules: Rules) -> str:
    """The verdict in a few words: why it is flagged, or the first reason it is not."""
    if not verdict.waiting:
        return "not waiting for approval: nothing to flag"
    if verdict.flagged:
        return "FLAGGED: the decision waits above the level that holds the information"
    if verdict.approver is None:
        return "not flagged: nobody is named to approve it"
    if verdict.unmapped:
        return "not flagged: someone involved is not in the rules file"
    if verdict.rule is None:
        return "not flagged: no decision rule matches"
    levels = (verdict.approver_level, verdict.decision_level)
    if not all(level in rules.levels for level in levels):
        return "not flagged: a level here is not in the rules' levels"
    gap = rules.rank(levels[0]) - rules.rank(levels[1])  # type: ignore[arg-type]
    if gap <= 0:
        return "not flagged: the approver is at the right level"
    if gap <= verdict.tolerance:
        return "not flagged: the approver is above the decision level, within the tolerance"
    return "not flagged: nobody below the approver can decide"


def describe(verdict: Verdict, rules: Rules, ticket: Ticket,
             names: Mapping[str, str] | None = None) -> list[str]:
    """The explanation a person reads: verdict, then the numbered chain of reasoning.

    ``names``: display names Jira sent for people missing from the rules file.
    """
    names = names or {}

    def shown(jira_id: str) -> str:
        return f"{names[jira_id]} ({jira_id})" if jira_id in names else jira_id

    def who(handle: str | None, level: str | None) -> str:
        if handle is None:
            return "nobody"
        person = rules.people.get(handle)
        name = f"{person.name} ({handle})" if person else f"{shown(handle)}, not in the rules file"
        return f"{name}, {level}" if level else name

    lines = [f"{ticket.key}: {ticket.summary}", f"status: {ticket.status}",
             f"verdict: {_headline(verdict, rules)}"]
    if verdict.waiting:
        lines.append("approver: " + (who(verdict.approver, verdict.approver_level)
                                     if verdict.approver else "nobody is named (unassigned)"))
        lines.append(f"information holder: {who(verdict.holder, verdict.holder_level)}")
        if verdict.holder_team:
            lines.append(f"owning team: {verdict.holder_team}")
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
            lines.append("not in the rules file: " + ", ".join(shown(u) for u in verdict.unmapped))
    reasons = list(verdict.reasons)
    for jira_id in verdict.unmapped:
        if jira_id in names:
            reasons = [r.replace(jira_id, shown(jira_id)) for r in reasons]
    lines.append("why:")
    lines.extend(f"  {n}. {reason}" for n, reason in enumerate(reasons, 1))
    return lines


def _ticket_from_jira(settings: Settings, rules_: Rules, key: str) -> tuple[Ticket, dict[str, str]]:
    """The ticket as Jira has it now, and the display names of the users in it."""
    from connector.errors import JiraError
    from connector.history import approval_episodes
    from connector.shapes import ticket_from_issue, users_seen
    from jobs.history import user_resolver
    from leaderleader.lookups import reach_jira

    try:
        jira = reach_jira(settings, "rules explain")
        issue = jira.fetch_issue(key)
        episodes = approval_episodes(issue, rules_)
        before = episodes[-1].assignee_before if episodes and episodes[-1].ended_at is None else None
        before = user_resolver(jira, rules_)(before)  # a Data Center key, as its username
    except JiraError as error:
        raise click.ClickException(f"cannot fetch {key} from Jira: {error}") from None
    names = {str(u["jira_id"]): str(u["display_name"]) for u in users_seen(issue)
             if u.get("display_name")}
    return ticket_from_issue(issue, assignee_before_approval=before), names


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
    from leaderleader.lookups import ledger, names_of, ticket_in_ledger

    names: dict[str, str] = {}
    if settings.jira_url:
        ticket, names = _ticket_from_jira(settings, current, key)
        origin = f"from {settings.jira_url}"
    else:
        with ledger(settings, key, ", or set JIRA_URL to fetch the ticket from Jira") as session:
            found = ticket_in_ledger(session, key)
        if found is None:
            raise click.ClickException(
                f"{key} is not in the ledger; set JIRA_URL to fetch it from Jira"
            )
        ticket, origin = found, "from the ledger, its latest known state (JIRA_URL is not set)"
    verdict = evaluate(current, ticket)
    people = [verdict.approver or "", verdict.holder or "", *verdict.unmapped]
    names = {**names_of(settings, [p for p in people if p not in names]), **names}
    click.echo(f"(ticket {origin}; rules {settings.rules_file})")
    for line in describe(verdict, current, ticket, names):
        click.echo(line)

