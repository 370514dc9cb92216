"""``leaderleader backfill``, ``simulate`` and ``rules suggest``: the ledger's past."""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import click

from leaderleader.cli_rules import checked
from leaderleader.cli_rules import rules as rules_group
from rules.model import Rules, Verdict, utc_now
from service.runtime import require_rules
from service.settings import Settings

if TYPE_CHECKING:
    from jobs.history import Replayed


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
    from leaderleader.lookups import reach_jira

    settings = Settings.from_env()
    if since is not None:
        try:
            parse_since(since)
        except ValueError as error:
            raise click.ClickException(str(error)) from None
    rules = require_rules(settings)
    clause = since_clause(since)
    query = f"({jql}) AND {clause}" if clause else jql
    jira = reach_jira(settings, "backfill")
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
        if getattr(error, "status", None) is None:
            raise  # Jira gave no answer at all: the error says where and why, in one line
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
@click.option("--rules", "candidate_file", type=click.Path(dir_okay=False, path_type=Path),
              help="A candidate rules file: compare its verdicts with the current rules'.")
def simulate(since: str | None, show_all: bool, candidate_file: Path | None) -> None:
    """Run the current rules over the ledger's history: what would have been flagged.

    With --rules CANDIDATE.yaml: how that edit would change the verdicts, before it is merged.
    """
    from jobs.history import parse_since
    from jobs.history import simulate as replay
    from ledger.people import display_names

    settings = Settings.from_env()
    start = None
    if since is not None:
        try:
            start = utc_now() - parse_since(since)
        except ValueError as error:
            raise click.ClickException(str(error)) from None
    rules = require_rules(settings)
    candidate = _candidate_or_exit(candidate_file) if candidate_file is not None else None
    with _sessions(settings) as sessions, sessions() as session:
        replayed = replay(session, rules, start, candidate)
        people = {p for r in replayed for p in (r.verdict.approver, *r.verdict.unmapped) if p}
        names = display_names(session, people)
    if candidate is not None:
        _compare(replayed, candidate_file)
        return
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


def _candidate_or_exit(path: Path) -> Rules:
    """The candidate rules, or its problems (FILE:LINE: message) and one closing line."""
    result = checked(path)
    if result.rules is None:
        raise click.ClickException(
            f"{path}: {len(result.errors)} problem(s); the candidate rules were not accepted")
    return result.rules


def _compare(replayed: list[Replayed], candidate_file: Path | None) -> None:
    """The tickets whose verdict the candidate changes, then the summary."""

    def said(verdict: Verdict) -> str:
        if not verdict.flagged:
            return "not flagged"
        return f"flagged (rule {verdict.rule!r}, suggested {verdict.decider or '-'})"

    changed = [r for r in replayed if r.changed]
    for r in changed:
        assert r.candidate is not None
        click.echo(f"{r.key:<10} {r.started_at:%Y-%m-%d %H:%M}  {said(r.verdict)} -> "
                   f"{said(r.candidate)}")
    now = sum(1 for r in replayed if r.verdict.flagged)
    then = sum(1 for r in replayed if r.candidate is not None and r.candidate.flagged)
    click.echo(f"{len(replayed)} wait(s): flagged now {now}; flagged with {candidate_file} "
               f"{then}; changed {len(changed)}")



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

    settings = Settings.from_env()
    if rules_file is not None:
        settings = replace(settings, rules_file=rules_file)
    try:
        span = parse_since(since)
    except ValueError as error:
        raise click.ClickException(str(error)) from None
    current = require_rules(settings)
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
