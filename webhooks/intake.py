"""``POST /webhooks/jira``: verify, de-duplicate, queue, answer. Nothing else on this path."""

from __future__ import annotations

import hashlib
import logging
from typing import Any

import redis
from flask import Blueprint, jsonify, request

from connector.events import Ignored, parse_event
from connector.payload import PayloadError, decode_body
from jobs.inbox import accept
from rules.model import utc_now
from service.metrics import count
from service.settings import Settings
from webhooks.auth import signature_problem, token_problem
from webhooks.extension import app_runtime

bp = Blueprint("intake", __name__)
log = logging.getLogger("leaderleader.web")


def _error(status: int, message: str, **headers: str) -> Any:
    return jsonify(error=message, status=status), status, headers


def _auth_problem(settings: Settings, body: bytes) -> str | None:
    if not (settings.webhook_secret or settings.webhook_token):
        return None  # development mode; production refuses to start like this
    problems = []
    if settings.webhook_secret:
        problem = signature_problem(
            settings.webhook_secret, body, request.headers.get("X-Hub-Signature")
        )
        if problem is None:
            return None
        problems.append(problem)
    if settings.webhook_token:
        problem = token_problem(settings.webhook_token, request.args.get("token"))
        if problem is None:
            return None
        problems.append(problem)
    return "; ".join(problems)


def delivery_id_for(body: bytes) -> str:
    """Jira's delivery id (the same across retries), else a hash of the body (Data Center)."""
    given = request.headers.get("X-Atlassian-Webhook-Identifier", "").strip()
    if given:
        return given[:120]
    return "sha256:" + hashlib.sha256(body).hexdigest()


@bp.post("/webhooks/jira")
def receive() -> Any:
    runtime = app_runtime()
    body = request.get_data(cache=False)
    problem = _auth_problem(runtime.settings, body)
    if problem is not None:
        log.warning("jira.delivery.unauthorised", extra={"reason": problem})
        count(runtime.redis, "deliveries", "unauthorised")
        return _error(401, "webhook authentication failed")
    mimetype = request.mimetype
    if mimetype != "application/json" and not mimetype.endswith("+json"):
        count(runtime.redis, "deliveries", "rejected")
        return _error(415, "send the webhook as application/json")
    try:
        received = utc_now()
        event = parse_event(decode_body(body), received_at=received)
    except PayloadError as error:
        message = str(error)
        log.info("jira.delivery.rejected", extra={"reason": message})
        count(runtime.redis, "deliveries", "rejected")
        return _error(400, message)
    delivery_id = delivery_id_for(body)
    extra = {"delivery": delivery_id, "issue": getattr(event, "key", None), "webhook_event": event.event}
    if isinstance(event, Ignored):
        log.info("jira.delivery.ignored", extra={**extra, "reason": event.reason})
        count(runtime.redis, "deliveries", "ignored")
        return jsonify(status="ignored", reason=event.reason, delivery=delivery_id), 200
    try:
        text = body.decode("utf-8-sig")  # decode_body checked it is UTF-8
        fresh = accept(runtime, delivery_id, text, received.isoformat())
    except redis.RedisError:
        log.error("jira.delivery.queue_unavailable", extra=extra)
        return _error(503, "queue unavailable; retry later", **{"Retry-After": "30"})
    if not fresh:
        log.info("jira.delivery.duplicate", extra=extra)
        return jsonify(status="duplicate", delivery=delivery_id), 200
    # debug, not info: gunicorn's access log already has a line for every delivery and the
    # worker logs each one it processes (a third line each cost the endpoint a tenth of its time)
    log.debug("jira.delivery.queued", extra=extra)
    return jsonify(status="queued", delivery=delivery_id), 202
