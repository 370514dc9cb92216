"""``leaderleader backfill`` and ``leaderleader simulate``: the ledger's past."""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import contextmanager

import click

from leaderleader.cli_rules import rules_or_exit, settings_or_exit
from rules.model import Rules, Verdict, utc_now
from service.settings import Settings


@contextmanager
def _sessions(settings: Settings):  # type: ignore[no-untyped-def]
    """A migrated ledger for the length of one command; its connections closed after."""
    from ledger.db import make_engine, make_sessionmaker, upgrade

    engine = make_engine(settings.effective_database_url)
    try:
        upgrade(engine)
        yield make_sessionmaker(engine)
    finally:
        engine.dispose()


@click.command()
@click.option("--jql", required=True, help='Which tickets, e.g. "project = PAY".')
@click.option("--since", default=None, help="Only tickets updated in this window: 90d, 12w, 36h.")
@click.option("--page-size", default=100, show_default=True, type=click.IntRange(1, 1000))
def backfill(jql: str, since: str | None, page_size: int) -> None:
    """Import approval history from Jira into the ledger. Posts nothing; safe to re-run."""
    from connector.errors import JiraError
    from jobs.history import backfill as run_backfill
    from jobs.history import parse_since, since_clause, user_resolver
    from service.runtime import jira_connector

    settings = settings_or_exit()
    if not settings.jira_url:
        raise click.ClickException("backfill needs JIRA_URL (and credentials) to read from Jira")
    if since is not None:
        try:
            parse_since(since)
        except ValueError as error:
            raise click.ClickException(str(error)) from None
    rules = rules_or_exit(settings)
    clause = since_clause(since)
    query = f"({jql}) AND {clause}" if clause else jql
    jira = jira_connector(settings)
    counts = None
    try:
        with _sessions(settings) as sessions:
            issues = jira.search_issues(f"{query} ORDER BY created ASC", page_size=page_size)
            progress = run_backfill(sessions, issues, rules, resolve=user_resolver(jira, rules))
            with click.progressbar(progress, label="importing", show_pos=True,
                                   item_show_func=lambda c: f"{c.waits} waits" if c else None) as bar:
                for counts in bar:  # noqa: B007 - the last counts are the totals
                    pass
    except JiraError as error:
        raise click.ClickException(f"Jira refused the backfill: {error}") from None
    if counts is None:
        click.echo("no tickets matched")
        return
    click.echo(
        f"imported {counts.tickets} ticket(s) ({counts.skipped} already up to date), "
        f"{counts.waits} approval wait(s), {counts.flagged} that would have been flagged; "
        f"{jira.calls} Jira call(s)"
    )


@click.command()
@click.option("--since", default=None, help="Only waits that began in this window: 90d, 12w, 36h.")
@click.option("--all", "show_all", is_flag=True, help="List every wait, not only the flagged.")
def simulate(since: str | None, show_all: bool) -> None:
    """Run the current rules over the ledger's history: what would have been flagged."""
    from jobs.history import parse_since
    from jobs.history import simulate as replay
    from ledger.people import display_names

    settings = settings_or_exit()
    start = None
    if since is not None:
        try:
            start = utc_now() - parse_since(since)
        except ValueError as error:
            raise click.ClickException(str(error)) from None
    rules = rules_or_exit(settings)
    with _sessions(settings) as sessions, sessions() as session:
        replayed = replay(session, rules, start)
        people = {p for r in replayed for p in (r.verdict.approver, *r.verdict.unmapped) if p}
        names = display_names(session, people)
    flagged = [r for r in replayed if r.verdict.flagged]
    differ = [r for r in replayed if r.verdict.flagged != r.was_flagged]
    for r in replayed if show_all else flagged:
        click.echo(f"{_mark(r.verdict):<11} {r.key:<10} {r.started_at:%Y-%m-%d %H:%M}  "
                   + _line(r.verdict, rules, names))
    click.echo(
        f"{len(replayed)} wait(s): {len(flagged)} would be flagged by these rules; "
        f"{len(differ)} verdict(s) differ from when they were recorded"
    )
    for r in differ:
        then, now = ("flagged" if f else "not flagged" for f in (r.was_flagged, r.verdict.flagged))
        click.echo(f"  {r.key:<10} {r.started_at:%Y-%m-%d %H:%M}  was {then}, now {now} "
                   f"({_mark(r.verdict)}: {_line(r.verdict, rules, names)})")


def _mark(verdict: Verdict) -> str:
    """One word for a replayed verdict; an unmapped or unassigned wait is not "ok"."""
    if verdict.flagged:
        return "FLAG"
    if not verdict.waiting:
        return "not-waiting"
    if verdict.approver is None:
        return "no-approver"
    if verdict.unmapped:
        return "unmapped"
    return "ok"


def _line(verdict: Verdict, rules: Rules, names: Mapping[str, str]) -> str:
    """Who it waits on, the rule, the suggestion: names, never a bare Python None."""
    def who(handle: str | None, level: str | None) -> str:
        person = rules.people.get(handle or "")
        if person is not None:
            return f"{person.name} ({level or person.level})"
        if handle is None:
            return "nobody"
        shown = f"{names[handle]} ({handle})" if handle in names else handle
        return f"{shown}, not in the rules file"

    if not verdict.waiting:
        return "waits for no approval"
    waits_on = who(verdict.approver, verdict.approver_level) if verdict.approver else (
        "nobody (no approver named, unassigned)")
    rule = f"rule {verdict.rule!r}" if verdict.rule else "no decision rule matches"
    suggested = (f"suggested {who(verdict.decider, verdict.decider_level)}" if verdict.decider
                 else "no one suggested")
    missing = [m for m in verdict.unmapped if m != verdict.approver]
    extra = "; not in the rules file: " + ", ".join(
        f"{names[m]} ({m})" if m in names else m for m in missing) if missing else ""
    return f"waits on {waits_on}; {rule}; {suggested}{extra}"
