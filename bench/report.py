"""The bottleneck report on years of history, vs a hand-written SQL aggregate, at growing sizes.

Generates ledgers (``bench.report_data``) of 10,000, 100,000 and 500,000 tickets with 5
approval waits each (two status changes a wait: 100k, 1M and 5M transitions) spread
over three years, on PostgreSQL (a scratch database, dropped after) and on SQLite (up
to 1M: loading and scanning 5M there takes longer than the whole PostgreSQL table),
then times ``GET /reports/bottlenecks`` (all history, and a 3-month window) against
the hand-written baseline, over the same table and with its stored ``wait_seconds``:

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

Why single figures differed from run to run: a freshly loaded table had not been
vacuumed (its first reads set hint bits, no page was all-visible, autovacuum could
start mid-run), and three timed runs on a 2-core machine, where the report's parallel
workers compete with anything else running, gave a median at the mercy of one noisy
run. So the tables are vacuumed and analysed after loading (``settle``), two warm-up
runs precede the timed ones, and ``REPEAT`` rounds (``BENCH_REPORT_REPEAT``, default 7)
each time the report, the baseline and the 3-month report back to back; every figure
is the median with the spread (min-max), the ratio computed per round. The first,
cold, run is reported separately.

``python -m bench report --sizes 100k,1M`` (or ``BENCH_REPORT_SIZES``) runs part of
the table.
"""

from __future__ import annotations

import os
import tempfile
import time
import uuid
from dataclasses import replace
from itertools import groupby
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, text

from bench.common import embedded_redis_url, scratch_postgres, spread, write_result
from bench.report_data import generate, settle
from ledger.db import make_engine, upgrade
from ledger.figures import percentile
from ledger.report_postgres import REPORT_WORK_MEM
from service.runtime import Runtime
from service.settings import Settings
from webhooks.app import create_app

#: transitions -> tickets (5 waits a ticket, 2 transitions a wait, 2% still open)
SIZES = {"100k": 10_000, "1M": 100_000, "5M": 500_000}
#: SQLite is measured up to this size
SQLITE_SIZES = ("100k", "1M")
WAITS_PER_TICKET = 5
REPEAT = int(os.environ.get("BENCH_REPORT_REPEAT", "7"))
WARM_UP = 2
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


def _seconds(call: Any) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


def measure(url: str, tickets: int, waits_per_ticket: int = WAITS_PER_TICKET) -> dict[str, Any]:
    """Load one ledger, settle it, then time the report and the baseline side by side."""
    engine = make_engine(url)
    upgrade(engine)
    started = time.perf_counter()
    transitions = generate(engine, tickets, waits_per_ticket)
    generated_in = time.perf_counter() - started
    settle(engine)
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

    def window() -> None:
        report("?since=2026-08-01&until=2026-11-01")

    def hand() -> None:
        hand_sql(engine)

    cold = _seconds(report)
    for _ in range(WARM_UP):
        report(), hand(), window()
    rounds = [(_seconds(report), _seconds(hand), _seconds(window)) for _ in range(REPEAT)]
    engine.dispose()
    whole, baseline, months = ([r[i] for r in rounds] for i in range(3))
    return {"transitions": transitions, "waits": tickets * waits_per_ticket, "tickets": tickets,
            "generated_in_s": round(generated_in, 1), "rounds": REPEAT,
            "report_first_cold_s": round(cold, 3), "report_all_s": spread(whole),
            "report_3_months_s": spread(months), "hand_sql_s": spread(baseline),
            "ratio_all_vs_hand": spread([w / b for w, b in zip(whole, baseline, strict=True)], 2)}


def _postgres(tickets: int) -> dict[str, Any] | str:
    with scratch_postgres("leaderleader_bench") as url:
        return "not measured: no PostgreSQL server" if url is None else measure(url, tickets)


def chosen_sizes(argv: list[str]) -> list[str]:
    """``--sizes 100k,1M`` on the command line, else ``BENCH_REPORT_SIZES``, else all."""
    value = os.environ.get("BENCH_REPORT_SIZES", ",".join(SIZES))
    if "--sizes" in argv and argv.index("--sizes") + 1 < len(argv):
        value = argv[argv.index("--sizes") + 1]
    sizes = [size.strip() for size in value.split(",") if size.strip()]
    unknown = [size for size in sizes if size not in SIZES]
    if unknown:
        raise SystemExit(f"unknown size(s) {', '.join(unknown)}: choose from {', '.join(SIZES)}")
    return sizes


def table(results: dict[str, Any]) -> str:
    """The growth table: one line per database and size, medians with their range."""
    def cell(figure: dict[str, float]) -> str:
        return f"{figure['median']} ({figure['min']}-{figure['max']})"
    lines = ["| database | transitions | report, all history (s) | report, 3 months (s) "
             "| hand SQL (s) | ratio |", "| --- | --- | --- | --- | --- | --- |"]
    for database in ("postgresql", "sqlite"):
        for size, found in results.get(database, {}).items():
            if isinstance(found, str):
                lines.append(f"| {database} | {size} | {found} | | | |")
                continue
            lines.append(f"| {database} | {size} | {cell(found['report_all_s'])} "
                         f"| {cell(found['report_3_months_s'])} | {cell(found['hand_sql_s'])} "
                         f"| {cell(found['ratio_all_vs_hand'])} |")
    return "\n".join(lines)


def run(argv: list[str] | None = None) -> dict:
    sizes = chosen_sizes(argv or [])
    results: dict[str, Any] = {
        "target": "under 0.5 s and within 1.5x of the hand SQL on PostgreSQL at 1M",
        "figures": "median (min-max) over the rounds; ratio per round", "postgresql": {},
        "sqlite": {}}
    for size in sizes:
        results["postgresql"][size] = _postgres(SIZES[size])
        if size in SQLITE_SIZES:
            with tempfile.TemporaryDirectory() as tmp:
                results["sqlite"][size] = measure(f"sqlite:///{tmp}/report.db", SIZES[size])
    written = write_result("report", results)
    print(table(results))
    return written
