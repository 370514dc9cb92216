"""Prometheus metrics that add up across every web and worker process.

The web tier and the workers are separate processes, often on separate hosts, so
counters live in Redis (one ``HINCRBY`` each) and ``/metrics`` turns them into
Prometheus families at scrape time. Redis is already on every path that counts.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Mapping

import redis
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy.exc import SQLAlchemyError

log = logging.getLogger("leaderleader.metrics")

COUNTERS = "leaderleader:metrics:counters"
LATENCY = "leaderleader:metrics:latency"
#: Seconds from our receipt of a delivery to the end of its processing in a worker.
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)

#: counter name -> (help text, label name)
_COUNTER_HELP = {
    "deliveries": ("Webhook deliveries by outcome at the door", "outcome"),
    "processed": ("Deliveries processed by the worker, by outcome", "outcome"),
    "comments": ("Comments by final state (posted, dry_run, failed, skipped)", "state"),
    "reconcile": ("Reconciliation rounds: their cost (rounds, keys, jira_calls, seconds) and "
                  "findings (closed, opened, flagged, missing)", "what"),
}


def count(connection: redis.Redis | redis.client.Pipeline, name: str, label: str) -> None:
    """Add one to ``name{label}``; a metrics hiccup never fails the caller."""
    try:
        connection.hincrby(COUNTERS, f"{name}|{label}", 1)
    except redis.RedisError:
        log.warning("metrics.write_failed", extra={"metric": name})


def add(connection: redis.Redis, name: str, label: str, amount: float) -> None:
    """Add ``amount`` to ``name{label}`` (a count of things, or seconds spent)."""
    try:
        if isinstance(amount, int):
            connection.hincrby(COUNTERS, f"{name}|{label}", amount)
        else:
            connection.hincrbyfloat(COUNTERS, f"{name}|{label}", amount)
    except redis.RedisError:
        log.warning("metrics.write_failed", extra={"metric": name})


def observe_latency(connection: redis.Redis | redis.client.Pipeline, seconds: float) -> None:
    """Count one delivery's latency; on a pipeline, only queued (its caller executes it)."""
    try:
        pipe = connection if isinstance(connection, redis.client.Pipeline) else (
            connection.pipeline(transaction=False))
        for bound in LATENCY_BUCKETS:
            if seconds <= bound:
                pipe.hincrby(LATENCY, f"le|{bound}", 1)
        pipe.hincrby(LATENCY, "count", 1)
        pipe.hincrbyfloat(LATENCY, "sum", seconds)
        if pipe is not connection:
            pipe.execute()
    except redis.RedisError:
        log.warning("metrics.write_failed", extra={"metric": "latency"})


class LedgerCollector(Collector):
    """Reads the shared counters (and the queue depth) whenever Prometheus scrapes."""

    def __init__(
        self, connection: redis.Redis, outstanding: Callable[[], Mapping[str, float | None]]
    ) -> None:
        self.connection = connection
        #: counts of outstanding work by kind, plus "oldest_seconds" (jobs.outstanding)
        self.outstanding = outstanding

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily | HistogramMetricFamily]:
        try:
            raw = self.connection.hgetall(COUNTERS)
            latency = self.connection.hgetall(LATENCY)
            backlog = dict(self.outstanding())
        except (redis.RedisError, SQLAlchemyError):
            up = GaugeMetricFamily("leaderleader_queue_up", "Whether Redis answered the scrape")
            up.add_metric([], 0)
            yield up
            return
        families: dict[str, CounterMetricFamily] = {}
        for name, (help_text, label) in _COUNTER_HELP.items():
            families[name] = CounterMetricFamily(f"leaderleader_{name}", help_text, labels=[label])
        for key, value in _decoded(raw.items()):
            name, _, label = key.partition("|")
            if name in families:
                families[name].add_metric([label], float(value))
        yield from families.values()
        up = GaugeMetricFamily("leaderleader_queue_up", "Whether Redis answered the scrape")
        up.add_metric([], 1)
        yield up
        oldest = backlog.pop("oldest_seconds", None)
        gauge = GaugeMetricFamily("leaderleader_queue_depth",
                                  "All outstanding work: deliveries waiting, retrying or in hand, "
                                  "queued and scheduled jobs, pending comments")
        gauge.add_metric([], sum(float(v or 0) for v in backlog.values()))
        yield gauge
        kinds = GaugeMetricFamily("leaderleader_outstanding", "Outstanding work by kind",
                                  labels=["kind"])
        for kind, count_ in backlog.items():
            kinds.add_metric([kind], float(count_ or 0))
        yield kinds
        age = GaugeMetricFamily("leaderleader_outstanding_oldest_seconds",
                                "Age of the oldest outstanding delivery or comment (0: none)")
        age.add_metric([], float(oldest or 0))
        yield age
        values = dict(_decoded(latency.items()))
        buckets = [(str(b), float(values.get(f"le|{b}", 0))) for b in LATENCY_BUCKETS]
        buckets.append(("+Inf", float(values.get("count", 0))))
        histogram = HistogramMetricFamily(
            "leaderleader_processing_latency_seconds",
            "From receiving a delivery to the end of its processing in the worker",
            buckets=buckets,
            sum_value=float(values.get("sum", 0)),
        )
        yield histogram


def _decoded(items: Iterable[tuple[bytes | str, bytes | str]]) -> Iterator[tuple[str, str]]:
    for key, value in items:
        yield (
            key.decode() if isinstance(key, bytes) else key,
            value.decode() if isinstance(value, bytes) else value,
        )
