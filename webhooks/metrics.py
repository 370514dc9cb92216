"""``GET /metrics``: Prometheus text for the whole deployment (see leaderleader.metrics)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from jobs.context import current_runtime
from jobs.inbox import backlog
from leaderleader.metrics import LedgerCollector

bp = Blueprint("metrics", __name__)


@bp.get("/metrics")
def metrics() -> Any:
    runtime = current_runtime()
    registry = CollectorRegistry()
    registry.register(LedgerCollector(
        runtime.redis, lambda: runtime.queue.count + sum(backlog(runtime).values())))
    return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST)
