"""Processes as a user starts them: serve, demo, worker, gunicorn, and the embedded Redis they share.

Each test runs the real commands in subprocesses with a clean environment and a home of
its own (SQLite ledger, embedded Redis), whatever DATABASE_URL / REDIS_URL the suite runs on.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from sqlalchemy import create_engine, text

from service.embedded import EmbeddedRedis, running_embedded_url
from service.runtime import redis_connection
from service.settings import ConfigError, Settings
from tests.conftest import SECRET, fixture_body
from webhooks.auth import sign

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def clean_env(home: Path, **extra: str) -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG")}
    return {**keep, "LEADERLEADER_HOME": str(home), **extra}


def leaderleader(env: dict[str, str], *words: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "leaderleader", *words], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)


def servers_of(home: Path) -> set[int]:
    """The redis-server processes keeping their data in ``home`` (redis runs in its data dir)."""
    found = set()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if b"redis-server" in (proc / "cmdline").read_bytes() and (
                    (proc / "cwd").resolve() == home.resolve()):
                found.add(int(proc.name))
        except OSError:
            continue
    return found


def get(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def post_delivery(base: str, name: str, delivery: str) -> int:
    body = fixture_body(name)
    request = urllib.request.Request(
        f"{base}/webhooks/jira", data=body, method="POST",
        headers={"Content-Type": "application/json", "X-Hub-Signature": sign(SECRET, body),
                 "X-Atlassian-Webhook-Identifier": delivery})
    with urllib.request.urlopen(request, timeout=5) as response:
        return int(response.status)


def waits_in(ledger: Path) -> list[str]:
    engine = create_engine(f"sqlite:///{ledger}")
    try:
        with engine.connect() as connection:
            return [row[0] for row in connection.execute(
                text("SELECT issue_key FROM approval_waits ORDER BY issue_key"))]
    finally:
        engine.dispose()


def eventually(check, what: str, seconds: float = 30) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.2)


@pytest.fixture()
def served(tmp_path: Path) -> Iterator[tuple[str, Path, dict[str, str], subprocess.Popen[str]]]:
    """``leaderleader serve`` (gunicorn, worker, scheduler, embedded Redis) on a free port."""
    home = tmp_path / "home"
    ledger = tmp_path / "configured-ledger.db"
    env = clean_env(home, DATABASE_URL=f"sqlite:///{ledger}", JIRA_WEBHOOK_SECRET=SECRET)
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "leaderleader", "serve", "--port", str(port)],
                              env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True)
    base = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        try:
            return get(f"{base}/readyz")[0] == 200
        except (ConnectionError, urllib.error.URLError):
            assert server.poll() is None, server.communicate()
            return False

    try:
        eventually(ready, "serve did not become ready")
        yield base, ledger, env, server
    finally:
        if server.poll() is None:
            server.terminate()
        server.communicate(timeout=60)
    eventually(lambda: not servers_of(home), "serve left its embedded Redis running", 20)


def test_demo_beside_a_running_serve_touches_neither_its_ledger_nor_its_redis(served, tmp_path):
    base, ledger, env, server = served
    home = Path(env["LEADERLEADER_HOME"])
    assert post_delivery(base, "issue_updated__cloud_deploy_handed_to_director", "d-1") == 202
    eventually(lambda: waits_in(ledger) == ["PAY-101"], "the delivery was not processed")
    [redis_pid] = servers_of(home)

    scratch = tmp_path / "tmp"
    scratch.mkdir()
    # the same environment as the service: home, DATABASE_URL, secret
    demo = leaderleader({**env, "TMPDIR": str(scratch)}, "demo")
    assert demo.returncode == 0, demo.stderr
    assert "10 approval wait(s) in the ledger (the demo's own, deleted after)" in demo.stdout

    assert waits_in(ledger) == ["PAY-101"]  # no sample ticket mixed into the configured ledger
    assert servers_of(home) == {redis_pid}
    assert get(f"{base}/readyz")[0] == 200
    assert post_delivery(base, "issue_updated__cloud_purchase_director_approver_field", "d-2") == 202
    eventually(lambda: waits_in(ledger) == ["PAY-101", "PAY-103"],
               "the service stopped processing after the demo")
    assert not list(scratch.iterdir())  # the demo's scratch home is gone


def test_a_second_serve_or_a_worker_on_the_same_home_never_stops_the_first_ones_redis(served):
    base, ledger, env, server = served
    home = Path(env["LEADERLEADER_HOME"])
    [redis_pid] = servers_of(home)
    port = base.rsplit(":", 1)[1]

    busy = leaderleader(env, "serve", "--port", port, timeout=30)
    assert busy.returncode == 1
    assert busy.stderr.strip() == f"Error: cannot listen on 127.0.0.1:{port}: Address already in use"

    second = leaderleader(env, "serve", "--port", str(free_port()), timeout=30)
    assert second.returncode == 1
    [line] = second.stderr.strip().splitlines()
    assert line.startswith(f"Error: configuration: the embedded Redis of {home} belongs to "
                           "another leaderleader process (pid ")

    # a separate worker shares the serve's Redis (it finds it through the home) and leaves it be
    burst = leaderleader(env, "worker", "--burst", timeout=60)
    assert burst.returncode == 0, burst.stderr

    assert servers_of(home) == {redis_pid}
    assert get(f"{base}/readyz")[0] == 200
    assert post_delivery(base, "issue_updated__cloud_deploy_handed_to_director", "d-3") == 202
    eventually(lambda: waits_in(ledger) == ["PAY-101"], "the service stopped processing")


@pytest.mark.parametrize("words", [("worker", "--burst"), ("scheduler", "--once")])
def test_worker_and_scheduler_without_redis_url_or_a_serve_refuse_and_start_no_redis(tmp_path, words):
    home = tmp_path / "home"
    done = leaderleader(clean_env(home), *words, timeout=30)
    assert done.returncode == 1
    assert done.stderr.strip() == (
        f"Error: configuration: REDIS_URL is not set and no leaderleader serve is running with "
        f"LEADERLEADER_HOME={home}: set REDIS_URL, or start leaderleader serve first (only serve "
        "and demo start an embedded Redis)")
    assert not servers_of(home)
    assert not (home / "leaderleader.db").exists()


def test_the_embedded_redis_has_one_owner_and_only_the_owner_stops_it(tmp_path):
    home = tmp_path / "home"
    settings = Settings(home=home)
    with pytest.raises(ConfigError, match="REDIS_URL is not set"):
        redis_connection(settings)
    owner = EmbeddedRedis.start(home)
    try:
        assert running_embedded_url(home) == owner.url
        with pytest.raises(ConfigError, match=f"belongs to another leaderleader process "
                                              f"\\(pid {os.getpid()}\\)"):
            EmbeddedRedis.start(home)
        guest = redis_connection(settings)  # a separate worker's connection
        guest.set("k", "v")
        guest.close()
        del guest
        assert owner.connection.get("k") == b"v"  # the guest letting go stopped nothing
    finally:
        owner.stop()
    assert running_embedded_url(home) is None
    with pytest.raises(redis.ConnectionError):
        redis.Redis.from_url(owner.url).ping()
    with pytest.raises(ConfigError, match="production mode needs REDIS_URL"):
        redis_connection(Settings(home=home, production=True))
    again = EmbeddedRedis.start(home)  # the home is free for the next owner
    again.stop()


def _gunicorn(home: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gunicorn", *args, "--bind", f"127.0.0.1:{free_port()}",
         "webhooks.wsgi:app"],
        env=clean_env(home, **env), cwd=ROOT, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(("env", "says"), [
    ({}, "Error: configuration: REDIS_URL is not set and no leaderleader serve is running"),
    ({"REDIS_URL": "redis://127.0.0.1:1/0", "DRY_RUN": "perhaps"},
     "Error: configuration: DRY_RUN must be true or false, not 'perhaps'"),
    ({"REDIS_URL": "redis://127.0.0.1:1/0", "LEADERLEADER_PRODUCTION": "true"},
     "Error: configuration: production mode needs JIRA_WEBHOOK_SECRET or JIRA_WEBHOOK_TOKEN"),
])
def test_gunicorn_with_a_configuration_mistake_stops_with_one_line(tmp_path, env, says):
    started = time.monotonic()
    done = _gunicorn(tmp_path / "home", "--config", "python:service.gunicorn_conf", **env)
    assert done.returncode != 0
    assert time.monotonic() - started < 30
    assert "Traceback" not in done.stderr
    errors = [line for line in done.stderr.splitlines() if "[INFO]" not in line]
    assert len(errors) == 1 and errors[0].startswith(says), done.stderr
    assert not servers_of(tmp_path / "home")


def test_gunicorn_without_our_settings_still_stops_without_tracebacks(tmp_path):
    """No --config: each worker says the one line and gunicorn stops instead of respawning.

    Several workers failing at once used to end, now and then, in gunicorn's own
    traceback (a second "failed to load" while it stopped): three starts of four workers.
    """
    for attempt in range(3):
        done = _gunicorn(tmp_path / f"home{attempt}", "--workers", "4")
        assert done.returncode == 4, done.stderr
        assert "Traceback" not in done.stderr
        assert "Error: configuration: REDIS_URL is not set" in done.stderr
        assert not servers_of(tmp_path / f"home{attempt}")
