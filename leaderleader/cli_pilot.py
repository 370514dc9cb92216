"""Running a pilot: ``comments`` (review what was posted or rendered), ``rules init`` and
``rules import-people`` (draft a rules file from Jira and from an HR export)."""

from __future__ import annotations

import json
import re
from datetime import datetime
from pathlib import Path

import click

from leaderleader.cli import user_errors
from leaderleader.cli_history import _sessions
from leaderleader.cli_rules import settings_or_exit
from ledger.activity import STATES
from rules.model import utc_now


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
@user_errors
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
    settings = settings_or_exit()
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
