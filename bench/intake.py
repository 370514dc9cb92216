"""Webhook intake: our ``webhooks.wsgi:app`` vs a bare Flask endpoint, both under gunicorn.

Both servers get the same gunicorn settings and the same load: ``wrk`` sending unique,
signed deliveries of a realistic ~4 KB Jira payload. Runs alternate (ours, bare, ours,
bare, …) so machine noise hits both alike; the figure that matters is the ratio.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from bench.common import BENCH, ROOT, embedded_redis_url, free_port, services, versus, write_result
from webhooks.auth import sign

PAYLOAD = ROOT / "tests" / "fixtures" / "jira" / "issue_updated__cloud_deploy_handed_to_director.json"
SECRET = "bench-secret-value"
_RPS = re.compile(r"Requests/sec:\s+([\d.]+)")
_NON_2XX = re.compile(r"Non-2xx or 3xx responses:\s+(\d+)")


def _wait_up(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1)
            return
        except Exception:  # noqa: BLE001 - not up yet
            try:
                urllib.request.urlopen(
                    urllib.request.Request(f"http://127.0.0.1:{port}/webhooks/jira", data=b"{}",
                                           headers={"Content-Type": "application/json"}), timeout=1)
                return
            except urllib.error.HTTPError:
                return
            except Exception:  # noqa: BLE001
                time.sleep(0.2)
    raise RuntimeError(f"server on port {port} did not come up")


def _gunicorn(app: str, port: int, env: dict[str, str], workers: int) -> subprocess.Popen[bytes]:
    command = [
        sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}",
        "--workers", str(workers), "--worker-class", "sync", "--log-level", "warning", app,
    ]
    return subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.DEVNULL)


def _wrk(port: int, seconds: int, connections: int) -> tuple[float, int]:
    script = BENCH / "wrk_deliveries.lua"
    out = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "-s", str(script),
         f"http://127.0.0.1:{port}/webhooks/jira", "--", str(PAYLOAD),
         sign(SECRET, PAYLOAD.read_bytes())],
        capture_output=True, text=True, check=True,
    ).stdout
    rps = float(_RPS.search(out).group(1))  # type: ignore[union-attr]
    non_2xx = _NON_2XX.search(out)
    return rps, int(non_2xx.group(1)) if non_2xx else 0


def run(seconds: int = 8, rounds: int = 3, workers: int = 2, connections: int = 16) -> dict:
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
    ours_port, bare_port = free_port(), free_port()
    ours = _gunicorn("webhooks.wsgi:app", ours_port, env, workers)
    bare = _gunicorn("bench.bare_app:app", bare_port, env, workers)
    results: dict[str, list[float]] = {"ours": [], "bare": []}
    failures = 0
    try:
        _wait_up(ours_port)
        _wait_up(bare_port)
        _wrk(ours_port, 2, connections)  # warm up both
        _wrk(bare_port, 2, connections)
        for _ in range(rounds):
            keeper.flushdb()
            rps, bad = _wrk(ours_port, seconds, connections)
            results["ours"].append(rps)
            failures += bad
            rps, _ = _wrk(bare_port, seconds, connections)
            results["bare"].append(rps)
    finally:
        for process in (ours, bare):
            process.terminate()
            process.wait(timeout=20)
        keeper.flushdb()
    return write_result(
        "intake",
        {
            **versus(("ours_requests_per_s", results["ours"]),
                     ("bare_requests_per_s", results["bare"]), target_ratio=0.5),
            "non_2xx": failures,
            "gunicorn_workers": workers,
            "connections": connections,
            "seconds_per_run": seconds,
            "rounds": rounds,
            "payload_bytes": PAYLOAD.stat().st_size,
            **services(),
        },
    )
