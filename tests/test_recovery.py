"""Recovery: a killed worker's deliveries, long-running processes riding out a Redis
outage, and an honest count of outstanding work (issue: production under faults)."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import replace
from datetime import timedelta

import redis
from sqlalchemy import select, text

from jobs.inbox import encode, hands_key, inbox_key
from jobs.outstanding import outstanding
from jobs.rounds import run_round
from ledger.models import ApprovalWait, Comment, Delivery
from rules.model import utc_now
from service.runtime import Runtime
from tests.conftest import fixture_body, fixture_json, post_webhook, run_worker
from tests.test_faults import ROOT, _free_port, _start_redis, _worker_env
from webhooks.app import create_app
from webhooks.extension import app_runtime

DEPLOY = "issue_updated__cloud_deploy_handed_to_director"
PURCHASE = "issue_updated__cloud_purchase_director_approver_field"


def _wait_for(predicate, seconds: float, what: str, state=lambda: "") -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what} {state()}"
        time.sleep(0.1)


class _LedgerLock:
    """Holds the deliveries table so a worker blocks inside its batch (SQLite or PostgreSQL)."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.raw: sqlite3.Connection | None = None
        self.connection = None

    def __enter__(self) -> _LedgerLock:
        url = self.runtime.engine.url
        if url.get_backend_name() == "sqlite":
            self.raw = sqlite3.connect(url.database, isolation_level=None)
            self.raw.execute("BEGIN EXCLUSIVE")
        else:
            self.connection = self.runtime.engine.connect()
            self.connection.execute(text("LOCK TABLE deliveries IN ACCESS EXCLUSIVE MODE"))
        return self

    def __exit__(self, *exc: object) -> None:
        if self.raw is not None:
            self.raw.execute("ROLLBACK")
            self.raw.close()
        if self.connection is not None:
            self.connection.rollback()
            self.connection.close()


def test_a_worker_killed_mid_batch_has_its_deliveries_back_by_the_next_round(make_app, redis_conn):
    app = make_app()
    runtime = app_runtime(app)
    for name in (DEPLOY, PURCHASE):
        assert post_webhook(app, fixture_body(name), delivery=f"d-{name}").status_code == 202
    url = os.environ.get("REDIS_URL") or "unix://" + redis_conn.socket_file
    env = _worker_env(runtime.settings, url, "")
    env.pop("JIRA_URL")
    with _LedgerLock(runtime):  # the worker takes the deliveries, then blocks writing them
        worker = subprocess.Popen([sys.executable, "-m", "leaderleader", "worker"], cwd=ROOT,
                                  env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                  start_new_session=True)
        try:
            _wait_for(lambda: outstanding(runtime).in_hand == 2, 60, "the worker to take both")
        finally:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait(timeout=10)
    assert outstanding(runtime).in_hand == 2  # stranded: nothing else will take them
    round_ = run_round(runtime)
    assert round_.reclaimed_deliveries == 0, "a hand whose lease is still running is left alone"
    for hand in redis_conn.smembers(hands_key(runtime)):  # the lease runs out (20 s)
        redis_conn.delete(hand.decode() + ":lease")
    assert run_round(runtime).reclaimed_deliveries == 2
    run_worker(app)
    with runtime.sessions() as session:
        assert sorted(session.scalars(select(Delivery.delivery_id))) == [f"d-{DEPLOY}", f"d-{PURCHASE}"]
        assert len(session.scalars(select(ApprovalWait)).all()) == 2
    assert outstanding(runtime).total == 0


def test_outstanding_work_is_counted_wherever_it_sits(make_app, redis_conn):
    app = make_app(backlog_max_age_seconds=600)
    runtime = app_runtime(app)
    client = app.test_client()
    ready = client.get("/readyz").get_json()
    assert ready["status"] == "ready" and ready["checks"]["backlog"]["oldest_seconds"] is None

    old = (utc_now() - timedelta(minutes=30)).isoformat()
    redis_conn.rpush(inbox_key(runtime), encode("stuck-1", old, fixture_body(DEPLOY).decode()))
    hand = inbox_key(runtime) + ":hand:gone"
    redis_conn.rpush(hand, encode("stuck-2", utc_now().isoformat(), "{}"))
    redis_conn.sadd(hands_key(runtime), hand)
    found = outstanding(runtime)
    assert (found.waiting, found.in_hand, found.total) == (1, 1, 2)
    assert 1790 < found.oldest_seconds < 1900

    ready = client.get("/readyz")
    assert ready.status_code == 200  # the web tier still takes deliveries
    body = ready.get_json()
    assert body["status"] == "degraded" and "are the workers running" in body["reasons"][0]
    metrics = client.get("/metrics").get_data(as_text=True)
    assert 'leaderleader_outstanding{kind="in_hand"} 1.0' in metrics
    assert "leaderleader_queue_depth 2.0" in metrics

    redis_conn.delete(hand, inbox_key(runtime))
    post_webhook(app, fixture_body(DEPLOY))
    run_worker(app)  # dry-run: the comment is recorded; make one pending as a crash would leave
    with runtime.sessions() as session:
        session.scalars(select(Comment)).one().state = "pending"
        session.commit()
    found = outstanding(runtime)
    assert (found.comments_pending, found.waiting) == (1, 0)
    assert client.get("/readyz").get_json()["status"] == "ready"  # young: not degraded


def _redis_outage(port: int, data, server: subprocess.Popen[bytes], seconds: float):
    server.send_signal(signal.SIGTERM)
    server.wait(timeout=10)
    time.sleep(seconds)
    return _start_redis(port, data)


def test_scheduler_and_worker_ride_out_a_redis_outage(settings, fake_jira, tmp_path):
    """After Redis comes back, the scheduler is still running its rounds and a comment whose
    first POST failed is retried within seconds (rq's scheduler child is restarted)."""
    for name in (DEPLOY, PURCHASE):
        issue = fixture_json(name)["issue"]
        fake_jira.add_issue(issue["key"], issue["fields"], issue_id=issue["id"])
    port, data = _free_port(), tmp_path / "redis"
    data.mkdir()
    server = _start_redis(port, data)
    url = f"redis://127.0.0.1:{port}/0"
    settings = replace(settings, jira_url=fake_jira.url, jira_user="bot@acme.example",
                       jira_api_token="t0ken-value", retry_intervals=(1, 1, 1))
    runtime = Runtime.build(settings, connection=redis.Redis(port=port))
    app = create_app(runtime=runtime)
    env = {**_worker_env(settings, url, fake_jira.url), "LEADERLEADER_RETRY_INTERVALS": "1,1,1",
           "LEADERLEADER_WORKER_MAINTENANCE": "2",
           "LEADERLEADER_RECONCILE_SECONDS": "0"}  # the fake issues carry no changelog
    processes = [subprocess.Popen([sys.executable, "-m", "leaderleader", *command], cwd=ROOT,
                                  env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                  start_new_session=True)
                 for command in (["worker"], ["scheduler", "--every", "1"])]
    try:
        time.sleep(3)  # both up, the worker's rq scheduler child too
        server = _redis_outage(port, data, server, 4)
        time.sleep(1)
        assert [p.poll() for p in processes] == [None, None], "a process exited on the outage"
        # Jira fails the first POST: the comment job is retried in 1 s through rq's schedule
        fake_jira.fail_next("POST", r"/comment$", 500)
        assert post_webhook(app, fixture_body(DEPLOY)).status_code == 202
        _wait_for(lambda: _flag_comments(fake_jira, "PAY-101") == 1, 60, "the retried comment")
        # the scheduler's rounds carry on: a delivery set aside for another try comes back
        runtime.redis.rpush(inbox_key(runtime) + ":retry",
                            encode("set-aside", utc_now().isoformat(), fixture_body(PURCHASE).decode()))
        _wait_for(lambda: _delivered(runtime, "set-aside") and outstanding(runtime).total == 0,
                  60, "the scheduler's next round", lambda: outstanding(runtime))
        # one flag comment each (the fixtures' waits began days ago: reminders may follow)
        assert [_flag_comments(fake_jira, key) for key in ("PAY-101", "PAY-103")] == [1, 1]
    finally:
        for process in processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
        server.terminate()
        server.wait(timeout=10)
        runtime.engine.dispose()


def _flag_comments(fake_jira, key: str) -> int:
    return sum("{anchor:leaderleader-flag-" in c["body"] for c in fake_jira.comments(key))


def _delivered(runtime: Runtime, delivery_id: str) -> bool:
    with runtime.sessions() as session:
        return session.scalar(select(Delivery.id).where(Delivery.delivery_id == delivery_id)) is not None


def test_a_pending_comment_without_a_job_gets_one_and_a_retrying_one_keeps_its_backoff(make_app):
    """Reminders written by a round that then lost Redis are pending with no job: the next
    round queues them. A comment whose job waits for its retry is left to its schedule."""
    from jobs.comments import post_comment, requeue_pending

    app = make_app()
    runtime = app_runtime(app)
    for name in (DEPLOY, PURCHASE):
        post_webhook(app, fixture_body(name))
    run_worker(app)  # dry-run: both comments recorded; make them pending, as a crash leaves
    with runtime.sessions() as session:
        first, second = session.scalars(select(Comment).order_by(Comment.id)).all()
        for comment in (first, second):
            comment.state = "pending"
            comment.created_at = utc_now() - timedelta(minutes=1)
        session.commit()
        ids = (first.id, second.id)
    runtime.queue.empty()
    runtime.queue.enqueue_in(timedelta(minutes=10), post_comment, ids[1],  # its retry, later
                             job_id=f"leaderleader-comment-{ids[1]}")
    assert requeue_pending(runtime) == 1
    assert [j.id for j in runtime.queue.jobs] == [f"leaderleader-comment-{ids[0]}"]
    assert requeue_pending(runtime) == 0  # now queued: not again


def test_the_scheduler_is_back_within_seconds_of_a_redis_outage(settings, tmp_path):
    """A round that failed on the outage is tried again soon, not a doubled round later: the
    round after an outage has work to do (here a delivery set aside for another try)."""
    port, data = _free_port(), tmp_path / "redis"
    data.mkdir()
    server = _start_redis(port, data)
    runtime = Runtime.build(settings, connection=redis.Redis(port=port))
    env = {**_worker_env(settings, f"redis://127.0.0.1:{port}/0", ""),
           "LEADERLEADER_RECONCILE_SECONDS": "0"}
    env.pop("JIRA_URL")
    log = tmp_path / "scheduler.log"
    with log.open("wb") as out:  # rounds every 15 s, the default
        scheduler = subprocess.Popen([sys.executable, "-m", "leaderleader", "scheduler"], cwd=ROOT,
                                     env=env, stdout=out, stderr=out, start_new_session=True)
    try:
        time.sleep(2)  # started: its first round is done
        server.kill()  # Redis dies; the next round fails
        server.wait(timeout=10)
        _wait_for(lambda: b"scheduler.round.failed" in log.read_bytes(), 40, "a failed round")
        server = _start_redis(port, data)
        runtime.redis.rpush(inbox_key(runtime) + ":retry",
                            encode("set-aside", utc_now().isoformat(), fixture_body(PURCHASE).decode()))
        _wait_for(lambda: runtime.redis.llen(inbox_key(runtime) + ":retry") == 0, 10,
                  "the first round after the outage", lambda: log.read_text()[-1000:])
        assert scheduler.poll() is None
    finally:
        os.killpg(scheduler.pid, signal.SIGKILL)
        scheduler.wait(timeout=10)
        server.terminate()
        server.wait(timeout=10)
        runtime.engine.dispose()
