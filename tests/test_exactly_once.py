"""One comment per flagged wait, whatever happens, checked on the fake Jira's own records.

Re-runs, earlier comments found again (on a later page, by their property alone),
a drain job killed with deliveries in hand, two workers on one comment: the fake Jira
counts every request, so "exactly once" is checked on what Jira saw, not on our ledger.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis
from rq.job import Job
from rq.registry import StartedJobRegistry
from sqlalchemy import create_engine, func, select, text

from connector.client import PROPERTY_KEY, anchor_for
from jobs.comments import post_comment
from jobs.inbox import backlog, drain_inbox, inbox_key
from ledger.models import ApprovalWait, Comment, Delivery
from service.runtime import current_runtime
from tests.conftest import fixture_body, fixture_json, post_webhook, run_worker
from tests.test_faults import _worker_env as faults_worker_env
from webhooks.extension import app_runtime

DEPLOY = "issue_updated__cloud_deploy_handed_to_director"
ROOT = Path(__file__).resolve().parent.parent
JIRA = {"jira_user": "bot@acme.example", "jira_api_token": "t0ken-value"}


def _flagged(make_app, fake_jira, **overrides):
    """A flagged wait on PAY-101 whose comment job is queued, not yet run: (app, row id, marker)."""
    issue = fixture_json(DEPLOY)["issue"]
    fake_jira.add_issue(issue["key"], issue["fields"], issue_id=issue["id"])
    app = make_app(jira_url=fake_jira.url, **JIRA, **overrides)
    assert post_webhook(app, fixture_body(DEPLOY)).status_code == 202
    with app_runtime(app).activate():
        runtime = current_runtime()
        runtime.queue.remove(runtime.queue.jobs[0])  # process the delivery here, not the comment
        assert drain_inbox() == 1
        assert [j.func_name for j in runtime.queue.jobs] == ["jobs.comments.post_comment"]
        with runtime.sessions() as session:
            row = session.scalars(select(Comment)).one()
            return app, row.id, row.marker


def _row(app) -> Comment:
    with app_runtime(app).activate(), current_runtime().sessions() as session:
        row = session.scalars(select(Comment)).one()
        session.expunge(row)
        return row


def test_rerunning_a_finished_comment_job_makes_no_jira_call(make_app, fake_jira):
    app, comment_id, _ = _flagged(make_app, fake_jira)
    run_worker(app)
    assert _row(app).state == "posted" and len(fake_jira.comments("PAY-101")) == 1
    fake_jira.reset_log()
    with app_runtime(app).activate():
        job = current_runtime().queue.enqueue(post_comment, comment_id)  # rq runs it again
    run_worker(app)
    assert Job.fetch(job.id, connection=current_redis(app)).return_value() == "posted"
    assert fake_jira.calls() == []  # not even a look at the ticket's comments
    assert len(fake_jira.comments("PAY-101")) == 1


def current_redis(app) -> redis.Redis:
    return app_runtime(app).redis


def test_a_comment_job_for_a_wait_that_ended_posts_nothing_then_or_later(make_app, fake_jira):
    app, comment_id, _ = _flagged(make_app, fake_jira)
    assert post_webhook(app, fixture_body("issue_updated__cloud_leaves_approval")).status_code == 202
    with app_runtime(app).activate():
        runtime = current_runtime()
        (comment_job,) = [j for j in runtime.queue.jobs if j.func_name == "jobs.comments.post_comment"]
        runtime.queue.remove(comment_job)  # the exit is applied first
    run_worker(app)
    with app_runtime(app).activate():
        current_runtime().queue.enqueue(post_comment, comment_id)
        current_runtime().queue.enqueue(post_comment, comment_id)
    run_worker(app)
    assert _row(app).state == "skipped"
    assert fake_jira.count("POST", r"/comment$") == 0
    assert fake_jira.count("GET", r"/comment$") == 0


def _ours(marker: str, body: str = "Dana K, this decision could be made lower.") -> str:
    return f"{body}\n{{anchor:{anchor_for(marker)}}}"


def _others(fake_jira, count: int) -> None:
    for n in range(count):
        fake_jira.seed_comment("PAY-101", f"Comment {n}: looks fine to me.")


def test_our_comment_on_the_second_page_of_comments_is_found(make_app, fake_jira):
    """A worker died after Jira took the comment; 130 comments came before it, 20 after."""
    app, _, marker = _flagged(make_app, fake_jira)
    _others(fake_jira, 130)
    ours = fake_jira.seed_comment("PAY-101", _ours(marker), author="bot@acme.example", properties=[
        {"key": PROPERTY_KEY, "value": {"marker": marker}}])
    _others(fake_jira, 20)
    run_worker(app)
    assert fake_jira.count("POST", r"/comment$") == 0
    assert fake_jira.count("GET", r"/issue/PAY-101/comment$") == 2  # two pages of 100
    row = _row(app)
    assert (row.state, row.jira_comment_id) == ("posted", ours)
    assert len(fake_jira.comments("PAY-101")) == 151


def test_our_comment_is_found_by_its_property_when_the_anchor_was_stripped(make_app, fake_jira):
    """An edit (or an app rewriting bodies) removed the anchor; the comment property remains."""
    app, _, marker = _flagged(make_app, fake_jira)
    _others(fake_jira, 105)
    ours = fake_jira.seed_comment("PAY-101", "Dana K, this decision could be made lower.",
                                  author="bot@acme.example",
                                  properties=[{"key": PROPERTY_KEY, "value": {"marker": marker}}])
    run_worker(app)
    assert fake_jira.count("POST", r"/comment$") == 0
    row = _row(app)
    assert (row.state, row.jira_comment_id) == ("posted", ours)


def test_a_quote_of_our_anchor_or_another_waits_marker_is_not_our_comment(make_app, fake_jira):
    app, _, marker = _flagged(make_app, fake_jira)
    fake_jira.seed_comment("PAY-101", f"bq. {_ours(marker)}\nAgreed, Bob can decide.")
    fake_jira.seed_comment("PAY-101", "Earlier episode.", author="bot@acme.example", properties=[
        {"key": PROPERTY_KEY, "value": {"marker": marker.rsplit(":", 1)[0] + ":1"}},
        {"key": "other-app", "value": {"marker": marker}}])
    run_worker(app)
    assert fake_jira.count("POST", r"/comment$") == 1
    assert len(fake_jira.comments("PAY-101")) == 3
    assert _row(app).jira_comment_id == fake_jira.comments("PAY-101")[-1]["id"]


def _worker_env(settings, redis_url: str, fake_url: str) -> dict[str, str]:
    return faults_worker_env(settings, redis_url, fake_url, LEADERLEADER_MIGRATE_ON_START="false",
                             LEADERLEADER_COMMENT_LOCK_SECONDS="120")


def _redis_url(redis_conn: redis.Redis) -> str:
    return os.environ.get("REDIS_URL") or "unix://" + redis_conn.socket_file


def _wait_for(condition, what: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_two_workers_on_one_comment_post_it_once(make_app, fake_jira, redis_conn):
    """Deterministic: Jira holds the first worker's POST until the second worker has its copy."""
    app, comment_id, _ = _flagged(make_app, fake_jira)
    with app_runtime(app).activate():
        runtime = current_runtime()
        (first,) = runtime.queue.jobs
        second = runtime.queue.enqueue(post_comment, comment_id)  # a re-queue racing the original
    hold = fake_jira.hold_next("POST", r"/comment$")
    env = _worker_env(runtime.settings, _redis_url(redis_conn), fake_jira.url)

    def start() -> subprocess.Popen[bytes]:
        return subprocess.Popen([sys.executable, "-m", "leaderleader", "worker", "--burst"], cwd=ROOT,
                                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    workers = [start()]
    try:
        assert hold.arrived.wait(60), "the first worker never reached Jira"
        # The first worker is inside the POST; the second takes the copy meanwhile.
        workers.append(start())
        registry = StartedJobRegistry(queue=runtime.queue)
        _wait_for(lambda: second.id in registry.get_job_ids(), "the second worker to start its copy")
        time.sleep(0.3)  # it is now waiting for the first worker's hold on the comment
        assert fake_jira.count("POST", r"/comment$") == 1
    finally:
        hold.release()
    for worker in workers:
        assert worker.wait(timeout=90) == 0
    run_worker(app)  # whatever one of them handed back for a retry
    assert len(fake_jira.comments("PAY-101")) == 1
    assert fake_jira.count("POST", r"/comment$") == 1
    assert fake_jira.count("GET", r"/comment$") == 1  # only the first worker looked
    assert _row(app).state == "posted"
    assert {Job.fetch(j.id, connection=redis_conn).get_status() for j in (first, second)} == {"finished"}


def _hold_the_ledger(database_url: str):
    """Block every write to the ledger until the returned function is called."""
    if database_url.startswith("sqlite"):
        connection = sqlite3.connect(database_url.removeprefix("sqlite:///"), isolation_level=None)
        connection.execute("BEGIN EXCLUSIVE")
        return lambda: (connection.rollback(), connection.close())
    engine = create_engine(database_url.replace("postgresql://", "postgresql+psycopg://", 1))
    connection = engine.connect()
    transaction = connection.begin()
    connection.execute(text("LOCK TABLE deliveries IN ACCESS EXCLUSIVE MODE"))

    def release() -> None:
        transaction.rollback()
        connection.close()
        engine.dispose()

    return release


BATCH = [
    DEPLOY,
    "issue_updated__cloud_purchase_director_approver_field",
    "issue_updated__cloud_purchase_manager_approves",
    "issue_updated__cloud_unmapped_approver",
    "comment_created__cloud_intent",
]


def test_a_drain_job_killed_mid_batch_is_recovered_and_nothing_doubles(
    make_app, fake_jira, redis_conn, database_url
):
    for name in BATCH:
        issue = fixture_json(name).get("issue")
        if issue and issue.get("fields"):
            fake_jira.add_issue(issue["key"], issue["fields"], issue_id=issue["id"])
    app = make_app(jira_url=fake_jira.url, **JIRA)
    for n, name in enumerate(BATCH):
        assert post_webhook(app, fixture_body(name), delivery=f"d-{n}").status_code == 202
    runtime = app_runtime(app)
    (drain,) = runtime.queue.jobs
    release = _hold_the_ledger(runtime.settings.effective_database_url.replace("+psycopg", ""))
    worker = subprocess.Popen([sys.executable, "-m", "leaderleader", "worker"], cwd=ROOT,
                              env=_worker_env(runtime.settings, _redis_url(redis_conn), fake_jira.url),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)
    in_hand = f"{inbox_key(runtime)}:hand:{drain.id}"
    try:
        # The job took the whole batch in hand and is stuck writing it: kill it there.
        _wait_for(lambda: redis_conn.llen(in_hand) == len(BATCH), "the batch to be taken in hand")
        assert redis_conn.llen(inbox_key(runtime)) == 0
    finally:
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(timeout=10)
        release()
    with runtime.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Delivery)) == 0  # nothing committed
    # Jira retries two of them meanwhile: duplicates at the door
    assert post_webhook(app, fixture_body(DEPLOY), delivery="d-0", retry=1).status_code == 200
    # rq's maintenance finds the abandoned job and retries it; it finishes what it had in hand
    StartedJobRegistry(queue=runtime.queue).cleanup(timestamp=time.time() + 3600)
    run_worker(app)
    assert redis_conn.llen(in_hand) == 0
    with runtime.activate():
        assert backlog(runtime) == {"waiting": 0, "retrying": 0}
    with runtime.sessions() as session:
        ids = session.scalars(select(Delivery.delivery_id).order_by(Delivery.delivery_id)).all()
        assert ids == [f"d-{n}" for n in range(len(BATCH))]
        assert all(session.scalars(select(Delivery.processed_at)))
        waits = session.scalars(select(ApprovalWait).order_by(ApprovalWait.issue_key)).all()
        assert len(waits) == len({w.issue_key for w in waits}) == 4  # one per ticket
        flagged = [w for w in waits if w.flagged]
        comments = session.scalars(select(Comment)).all()
        assert len(comments) == len(flagged) >= 1
        # PAY-101's holder declared an intent in the same batch: its first comment is not
        # needed any more (look before posting); the others are posted
        states = {c.wait.issue_key: c.state for c in comments}
    assert states.pop("PAY-101") == "skipped" and set(states.values()) == {"posted"}
    for key in states:
        assert len(fake_jira.comments(key)) == 1
    assert fake_jira.comments("PAY-101") == []


@pytest.mark.parametrize("state", ["dry_run", "skipped", "failed"])
def test_a_comment_in_any_final_state_is_never_sent_again(make_app, fake_jira, state):
    app, comment_id, _ = _flagged(make_app, fake_jira)
    with app_runtime(app).activate(), current_runtime().sessions() as session:
        session.get(Comment, comment_id).state = state
        session.commit()
    fake_jira.reset_log()
    run_worker(app)
    assert fake_jira.calls() == []
    assert _row(app).state == state
