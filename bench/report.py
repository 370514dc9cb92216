"""The bottleneck report on years of history, vs a hand-written SQL aggregate.

Generates a ledger of ``tickets`` tickets with ``waits_per_ticket`` approval waits each
(two status changes a wait: 100,000 tickets x 5 waits = 1,000,000 transitions) spread
over three years, on SQLite and on PostgreSQL (a scratch database, dropped after),
then times ``GET /reports/bottlenecks`` (all history, and a 3-month window) against the
hand-written baseline, over the same table and with its stored ``wait_seconds``:

* the by-approver breakdown with comparable figures: per (approver, level) the episodes,
  flagged, waiting now, total wait and the median and p90 of ended waits;
* PostgreSQL: one ``GROUP BY approver, approver_level`` with
  ``percentile_cont(ARRAY[0.5, 0.9]) WITHIN GROUP (ORDER BY wait_seconds)``, run with the
  same ``work_mem`` and ``jit`` settings the report uses;
* SQLite (no ``percentile_cont``): the counts from one ``GROUP BY``, then the ended waits
  fetched ordered by approver, level and duration, median and p90 picked from each run
  in Python (the same interpolation as ``percentile_cont``).

It has no deleted-ticket filter, window, other breakdowns, trend, unmapped list or HTTP:
the report's ratio to it is what those cost on top of the one breakdown.
"""

from __future__ import annotations

import os
import random
import statistics
import tempfile
import time
import uuid
from dataclasses import replace
from datetime import datetime, timedelta
from itertools import groupby
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy import Engine, insert, text

from bench.common import embedded_redis_url, write_result
from ledger.db import make_engine, upgrade
from ledger.figures import percentile
from ledger.models import ApprovalWait, StatusChange, TicketRecord
from ledger.report_postgres import REPORT_WORK_MEM
from service.runtime import Runtime
from service.settings import Settings
from webhooks.app import create_app

PEOPLE = [("bob", "engineer"), ("alice", "tech_lead"), ("carol", "manager"), ("dana", "director"),
          ("erin", "vp"), ("712020:unmapped", None)]
RULES = ["Routine production deploy", "Spend under 5k", "Everything else", None]
START = datetime(2023, 11, 1)
HAND_SQL = {
    "sqlite": [
        "SELECT approver, approver_level, count(*), sum(flagged), sum(ended_at IS NULL), "
        "sum(wait_seconds) FROM approval_waits GROUP BY approver, approver_level",
        "SELECT approver, approver_level, wait_seconds FROM approval_waits "
        "WHERE wait_seconds IS NOT NULL ORDER BY approver, approver_level, wait_seconds",
    ],
    "postgresql": [
        f"SET LOCAL work_mem = '{REPORT_WORK_MEM}'",
        "SET LOCAL jit = off",
        "SELECT approver, approver_level, count(*), count(*) FILTER (WHERE flagged), "
        "count(*) FILTER (WHERE ended_at IS NULL), sum(wait_seconds), "
        "percentile_cont(ARRAY[0.5, 0.9]) WITHIN GROUP (ORDER BY wait_seconds) "
        "FROM approval_waits GROUP BY approver, approver_level",
    ],
}


def hand_sql(engine: Engine) -> None:
    """The baseline described in the module docstring."""
    statements = HAND_SQL[engine.dialect.name]
    with engine.begin() as conn:
        for statement in statements[:-1]:
            conn.execute(text(statement))
        rows = conn.execute(text(statements[-1])).all()
        if engine.dialect.name != "sqlite":
            return
        figures = {}
        for key, group in groupby(rows, key=lambda row: (row[0], row[1])):
            waits = [row[2] for row in group]
            figures[key] = (percentile(waits, 0.5), percentile(waits, 0.9))


def generate(engine: Engine, tickets: int, waits_per_ticket: int, seed: int = 7) -> int:
    """Bulk-insert the ledger; returns the number of transitions."""
    rng = random.Random(seed)
    span = (datetime(2026, 11, 1) - START).total_seconds()
    transitions = 0
    chunk = 2000
    with engine.begin() as conn:
        for first in range(0, tickets, chunk):
            ids = range(first + 1, min(first + chunk, tickets) + 1)
            conn.execute(insert(TicketRecord), [
                {"id": i, "key": f"P{i % 7}-{i}", "project": f"P{i % 7}", "summary": "", "labels": [],
                 "components": [], "fields": {}, "deleted": False} for i in ids])
            waits: list[dict[str, Any]] = []
            changes: list[dict[str, Any]] = []
            for i in ids:
                for w in range(waits_per_ticket):
                    started = START + timedelta(seconds=rng.random() * span)
                    approver, level = rng.choice(PEOPLE)
                    open_ = rng.random() < 0.02
                    ended = None if open_ else started + timedelta(hours=rng.expovariate(1 / 30))
                    waits.append({
                        "ticket_id": i, "issue_key": f"P{i % 7}-{i}", "project": f"P{i % 7}",
                        "team": rng.choice(["payments", "platform", None]), "status": "Awaiting Approval",
                        "started_at": started + timedelta(microseconds=w), "ended_at": ended,
                        "wait_seconds": None if ended is None
                        else (ended - started - timedelta(microseconds=w)).total_seconds(),
                        "approver": approver, "approver_level": level, "holder": "bob",
                        "holder_level": "engineer", "decider": "bob",
                        "decision_rule": rng.choice(RULES), "decision_level": "engineer",
                        "flagged": level in ("director", "vp"),
                        "unmapped": [approver] if level is None else [], "verdict": {},
                        "ticket_snapshot": {}, "source": "backfill"})
                    changes.append({"ticket_id": i, "at": started + timedelta(microseconds=w),
                                    "to_status": "Awaiting Approval", "enters_wait": True,
                                    "leaves_wait": False})
                    if ended is not None:
                        changes.append({"ticket_id": i, "at": ended, "to_status": "In Progress",
                                        "enters_wait": False, "leaves_wait": True})
            conn.execute(insert(ApprovalWait), waits)
            conn.execute(insert(StatusChange), changes)
            transitions += len(changes)
    return transitions


def _time(call: Any, repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def measure(url: str, tickets: int, waits_per_ticket: int) -> dict[str, Any]:
    engine = make_engine(url)
    upgrade(engine)
    started = time.perf_counter()
    transitions = generate(engine, tickets, waits_per_ticket)
    generated_in = time.perf_counter() - started
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT").execute(text("ANALYZE"))
    home = Path(tempfile.mkdtemp(prefix="ll-bench-"))
    redis_url, connection = embedded_redis_url(home)
    settings = replace(Settings.from_env(), home=home, database_url=url, redis_url=redis_url,
                       report_token="bench-report-token", queue_name=f"bench-{uuid.uuid4().hex[:6]}")
    app = create_app(runtime=Runtime.build(settings, connection=connection))
    client = app.test_client()
    headers = {"Authorization": "Bearer bench-report-token"}

    def report(query: str = "") -> None:
        response = client.get("/reports/bottlenecks" + query, headers=headers)
        assert response.status_code == 200, response.get_data(as_text=True)[:300]

    def hand() -> None:
        hand_sql(engine)

    report()  # warm caches alike
    hand()
    whole, window, baseline = _time(report), _time(lambda: report("?since=2026-08-01&until=2026-11-01")), _time(hand)
    engine.dispose()
    return {"transitions": transitions, "waits": tickets * waits_per_ticket, "tickets": tickets,
            "generated_in_s": round(generated_in, 1), "report_all_s": round(whole, 3),
            "report_3_months_s": round(window, 3), "hand_sql_s": round(baseline, 3),
            "ratio_all_vs_hand": round(whole / baseline, 2)}


def _scratch_postgres(admin_url: str) -> tuple[str, str]:
    name = f"leaderleader_bench_{uuid.uuid4().hex[:6]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = admin_url.rsplit("/", 1)[0]
    return name, f"{base}/{name}".replace("postgresql://", "postgresql+psycopg://", 1)


def run(tickets: int = 100_000, waits_per_ticket: int = 5) -> dict:
    results: dict[str, Any] = {"target": "within 2x of the hand SQL; under 0.5 s on PostgreSQL"}
    with tempfile.TemporaryDirectory() as tmp:
        results["sqlite"] = measure(f"sqlite:///{tmp}/report.db", tickets, waits_per_ticket)
    admin = os.environ.get("BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")
    try:
        name, url = _scratch_postgres(admin)
    except psycopg.Error as error:
        results["postgresql"] = f"not measured: {type(error).__name__}"
    else:
        try:
            results["postgresql"] = measure(url, tickets, waits_per_ticket)
        finally:
            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    return write_result("report", results)
