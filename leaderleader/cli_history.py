"""``leaderleader backfill``, ``simulate`` and ``rules suggest``: the ledger's past."""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import click

from leaderleader.cli_rules import rules as rules_group
from leaderleader.cli_rules import rules_or_exit, settings_or_exit
from rules.model import utc_now
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
    from jobs.history import parse_since, since_clause
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
            progress = run_backfill(sessions, issues, rules)
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
    flagged = [r for r in replayed if r.verdict.flagged]
    changed = sum(1 for r in replayed if r.verdict.flagged != r.was_flagged)
    for r in replayed if show_all else flagged:
        mark = "FLAG" if r.verdict.flagged else "ok  "
        decider = r.verdict.decider or "-"
        click.echo(
            f"{mark} {r.key:<10} {r.started_at:%Y-%m-%d %H:%M}  waits on {r.verdict.approver} "
            f"({r.verdict.approver_level}); rule {r.verdict.rule!r}; suggested {decider}"
        )
    click.echo(
        f"{len(replayed)} wait(s): {len(flagged)} would be flagged by these rules; "
        f"{changed} verdict(s) differ from when they were recorded"
    )


@rules_group.command("suggest")
@click.option("--since", default="180d", show_default=True,
              help="Read the waits that began in this window: 180d, 26w, 36h.")
@click.option("--rules", "rules_file", type=click.Path(dir_okay=False, path_type=Path),
              help="The rules file to propose edits to (default: RULES_FILE).")
def suggest(since: str, rules_file: Path | None) -> None:
    """Propose rules-file edits from the ledger, as a unified diff. Never edits the file."""
    from jobs.history import parse_since
    from ledger.suggest import suggestions
    from rules.suggestions import suggestion_diff

    settings = settings_or_exit()
    if rules_file is not None:
        settings = replace(settings, rules_file=rules_file)
    try:
        span = parse_since(since)
    except ValueError as error:
        raise click.ClickException(str(error)) from None
    current = rules_or_exit(settings)
    text = Path(settings.rules_file).read_text(encoding="utf-8")
    now = utc_now()
    with _sessions(settings) as sessions, sessions() as session:
        found = suggestions(session, current, now - span, now)
    diff = suggestion_diff(text, str(settings.rules_file), found)
    if not diff:
        click.echo(f"no suggestions: the ledger's waits since {since} ago give no evidence "
                   f"to change {settings.rules_file}", err=True)
        return
    click.echo(diff, nl=False)
    click.echo(f"{len(found)} suggestion(s); {settings.rules_file} was not changed", err=True)
