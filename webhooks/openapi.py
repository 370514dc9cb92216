"""``GET /openapi.json``: an OpenAPI 3.1 description of the whole HTTP API.

Kept as a literal dict beside the code it describes, so a reviewer sees a changed answer
and its description in one diff; ``tests/reports/test_page.py`` checks that every route
the app serves is described here, and ``tests/test_api_schema.py`` sends the requests
it describes.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify

bp = Blueprint("openapi", __name__)


def _json(description: str, schema: str = "Error") -> dict[str, Any]:
    return {"description": description,
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}}}


_FIGURES = {
    "episodes": {"type": "integer", "description": "Episodes in the window (overlap)."},
    "flagged": {"type": "integer", "description": "Episodes whose approver sits too high."},
    "waiting_now": {"type": "integer", "description": "Episodes still open now."},
    "ended": {"type": "integer"},
    "ended_after_intent": {"type": "integer",
                           "description": "Ended episodes that had an intent declared."},
    "median_wait_hours": {"type": ["number", "null"],
                          "description": "Median of ended episodes' end - start (percentile_cont)."},
    "p90_wait_hours": {"type": ["number", "null"]},
    "total_wait_hours": {"type": "number", "description": "Sum of ended episodes' waits."},
    "open_total_hours": {"type": "number", "description": "Sum of open episodes' age so far."},
    "open_max_hours": {"type": ["number", "null"], "description": "Age of the oldest open one."},
    "open_median_hours": {"type": ["number", "null"],
                          "description": "Median of open episodes' age so far (percentile_cont); "
                                         "null when none is open."},
    "open_p90_hours": {"type": ["number", "null"],
                       "description": "p90 of open episodes' age so far; null when none is open."},
}


def _row(key: str, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    props = {key: {"type": ["string", "null"]}, **(extra or {}), **_FIGURES}
    return {"type": "object", "properties": props, "required": [key, *_FIGURES]}


_INT, _HOURS, _TEXT = {"type": "integer"}, {"type": ["number", "null"]}, {"type": ["string", "null"]}
_ANSWERS = {
    "intents": {"type": "integer", "description": "Episodes in the window with an intent."},
    "acknowledged": {"type": "integer", "description": "Answered \"Very well\" by the approver, "
                     "or approved (left approval, not into a rejection) after the intent."},
    "objected": {"type": "integer", "description": "Answered \"I object\" or \"Hold\" by the "
                 "approver."},
    "proceeded": {"type": "integer", "description": "No answer, and the intent's proceed-on date "
                  "(remind_after, else 2 days, after the intent, on a weekday) has passed."},
    "unanswered": {"type": "integer", "description": "No answer yet, proceed-on date to come."},
    "median_ack_hours": {**_HOURS, "description": "Median hours from the first intent to its "
                         "acknowledgement; null when none."},
}
_OUTCOMES = {"decisions_by_intent": _INT, "outcomes_to_learn": _INT, "reopened": _INT,
             "reverted": _INT}
#: the leader-leader loop's keys (SPEC §9), beside the bottleneck figures
LOOP_SCHEMAS: dict[str, Any] = {
    "loop": {"type": "object", "required": [*_ANSWERS, "decisions_by_intent", "outcomes_to_learn"],
             "properties": {
        **_ANSWERS,
        "decisions_by_intent": {"type": "integer",
                                "description": "Episodes that ended at or after their intent."},
        "outcomes_to_learn": {"type": "integer", "description": "Decisions taken by intent that "
                              "were reopened or linked as reverted/rolled back within the rules' "
                              "outcome_window."},
        "by_approver": {"type": "array", "items": {"type": "object", "properties": {
            "approver": _TEXT, "level": _TEXT, **_ANSWERS}}},
        "by_level": {"type": "array", "items": {"type": "object", "properties": {
            "level": _TEXT, **_ANSWERS}}},
        "outcomes": {"type": "object", "description": "Per rule and per team, never per person.",
                     "properties": {
            "by_rule": {"type": "array", "items": {"type": "object", "properties": {
                "rule": _TEXT, **_OUTCOMES}}},
            "by_team": {"type": "array", "items": {"type": "object", "properties": {
                "team": _TEXT, **_OUTCOMES}}}}}}},
    "delegation": {"type": "array", "description": "Per ISO week of the end: are decisions "
                   "moving down?", "items": {"type": "object", "required": [
                       "week", "decisions", "at_or_below_information", "share"], "properties": {
        "week": {"type": "string", "pattern": "^[0-9]{4}-W[0-9]{2}$"},
        "week_start": {"type": "string", "format": "date"},
        "decisions": {"type": "integer", "description": "Episodes in the window that ended."},
        "at_or_below_information": {"type": "integer", "description": "Of those, taken by "
                                    "intent or approved at or below the decision level."},
        "by_intent": {"type": "integer"},
        "share": {**_HOURS, "description": "at_or_below_information / decisions."}}}},
    "intents_by_level": {"type": "array", "items": {"type": "object", "properties": {
        "level": {**_TEXT, "description": "The author's level in the rules; null if unknown."},
        "intents": _INT}}},
    "intents_by_team": {"type": "array", "items": {"type": "object", "properties": {
        "team": _TEXT, "intents": _INT}}},
    "competence_gaps": {"type": "array", "description": "Rules whose required competence "
                        "nobody at the information level holds: train, do not approve.",
                        "items": {"type": "object", "properties": {
        "rule": _TEXT, "competence": _TEXT, "team": _TEXT, "episodes": _INT,
        "nearest_competent": {"type": "array", "items": {"type": "string"}},
        "keys": {"type": "array", "items": {"type": "string"}},
        "last_seen": {"type": "string", "format": "date-time"}}}},
    "suggestions": {"type": "array", "description": "What `leaderleader rules suggest` would "
                    "propose over the window (else the last 180 days).",
                    "items": {"type": "object", "required": ["kind", "summary", "evidence"],
                              "properties": {
        "kind": {"enum": ["rubber_stamp", "always_flagged", "acts_on_intents"]},
        "summary": {"type": "string"}, "evidence": {"type": "array", "items": {"type": "string"}},
        "rule": _TEXT, "person": _TEXT, "decided_at": _TEXT, "current": _TEXT,
        "figures": {"type": "object"}}}},
}

_FILTERS = [
    {"name": "project", "in": "query", "schema": {"type": "string", "maxLength": 128},
     "description": "Only episodes of this Jira project key."},
    {"name": "team", "in": "query", "schema": {"type": "string", "maxLength": 128},
     "description": "Only episodes of this rules-file team."},
    {"name": "since", "in": "query", "schema": {"type": "string"},
     "description": "ISO date or datetime (UTC when no offset), inclusive. Without it the "
                    "figures cover all history and the weekly trend the last 26 weeks."},
    {"name": "until", "in": "query", "schema": {"type": "string"},
     "description": "ISO date or datetime (UTC when no offset), exclusive."},
    {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 500,
                                                "default": 20},
     "description": "How many open waits longest_waiting lists."},
]
_REPORT_ERRORS = {
    "400": _json("A filter is not usable; the message says which."),
    "401": _json("Missing or wrong REPORT_TOKEN."),
    "503": _json("REPORT_TOKEN is not configured, so the report is disabled."),
}

_ACTIVITY_FILTERS = [
    {"name": "since", "in": "query", "schema": {"type": "string"},
     "description": "ISO date or datetime (UTC when no offset), inclusive."},
    {"name": "until", "in": "query", "schema": {"type": "string"},
     "description": "ISO date or datetime (UTC when no offset), exclusive."},
    {"name": "state", "in": "query", "schema": {
        "type": "string", "enum": ["pending", "posted", "dry_run", "skipped", "failed"]}},
    {"name": "key", "in": "query", "schema": {"type": "string", "pattern": "^[A-Za-z][A-Za-z0-9_]*-[0-9]+$"},
     "description": "Only comments on this ticket."},
    {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 2000,
                                                "default": 200}},
]
_ACTIVITY_ROW = {"type": "object", "required": ["id", "at", "key", "kind", "state", "rule", "reason"],
                 "properties": {
    "id": {"type": "integer"}, "at": {"type": "string", "format": "date-time"},
    "key": {"type": "string"}, "summary": {"type": "string"},
    "kind": {"enum": ["flag", "reminder"]},
    "state": {"enum": ["pending", "posted", "dry_run", "skipped", "failed"]},
    "rule": {"type": ["string", "null"]}, "decision_level": {"type": ["string", "null"]},
    "approver": {"type": ["string", "null"]}, "approver_level": {"type": ["string", "null"]},
    "decider": {"type": ["string", "null"]},
    "reason": {"type": ["string", "null"],
               "description": "Why it was skipped or failed (Jira's answer), or the last retry's cause."},
    "body": {"type": "string", "description": "The comment as posted or rendered (wiki markup)."},
    "jira_comment_id": {"type": ["string", "null"]},
    "url": {"type": ["string", "null"], "format": "uri"}}}

SPEC: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "leaderleader",
        "version": "0.1.0",
        "description": "Jira webhook intake, health, metrics and the bottleneck report.",
        "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"},
    },
    "paths": {
        "/webhooks/jira": {"post": {
            "summary": "Receive a Jira webhook delivery",
            "description": "Verified (X-Hub-Signature HMAC-SHA256 of the raw body, or ?token=), "
                           "de-duplicated by X-Atlassian-Webhook-Identifier, queued.",
            "security": [{"jiraSignature": []}, {"webhookToken": []}, {}],
            "parameters": [
                {"name": "X-Hub-Signature", "in": "header", "schema": {"type": "string"},
                 "description": "sha256=<hex HMAC of the raw body with JIRA_WEBHOOK_SECRET>"},
                {"name": "X-Atlassian-Webhook-Identifier", "in": "header",
                 "schema": {"type": "string"}, "description": "Same across Jira's retries."},
                {"name": "X-Atlassian-Webhook-Retry", "in": "header",
                 "schema": {"type": "integer"}},
            ],
            "requestBody": {"required": True, "content": {"application/json": {
                "schema": {"type": "object", "description": "A Jira webhook payload."}}}},
            "responses": {
                "202": _json("Queued for processing.", "Delivery"),
                "200": _json("A duplicate delivery, or an event that is ignored.", "Delivery"),
                "400": _json("Malformed JSON or a payload missing required fields."),
                "401": _json("Signature or token missing or wrong."),
                "413": _json("Body larger than LEADERLEADER_MAX_BODY_BYTES."),
                "415": _json("Not sent as application/json."),
                "503": {**_json("The queue is unavailable; Jira retries."),
                        "headers": {"Retry-After": {"schema": {"type": "integer"}}}},
            },
        }},
        "/healthz": {"get": {"summary": "Liveness", "responses": {
            "200": {"description": "The process is up.", "content": {"application/json": {
                "schema": {"type": "object", "properties": {"status": {"const": "ok"}}}}}}}}},
        "/readyz": {"get": {"summary": "Readiness: database, queue and rules", "responses": {
            "200": _json("Ready.", "Readiness"), "503": _json("Not ready.", "Readiness")}}},
        "/metrics": {"get": {"summary": "Prometheus metrics", "responses": {
            "200": {"description": "Prometheus text exposition format.",
                    "content": {"text/plain": {"schema": {"type": "string"}}}}}}},
        "/reports/bottlenecks": {"get": {
            "summary": "The bottleneck report (JSON, CSV, or HTML by Accept)",
            "description": "JSON by default; `format=csv` gives one row per approver; "
                           "`format=html` or an Accept header preferring text/html gives "
                           "the page with charts.",
            "security": [{"reportToken": []}],
            "parameters": [*_FILTERS, {"name": "format", "in": "query", "schema": {
                "type": "string", "enum": ["json", "csv", "html"]}}],
            "responses": {
                "200": {"description": "The report.", "content": {
                    "application/json": {"schema": {"$ref": "#/components/schemas/Report"}},
                    "text/csv": {"schema": {"type": "string"}, "example":
                                 "approver,level,episodes,flagged,waiting_now,ended,"
                                 "ended_after_intent,median_wait_hours,p90_wait_hours,"
                                 "total_wait_hours,open_total_hours,open_max_hours,"
                                 "open_median_hours,open_p90_hours\r\n"},
                    "text/html": {"schema": {"type": "string"}}}},
                **_REPORT_ERRORS,
            },
        }},
        "/reports/bottlenecks.html": {"get": {
            "summary": "The bottleneck report as an HTML page with inline SVG charts",
            "description": "Also accepts the token as `?token=` (this page only), so it can "
                           "be bookmarked; the page sends no Referer.",
            "security": [{"reportToken": []}, {"reportTokenQuery": []}],
            "parameters": _FILTERS,
            "responses": {"200": {"description": "The page.",
                                  "content": {"text/html": {"schema": {"type": "string"}}}},
                          **_REPORT_ERRORS},
        }},
        "/reports/activity": {"get": {
            "summary": "Comment activity: every comment posted, rendered, skipped or failed",
            "description": "Newest first, with the ticket, the decision rule, the time and, for "
                           "a skipped or failed comment, the reason recorded (Jira's answer).",
            "security": [{"reportToken": []}],
            "parameters": _ACTIVITY_FILTERS,
            "responses": {"200": _json("The comments.", "Activity"), **_REPORT_ERRORS},
        }},
        "/reports/activity.html": {"get": {
            "summary": "Comment activity as an HTML page",
            "description": "Also accepts the token as `?token=`; the page sends no Referer.",
            "security": [{"reportToken": []}, {"reportTokenQuery": []}],
            "parameters": _ACTIVITY_FILTERS,
            "responses": {"200": {"description": "The page.",
                                  "content": {"text/html": {"schema": {"type": "string"}}}},
                          **_REPORT_ERRORS},
        }},
        "/openapi.json": {"get": {"summary": "This description", "responses": {
            "200": {"description": "OpenAPI 3.1", "content": {"application/json": {
                "schema": {"type": "object"}}}}}}},
    },
    "components": {
        "securitySchemes": {
            "jiraSignature": {"type": "apiKey", "in": "header", "name": "X-Hub-Signature"},
            "webhookToken": {"type": "apiKey", "in": "query", "name": "token"},
            "reportToken": {"type": "http", "scheme": "bearer",
                            "description": "REPORT_TOKEN"},
            "reportTokenQuery": {"type": "apiKey", "in": "query", "name": "token",
                                 "description": "REPORT_TOKEN; HTML page only"},
        },
        "schemas": {
            "Error": {"type": "object", "required": ["error", "status"], "properties": {
                "error": {"type": "string"}, "status": {"type": "integer"}}},
            "Delivery": {"type": "object", "properties": {
                "status": {"enum": ["queued", "duplicate", "ignored"]},
                "delivery": {"type": "string"}, "reason": {"type": "string"}}},
            "Readiness": {"type": "object", "properties": {
                "status": {"enum": ["ready", "not ready"]}, "checks": {"type": "object"}}},
            "Activity": {"type": "object", "required": ["comments", "count"], "properties": {
                "comments": {"type": "array", "items": _ACTIVITY_ROW},
                "count": {"type": "integer"}}},
            "Figures": {"type": "object", "properties": _FIGURES, "required": list(_FIGURES)},
            "Report": {"type": "object", "required": [
                "summary", "by_approver", "by_level", "by_team", "by_rule",
                "longest_waiting", "trend", "unmapped"], "properties": {
                "window": {"type": "object", "properties": {
                    "since": {"type": ["string", "null"], "format": "date-time"},
                    "until": {"type": ["string", "null"], "format": "date-time"},
                    "project": {"type": ["string", "null"]},
                    "team": {"type": ["string", "null"]},
                    "semantics": {"const": "overlap"},
                    "generated_at": {"type": "string", "format": "date-time"},
                    "trend_since": {
                        "type": "string", "format": "date-time",
                        "description": "Where the weekly trend starts: since, or without "
                                       "it the Monday 25 weeks before the window's last "
                                       "week (26 weeks in all)."}}},
                "summary": {"allOf": [{"$ref": "#/components/schemas/Figures"}, {
                    "type": "object", "required": ["intents"],
                    "properties": {"intents": {"type": "integer"}}}]},
                "by_approver": {"type": "array", "items": _row(
                    "approver", {"level": {"type": ["string", "null"]}})},
                "by_level": {"type": "array", "items": _row("level")},
                "by_team": {"type": "array", "items": _row("team")},
                "by_rule": {"type": "array", "items": _row("rule", {"purpose": {
                    **_TEXT, "description": "Why this level may decide (the rule's purpose)."}})},
                "longest_waiting": {"type": "array", "items": {"type": "object", "required": [
                    "key", "status", "approver", "waiting_hours", "suggested_decider"],
                    "properties": {
                        "key": {"type": "string"}, "status": {"type": ["string", "null"]},
                        "approver": {"type": ["string", "null"]},
                        "level": {"type": ["string", "null"]},
                        "waiting_hours": {"type": "number"},
                        "suggested_decider": {"type": ["string", "null"]},
                        "url": {"type": ["string", "null"], "format": "uri"},
                        "since": {"type": "string", "format": "date-time"}}}},
                "trend": {"type": "array", "description": (
                    "Per ISO week, the waits that started since window.trend_since, from "
                    "the first week with one to the window's last week, empty weeks "
                    "included; by default the last 26 weeks."),
                    "items": {"type": "object", "required": [
                    "week", "median_wait_hours", "flagged"], "properties": {
                    "week": {"type": "string", "pattern": "^[0-9]{4}-W[0-9]{2}$"},
                    "week_start": {"type": "string", "format": "date"},
                    "episodes": {"type": "integer"}, "flagged": {"type": "integer"},
                    "median_wait_hours": {"type": ["number", "null"]}}}},
                "unmapped": {"type": "array", "items": {"type": "object", "properties": {
                    "jira_id": {"type": "string"}, "episodes": {"type": "integer"},
                    "name": {"type": ["string", "null"],
                             "description": "Display name Jira last sent for this user."},
                    "last_seen": {"type": "string", "format": "date-time"}}}},
                **LOOP_SCHEMAS,
            }},
        },
    },
}


@bp.get("/openapi.json")
def openapi() -> Response:
    return jsonify(SPEC)
