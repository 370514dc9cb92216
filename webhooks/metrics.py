"""``GET /metrics``: Prometheus text for the whole deployment (see service.metrics)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from jobs.outstanding import outstanding
from service.metrics import LedgerCollector
from webhooks.extension import app_runtime

bp = Blueprint("metrics", __name__)


@bp.get("/metrics")
def metrics() -> Any:
    runtime = app_runtime()
    registry = CollectorRegistry()
    registry.register(LedgerCollector(runtime.redis, lambda: outstanding(runtime).to_dict()))
    return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST)
