"""``GET /reports/bottlenecks``: the bottleneck report as JSON, CSV or an HTML page with charts.

Auth is a bearer ``REPORT_TOKEN``; the HTML page also takes ``?token=`` so a manager can
bookmark it (the page then sends no referrer, so the token never leaves for Jira).
Without a configured token the report refuses to serve at all (503): an open report
would show who holds up which decision to anyone who finds the URL.
"""

from __future__ import annotations

import csv
import hmac
import io
import logging
from collections.abc import Callable
from datetime import UTC, date, datetime, time
from typing import Any
from urllib.parse import quote

from flask import Blueprint, Response, jsonify, render_template, request

from ledger.report import Window, bottleneck_report
from rules.model import Rules, utc_now
from webhooks.charts import Chart, columns, hbars
from webhooks.extension import app_runtime
from webhooks.page import (
    Directory,
    Week,
    decisions,
    delegation_summary,
    delegation_weeks,
    duration,
    evidence_lines,
    gap_count,
    loop_cards,
    outcome_rows,
    percent,
    suggestion_diff,
    suggestion_text,
    week_label,
    what_to_do,
    words,
)

bp = Blueprint("reports", __name__, template_folder="templates")
log = logging.getLogger("leaderleader.web")

FORMATS = ("json", "csv", "html")
CSV_COLUMNS = (
    "approver", "level", "episodes", "flagged", "waiting_now", "ended", "ended_after_intent",
    "median_wait_hours", "p90_wait_hours", "total_wait_hours", "open_total_hours",
    "open_max_hours", "open_median_hours", "open_p90_hours",
)
#: the loop's answers to intents per approver (``loop.by_approver``), after the figures
CSV_LOOP_COLUMNS = ("intents", "acknowledged", "objected", "proceeded", "median_ack_hours")
#: the HTML page: inline styles only, no scripts, nothing fetched from anywhere
HTML_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}
MAX_FILTER_LENGTH = 128
TREND_WEEKS_CHARTED = 52
APPROVERS_CHARTED = 15


class BadFilter(ValueError):
    """A query parameter the report cannot use; the message names it and the expected form."""


def _error(status: int, message: str, **headers: str) -> Any:
    return jsonify(error=message, status=status), status, headers


def parse_instant(name: str, raw: str) -> datetime:
    """An ISO date (midnight UTC) or datetime (naive means UTC) as naive UTC."""
    text = raw.strip()
    try:
        if len(text) == 10:
            return datetime.combine(date.fromisoformat(text), time())
        value = datetime.fromisoformat(text)
    except ValueError:
        raise BadFilter(
            f"{name} must be an ISO date or datetime, like 2026-11-01 or "
            f"2026-11-01T09:30:00Z (got {raw[:40]!r})"
        ) from None
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value


def parse_window(args: Any) -> Window:
    """The report's filters from the query string; raises BadFilter with a clear message."""
    bounds: dict[str, datetime | None] = {}
    for name in ("since", "until"):
        raw = args.get(name)
        bounds[name] = parse_instant(name, raw) if raw not in (None, "") else None
    since, until = bounds["since"], bounds["until"]
    if since is not None and until is not None and since >= until:
        raise BadFilter("since must be earlier than until")
    names: dict[str, str | None] = {}
    for name in ("project", "team"):
        value = (args.get(name) or "").strip()
        if len(value) > MAX_FILTER_LENGTH:
            raise BadFilter(f"{name} must be at most {MAX_FILTER_LENGTH} characters")
        if not value.isprintable():  # PostgreSQL refuses a NUL in text outright
            raise BadFilter(f"{name} must not contain control characters")
        names[name] = value or None
    return Window(since=since, until=until, project=names["project"], team=names["team"])


def parse_limit(args: Any) -> int:
    raw = args.get("limit")
    if raw in (None, ""):
        return 20
    if not raw.isdigit() or not 1 <= int(raw) <= 500:
        raise BadFilter("limit must be a whole number from 1 to 500")
    return int(raw)


def _wanted_format(html_path: bool) -> str:
    if html_path:
        return "html"
    given = request.args.get("format")
    if given:
        return given.strip().lower()
    best = request.accept_mimetypes.best_match(["application/json", "text/html", "text/csv"])
    return {"text/html": "html", "text/csv": "csv"}.get(best or "", "json")


def _token_ok(expected: str, allow_query: bool) -> bool:
    """Bearer header always; ``?token=`` only for the HTML page. Constant-time compare."""
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    candidates = [given.strip()] if scheme.lower() == "bearer" and given.strip() else []
    if allow_query and request.args.get("token"):
        candidates.append(request.args["token"])
    return any(hmac.compare_digest(expected.encode(), c.encode()) for c in candidates)


def refusal(html: bool) -> Any | None:
    """Why this request may not read a report (503 or 401), or None when it may.

    Every report page asks this: no REPORT_TOKEN configured, no report; otherwise the
    bearer token (or, for an HTML page, ``?token=``) must match.
    """
    expected = app_runtime().settings.report_token
    if not expected:
        return _error(503, "the report is disabled: REPORT_TOKEN must be set to serve it")
    if not _token_ok(expected, allow_query=html):
        log.warning("report.unauthorised")
        return _error(401, "a valid REPORT_TOKEN is required (Authorization: Bearer …)",
                      **{"WWW-Authenticate": 'Bearer realm="leaderleader report"'})
    return None


@bp.get("/reports/bottlenecks")
@bp.get("/reports/bottlenecks.html", endpoint="bottlenecks_html")
def bottlenecks() -> Any:
    runtime = app_runtime()
    wanted = _wanted_format(request.path.endswith(".html"))
    refused = refusal(html=wanted == "html")
    if refused is not None:
        return refused
    try:
        if wanted not in FORMATS:
            raise BadFilter(f"format must be one of {', '.join(FORMATS)} (got {wanted[:20]!r})")
        window = parse_window(request.args)
        limit = parse_limit(request.args)
    except BadFilter as error:
        return _error(400, str(error))
    rules = runtime.rules.get()
    now = utc_now()  # the end of every open wait's age (the tests pin it)
    with runtime.sessions() as session:
        report = bottleneck_report(
            session,
            window,
            now=now,
            levels=rules.levels if rules else (),
            known_jira_ids={p.jira for p in rules.people.values()} if rules else (),
            longest=limit,
            rules=rules,
        )
    base = runtime.settings.jira_url
    for row in report["longest_waiting"]:
        row["url"] = f"{base}/browse/{quote(row['key'], safe='')}" if base else None
    if wanted == "csv":
        return _csv(report)
    if wanted == "html":
        return _html(report, rules)
    response = jsonify(report)
    response.headers["Cache-Control"] = "no-store"
    response.headers["Vary"] = "Accept, Authorization"
    return response


def _cell(value: Any) -> Any:
    """Blank for no value; a leading quote stops spreadsheets from running a name as a formula."""
    if value is None:
        return ""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def _csv(report: dict[str, Any]) -> Response:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_COLUMNS + CSV_LOOP_COLUMNS)
    answers = {(r["approver"], r["level"]): r for r in report["loop"]["by_approver"]}
    for row in report["by_approver"]:
        loop = answers.get((row["approver"], row["level"]), {})
        writer.writerow([_cell(row[column]) for column in CSV_COLUMNS]
                        + [_cell(loop.get(column, 0 if column != "median_ack_hours" else None))
                           for column in CSV_LOOP_COLUMNS])
    response = Response(buffer.getvalue(), mimetype="text/csv")
    response.headers["Content-Disposition"] = 'attachment; filename="bottlenecks.csv"'
    response.headers["Cache-Control"] = "no-store"
    return response


def _caption(row: dict[str, Any]) -> str:
    parts = [decisions(row["episodes"])]
    if row["median_wait_hours"] is not None:
        parts.append(f"median {duration(row['median_wait_hours'])}")
    if row["waiting_now"]:
        parts.append(f"{row['waiting_now']} waiting now")
    return " · ".join(parts)


def _hbars(rows: list[dict[str, Any]], label: Callable[[dict[str, Any]], str], css: str) -> Chart:
    return hbars([(label(row), row["total_wait_hours"], row["open_total_hours"], _caption(row))
                  for row in rows], css=css)


def _trend(weeks: list[dict[str, Any]]) -> dict[str, Chart]:
    labels = [week_label(w["week"], w.get("week_start")) for w in weeks]
    median = columns(
        [(label, w["median_wait_hours"]) for label, w in zip(labels, weeks)], css="median",
        captions=[f"{w['median_wait_hours']:.0f}" if w["median_wait_hours"] is not None else ""
                  for w in weeks],
        titles=[f"Week of {label}: median wait {duration(w['median_wait_hours'])} "
                f"({decisions(w['ended'])} taken)" for label, w in zip(labels, weeks)])
    flagged = columns(
        [(label, float(w["flagged"])) for label, w in zip(labels, weeks)], css="flagged",
        counts=True, captions=[str(w["flagged"]) for w in weeks],
        titles=[f"Week of {label}: {w['flagged']} of {decisions(w['episodes'])} waited above "
                "the right level" for label, w in zip(labels, weeks)])
    return {"median": median, "flagged": flagged}


def _delegation(weeks: tuple[Week, ...]) -> Chart:
    return columns(
        [(week.label, week.share) for week in weeks], css="delegation", top=100, suffix="%",
        counts=True, captions=[percent(week.share) if week.decisions else "" for week in weeks],
        titles=[f"Week of {week.label}: {week.lower} of {decisions(week.decisions)} taken at or "
                f"below the level that holds the information ({percent(week.share)})"
                for week in weeks])


def render_page(report: dict[str, Any], rules: Rules | None) -> str:
    """The HTML page for a report (the loop's sections appear when the report has their keys)."""
    people = Directory.from_rules(rules, report.get("unmapped") or ())
    weeks = report["trend"][-TREND_WEEKS_CHARTED:]
    delegation = delegation_weeks(report)[-TREND_WEEKS_CHARTED:]
    charts = {
        "approver": _hbars(report["by_approver"][:APPROVERS_CHARTED],
                           lambda row: people.name(row["approver"]), "approver"),
        "level": _hbars(report["by_level"], lambda row: words(row["level"]), "level"),
        **_trend(weeks),
        "delegation": _delegation(delegation),
    }
    decided_at = {rule.name: rule.decided_at for rule in rules.decisions} if rules else {}
    return render_template(
        "report_bottlenecks.html",
        report=report,
        lead=what_to_do(report, people),
        cards=loop_cards(report),
        delegation=delegation,
        delegation_summary=delegation_summary(delegation),
        outcomes=outcome_rows(report),
        people=people,
        words=words,
        duration=duration,
        decided_at=decided_at,
        suggestion_text=suggestion_text,
        evidence_lines=evidence_lines,
        suggestion_diff=suggestion_diff,
        gap_count=gap_count,
        charts=charts,
        approvers_charted=APPROVERS_CHARTED,
        weeks_charted=len(weeks),
    )


def _html(report: dict[str, Any], rules: Rules | None) -> Response:
    return Response(render_page(report, rules), mimetype="text/html", headers=HTML_HEADERS)
