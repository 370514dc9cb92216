"""``GET /reports/activity``: every comment posted, rendered in dry-run, skipped or failed.

The audit log a pilot is reviewed with, as JSON or an HTML page, behind the same
``REPORT_TOKEN`` as the bottleneck report (the page also takes ``?token=``).
Filters: ``since``/``until`` (ISO date or datetime), ``state``, ``key``, ``limit``.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from flask import Blueprint, Response, jsonify, render_template, request

from connector.shapes import is_issue_key
from ledger.activity import STATES, comment_activity
from webhooks.extension import app_runtime
from webhooks.reports import HTML_HEADERS, BadFilter, _error, parse_instant, refusal

bp = Blueprint("activity", __name__, template_folder="templates")

DEFAULT_LIMIT = 200
MAX_LIMIT = 2000


def parse_filters(args: Any) -> dict[str, Any]:
    """The activity filters from the query string; BadFilter names the one that is wrong."""
    found: dict[str, Any] = {}
    for name in ("since", "until"):
        raw = args.get(name)
        found[name] = parse_instant(name, raw) if raw not in (None, "") else None
    if found["since"] is not None and found["until"] is not None and found["since"] >= found["until"]:
        raise BadFilter("since must be earlier than until")
    state = (args.get("state") or "").strip().lower() or None
    if state is not None and state not in STATES:
        raise BadFilter(f"state must be one of {', '.join(STATES)} (got {state[:20]!r})")
    key = (args.get("key") or "").strip().upper() or None
    if key is not None and not is_issue_key(key):
        raise BadFilter(f"key must be an issue key like PAY-123 (got {key[:40]!r})")
    raw_limit = (args.get("limit") or "").strip()
    if raw_limit and (not raw_limit.isdigit() or not 1 <= int(raw_limit) <= MAX_LIMIT):
        raise BadFilter(f"limit must be a whole number from 1 to {MAX_LIMIT}")
    found.update(state=state, key=key, limit=int(raw_limit) if raw_limit else DEFAULT_LIMIT)
    return found


@bp.get("/reports/activity")
@bp.get("/reports/activity.html", endpoint="activity_html")
def activity() -> Any:
    html = request.path.endswith(".html")
    refused = refusal(html=html)
    if refused is not None:
        return refused
    try:
        filters = parse_filters(request.args)
    except BadFilter as error:
        return _error(400, str(error))
    runtime = app_runtime()
    with runtime.sessions() as session:
        rows = [row.to_dict() for row in comment_activity(session, **filters)]
    base = runtime.settings.jira_url
    for row in rows:
        row["url"] = f"{base}/browse/{quote(row['key'], safe='')}" if base else None
    if html:
        counts = {state: sum(1 for r in rows if r["state"] == state) for state in STATES}
        page = render_template("report_activity.html", rows=rows, counts=counts,
                               filters=filters, limit=filters["limit"])
        return Response(page, mimetype="text/html", headers=HTML_HEADERS)
    response = jsonify(comments=rows, count=len(rows))
    response.headers["Cache-Control"] = "no-store"
    response.headers["Vary"] = "Authorization"
    return response
