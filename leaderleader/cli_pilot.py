"""Running a pilot: ``comments`` (review what was posted or rendered), ``rules init`` and
``rules import-people`` (draft a rules file from Jira and from an HR export)."""

from __future__ import annotations

import json
import re
from datetime import datetime
from pathlib import Path

import click

from leaderleader.cli_history import _sessions
from leaderleader.lookups import reach_jira
from ledger.activity import STATES
from rules.model import utc_now
from service.settings import Settings


def parse_when(option: str, value: str) -> datetime:
    """``90d``/``12w``/``36h`` back from now, or an ISO date or datetime (UTC)."""
    from jobs.history import parse_since
    from webhooks.reports import BadFilter, parse_instant

    text = value.strip()
    if re.fullmatch(r"[0-9]+[A-Za-z]", text):
        try:
            return utc_now() - parse_since(text)
        except ValueError as error:
            raise click.ClickException(str(error).replace("--since", option)) from None
    try:
        return parse_instant(option, text)
    except BadFilter:
        raise click.ClickException(
            f"{option} must look like 90d, 12w, 36h or a date like 2026-11-01, not {value!r}"
        ) from None


@click.command()
@click.option("--since", default=None, help="Only comments from this window (90d, 12w, 36h) "
                                            "or from this date (2026-11-01) on.")
@click.option("--state", type=click.Choice(STATES), default=None,
              help="Only comments in this state.")
@click.option("--key", default=None, help="Only comments on this ticket (PAY-123).")
@click.option("--limit", default=None, type=click.IntRange(min=1), help="At most this many.")
@click.option("--json", "as_json", is_flag=True, help="One JSON document instead of text.")
@click.option("--body", "with_body", is_flag=True, help="Also print each comment's text.")
def comments(since: str | None, state: str | None, key: str | None, limit: int | None,
             as_json: bool, with_body: bool) -> None:
    """Every comment posted, rendered in dry-run, skipped (and why) or failed (and Jira's reason)."""
    from connector.shapes import is_issue_key
    from ledger.activity import comment_activity

    start = parse_when("--since", since) if since is not None else None
    if key is not None:
        given, key = key, key.strip().upper()
        if not is_issue_key(key):
            raise click.ClickException(f"--key: '{given}' is not an issue key (write it like PAY-123)")
    settings = Settings.from_env()
    with _sessions(settings) as sessions, sessions() as session:
        rows = comment_activity(session, since=start, state=state, key=key, limit=limit)
    if as_json:
        click.echo(json.dumps({"comments": [r.to_dict() for r in rows], "count": len(rows)},
                              ensure_ascii=False, indent=2))
        return
    for row in rows:
        kind = "" if row.kind == "flag" else f" ({row.kind})"
        rule = f"rule {row.rule!r}" if row.rule else "no rule"
        line = (f"{row.at:%Y-%m-%d %H:%M}  {row.state:<8} {row.key:<10} {rule}; waits on "
                f"{row.approver or '-'}, suggested {row.decider or '-'}{kind}")
        if row.reason and row.state != "posted" and row.state != "dry_run":
            line += f": {row.reason}"
        click.echo(line)
        if with_body and row.body:
            click.echo("    " + row.body.replace("\n", "\n    "))
    counts = {s: sum(1 for r in rows if r.state == s) for s in STATES}
    described = ", ".join(f"{n} {s.replace('_', '-')}" for s, n in counts.items() if n)
    click.echo(f"{len(rows)} comment(s)" + (f": {described}" if described else ""))


def _write(out: Path | None, text: str, force: bool) -> None:
    """To ``out`` (never over an existing file without --force), or to stdout."""
    if out is None:
        click.echo(text, nl=False)
        return
    try:
        with out.open("w" if force else "x", encoding="utf-8") as handle:
            handle.write(text)
    except FileExistsError:
        raise click.ClickException(f"{out} already exists; pass --force to overwrite it") from None


def _refuse_existing(out: Path | None, force: bool) -> None:
    """Refuse before reading Jira, not after: an existing --out file is kept unless --force,
    and a folder that does not exist is said at once."""
    if out is not None and out.exists() and not force:
        raise click.ClickException(f"{out} already exists; pass --force to overwrite it")
    if out is not None and not out.parent.is_dir():
        raise click.ClickException(f"cannot write {out}: there is no folder {out.parent}")


@click.command("init")
@click.option("--jql", required=True, help='Which tickets to learn from, e.g. "project = PAY".')
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the draft here (default: print it).")
@click.option("--force", is_flag=True, help="Overwrite --out if it exists.")
@click.option("--max-tickets", default=500, show_default=True, type=click.IntRange(1, 100_000),
              help="Read at most this many tickets.")
def rules_init(jql: str, out: Path | None, force: bool, max_tickets: int) -> None:
    """Draft a commented rules file from Jira: people, approval statuses, approver fields, teams."""
    from connector.errors import JiraError
    from connector.survey import survey
    from rules.draft import PLACEHOLDER, draft_rules

    _refuse_existing(out, force)
    jira = reach_jira(Settings.from_env(), "rules init")
    try:
        found = survey(jira, jql, max_tickets=max_tickets)
    except JiraError as error:
        raise click.ClickException(f"cannot read Jira: {error}") from None
    _write(out, draft_rules(found, today=utc_now().date().isoformat()), force)
    where = str(out) if out else "the draft"
    click.echo(
        f"{where}: {len(found.users)} people and {len(found.projects) + len(found.components)} "
        f"candidate team(s) from {found.tickets} ticket(s), {len(found.approval_statuses)} "
        f"approval status(es), {len(found.approver_fields)} approver field(s). Replace every "
        f"'level: {PLACEHOLDER}', then run: leaderleader rules check {out or 'FILE'}",
        err=True,
    )


@click.command("import-people")
@click.argument("csv_file", metavar="FILE.csv", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--levels", "level_specs", multiple=True, metavar="TITLE=LEVEL,…",
              help="Map job titles to levels, e.g. 'Engineer=engineer,Engineering Manager=manager'.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the people section here (default: print it).")
@click.option("--force", is_flag=True, help="Overwrite --out if it exists.")
def import_people(csv_file: Path, level_specs: tuple[str, ...], out: Path | None,
                  force: bool) -> None:
    """Turn an HR export (email, name, title, manager_email) into the rules file's people.

    Each email is resolved to a Jira id (Cloud: accountId; Server/Data Center: username).
    Rows that cannot be resolved are listed on stderr and left out; the exit status is
    non-zero only when nobody could be resolved.
    """
    from connector.errors import JiraError
    from connector.survey import resolve_email
    from rules.draft import PLACEHOLDER, people_section
    from rules.people_import import CsvProblem, parse_levels, people_from_hr, read_hr_csv

    _refuse_existing(out, force)
    try:
        levels = parse_levels(level_specs)
    except ValueError as error:
        raise click.ClickException(str(error)) from None
    if not csv_file.exists():
        raise click.ClickException(f"{csv_file}: no such file")
    try:
        rows = read_hr_csv(csv_file.read_bytes(), str(csv_file))
    except CsvProblem as error:
        raise click.ClickException(str(error)) from None
    if not rows:
        raise click.ClickException(f"{csv_file}:2: no people in the file (only a header)")
    jira = reach_jira(Settings.from_env(), "import-people")
    resolved: dict[str, str] = {}
    missing = 0
    try:
        for row in rows:
            jira_id, why = resolve_email(jira, row.email)
            if jira_id is None:
                missing += 1
                click.echo(f"{csv_file}:{row.line}: {row.email}: {why}", err=True)
            else:
                resolved[row.email] = jira_id
    except JiraError as error:
        raise click.ClickException(f"cannot search Jira's users: {error}") from None
    if not resolved:
        raise click.ClickException(
            f"{csv_file}: none of the {len(rows)} people could be found in Jira")
    people = people_from_hr(rows, resolved, levels)
    header = [f"people from {csv_file.name}, Jira ids from {jira.url} "
              f"({'accountIds' if jira.deployment == 'cloud' else 'usernames'})"]
    if missing:
        header.append(f"{missing} row(s) could not be resolved and are left out")
    _write(out, people_section(people, header), force)
    todo = sum(1 for p in people if p.level == PLACEHOLDER)
    summary = f"resolved {len(resolved)} of {len(rows)} people"
    if missing:
        summary += f"; {missing} not found in Jira (listed above)"
    if todo:
        summary += f"; {todo} without a level (title not in --levels): 'level: {PLACEHOLDER}'"
    click.echo(summary, err=True)
