"""Worker throughput: deliveries/s through the inbox and ``apply_delivery`` vs rq no-op jobs.

Same worker class (rq's SimpleWorker), same Redis, same count. Our events are
status changes of distinct tickets into and out of approval (each its own transition)
with the approver at the right level, so each one parses, updates the ledger and
evaluates the rules, but needs no comment.

Each round runs the baseline then ours, side by side; the figures are the median of the
per-round ratios with their lowest and highest, so a noisy machine shows as spread.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
import uuid
from dataclasses import replace
from pathlib import Path

from rq import SimpleWorker

from bench.common import (ROOT, embedded_redis_url, round_ratios, services, spread, versus,
                          write_result)
from jobs.inbox import accept
from service.runtime import Runtime
from service.settings import Settings

TEMPLATE = ROOT / "tests" / "fixtures" / "jira" / "issue_updated__cloud_purchase_manager_approves.json"


def noop() -> None:
    """The baseline job: rq's own cost per job and nothing else."""


def _bodies(count: int) -> list[str]:
    base = json.loads(TEMPLATE.read_text())
    bodies = []
    for n in range(count):
        payload = json.loads(json.dumps(base))
        payload["timestamp"] = base["timestamp"] + n * 1000
        payload["issue"]["key"] = f"PAY-{10000 + n // 2}"
        payload["issue"]["id"] = str(50000 + n // 2)
        payload["changelog"]["id"] = str(200000 + n)  # each event its own transition
        if n % 2:  # every second event takes the ticket out of approval again
            items = payload["changelog"]["items"]
            items[0] = {**items[0], "fromString": "Awaiting Approval", "from": "10050",
                        "toString": "In Progress", "to": "3"}
            payload["issue"]["fields"]["status"]["name"] = "In Progress"
        bodies.append(json.dumps(payload))
    return bodies


def _spread(ours: list[float], baseline: list[float]) -> dict:
    """Each round's ratio (ours against the baseline run just before it), their median and range."""
    ratios = round_ratios(ours, baseline)
    ratio = spread(ratios)
    return {"round_ratios": [round(r, 3) for r in ratios], "median_round_ratio": ratio["median"],
            "min_round_ratio": ratio["min"], "max_round_ratio": ratio["max"]}


def _drain(runtime: Runtime) -> float:
    worker = SimpleWorker([runtime.queue], connection=runtime.redis)
    started = time.perf_counter()
    worker.work(burst=True, logging_level="ERROR")
    return time.perf_counter() - started


def run(jobs: int = 2000, rounds: int = 5) -> dict:
    home = Path(tempfile.mkdtemp(prefix="ll-bench-"))
    url, connection = embedded_redis_url(home)
    settings = replace(
        Settings.from_env(),
        home=home,
        redis_url=url,
        database_url=os.environ.get("DATABASE_URL") or f"sqlite:///{home / 'bench.db'}",
        queue_name=f"bench-{uuid.uuid4().hex[:6]}",
        jira_url=None,
    )
    runtime = Runtime.build(settings, connection=connection)
    ours, baseline = [], []
    with runtime.activate():
        for round_ in range(rounds):
            for _ in range(jobs):
                runtime.queue.enqueue(noop)
            baseline.append(jobs / _drain(runtime))
            for n, body in enumerate(_bodies(jobs)):
                accept(runtime, f"bench-{round_}-{n}", body, "2026-11-20T10:00:00")
            ours.append(jobs / _drain(runtime))
            with runtime.engine.begin() as conn:  # the next round starts from an empty ledger
                from ledger.models import Base

                for table in reversed(Base.metadata.sorted_tables):
                    conn.execute(table.delete())
    connection.flushdb()
    return write_result(
        "worker",
        {
            **versus(("ours_events_per_s", ours), ("noop_jobs_per_s", baseline),
                     target_ratio=0.7),
            **_spread(ours, baseline),
            "jobs_per_round": jobs,
            "rounds": rounds,
            **services(),
        },
    )
