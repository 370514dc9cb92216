"""Recovery under faults: seconds from recovery to fully drained, and lost/duplicate/wrong comments.

A production-shaped stack on loopback (``bench/fault_stack.py``: gunicorn, two rq
workers, the scheduler, PostgreSQL, Redis with its append-only file, the fake Jira)
takes signed deliveries at ~50 a second (``bench/fault_traffic.py``: tickets whose right
answer is known, duplicates, exits before entries). Then, one at a time, while
deliveries keep flowing:

1. a worker killed -9 in the middle of a batch (a process manager starts another);
2. Redis killed for 15 s, then started again from its append-only file;
3. 20 comment POSTs answered 500, then 10 answered 429;
4. every database connection terminated (``pg_terminate_backend``);
5. the web stopped with SIGTERM and started again (refused deliveries are re-sent).

After each, the new traffic stops and the run measures the seconds from recovery until
nothing is outstanding: every refused delivery accepted, and the service's own count
(``jobs/outstanding.py``, what ``/readyz`` reports) at zero: no delivery waiting, in
hand or set aside, no job queued or scheduled for a retry, no comment pending. At the
end the fake Jira's comments are compared with each ticket's known answer:

* lost: a flagged ticket without its comment;
* duplicate: a second comment for the same wait;
* wrong: a comment on a ticket that must have none (its exit came first, or its
  approver is at the right level).

Every wait has a deadline; the whole run takes a few minutes and at most about eight.
Target: drained within 60 s of each recovery, 0 / 0 / 0.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from typing import Any

from rq.worker import Worker
from sqlalchemy import select

from bench.common import postgres_admin, scratch_postgres, write_result
from bench.fault_stack import SECRET, Stack, wait_until
from bench.fault_traffic import Sender, Tickets
from jobs.inbox import hands_key
from jobs.outstanding import Outstanding, outstanding
from ledger.models import ApprovalWait, Delivery
from service.runtime import Runtime

DRAIN_DEADLINE = 75.0  # seconds a fault's backlog may take before it is reported as stuck
TRAFFIC_BEFORE = 5.0  # seconds of traffic before each fault
RUN_DEADLINE = 480.0  # no fault starts after this many seconds
TARGET_SECONDS = 60.0
Fault = Callable[[Stack, Sender, Runtime], dict[str, Any]]


def _kill_worker_mid_batch(stack: Stack, sender: Sender, runtime: Runtime) -> dict[str, Any]:
    """Catch a worker with deliveries in hand (its drain job's private list), then SIGKILL it."""
    workers = {w.pid for w in stack.workers}
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        for raw in runtime.redis.smembers(hands_key(runtime)):
            hand = raw.decode()
            job_id = hand.rsplit(":hand:", 1)[-1]
            held = runtime.redis.llen(hand)
            if not held:
                continue
            owner = next((w.pid for w in Worker.all(queue=runtime.queue)
                          if w.get_current_job_id() == job_id and w.pid in workers), None)
            if owner is not None:
                stack.kill_worker(owner)
                return {"mid_batch": True, "in_hand_at_kill": int(runtime.redis.llen(hand))}
        time.sleep(0.005)
    stack.kill_worker(stack.workers[0].pid)  # none caught in the act: a kill all the same
    return {"mid_batch": False, "in_hand_at_kill": 0}


def _redis_outage(stack: Stack, sender: Sender, runtime: Runtime) -> dict[str, Any]:
    stack.kill_redis()
    time.sleep(15)
    return {"down_s": 15, "restart_s": round(stack.start_redis(), 2)}


def _jira_errors(stack: Stack, sender: Sender, runtime: Runtime) -> dict[str, Any]:
    """Traffic goes on until the 30 failed POSTs have been answered (the fault is over)."""
    before = stack.fake.count("POST", r"/comment$")
    stack.fake.fail_next("POST", r"/comment$", 500, times=20)
    stack.fake.fail_next("POST", r"/comment$", 429, times=10, headers={"Retry-After": "1"})
    took = wait_until(lambda: stack.fake.count("POST", r"/comment$") - before >= 30, 120,
                      "30 comment POSTs")
    return {"failed_posts": 30, "answered_within_s": round(took, 1)}


def _database_cut(stack: Stack, sender: Sender, runtime: Runtime) -> dict[str, Any]:
    return {"connections_terminated": stack.terminate_database_connections()}


def _web_restart(stack: Stack, sender: Sender, runtime: Runtime) -> dict[str, Any]:
    stopped = stack.stop_web()
    started = stack.start_web()
    return {"stop_s": round(stopped, 2), "start_s": round(started, 2)}


FAULTS: list[tuple[str, Fault]] = [
    ("worker_killed_mid_batch", _kill_worker_mid_batch),
    ("redis_down_15s", _redis_outage),
    ("jira_500x20_then_429x10", _jira_errors),
    ("database_connections_terminated", _database_cut),
    ("web_restarted_sigterm", _web_restart),
]


def _outstanding(runtime: Runtime) -> Outstanding | None:
    try:
        return outstanding(runtime)
    except Exception:  # noqa: BLE001 - Redis or the database still coming back
        return None


def drained_after(runtime: Runtime, sender: Sender, since: float) -> tuple[float | None, dict[str, Any]]:
    """Seconds from ``since`` until nothing is outstanding (seen twice, 0.5 s apart), or None."""
    first_zero: float | None = None
    last: Outstanding | None = None
    while time.monotonic() - since < DRAIN_DEADLINE:
        found = _outstanding(runtime)
        last = found or last
        if found is not None and found.total == 0 and sender.idle():
            if first_zero is not None and time.monotonic() - first_zero >= 0.5:
                return round(first_zero - since, 1), {}
            first_zero = first_zero or time.monotonic()
        else:
            first_zero = None
        time.sleep(0.25)
    return None, {"still_outstanding": last.to_dict() if last else "unknown",
                  "sender_idle": sender.idle()}


def explain(stack: Stack, runtime: Runtime, key: str, kind: str) -> dict[str, Any]:
    """What the ledger and Jira hold for a ticket that came out wrong, to diagnose it."""
    with runtime.sessions() as session:
        waits = session.scalars(select(ApprovalWait).where(ApprovalWait.issue_key == key)).all()
        ledger = [{"started": str(w.started_at), "ended": str(w.ended_at), "flagged": w.flagged,
                   "comments": [(c.kind, c.state, c.marker, c.error) for c in w.comments]}
                  for w in waits]
        deliveries = [(d.delivery_id, d.outcome, str(d.processed_at)) for d in session.scalars(
            select(Delivery).where(Delivery.issue_key == key).order_by(Delivery.id))]
    jira = [(c["id"], re.findall(r"\{anchor:[^}]*\}", c["body"])) for c in stack.fake.comments(key)]
    return {"key": key, "kind": kind, "waits": ledger, "deliveries": deliveries, "jira": jira}


def score(stack: Stack, runtime: Runtime, tickets: Tickets) -> tuple[dict[str, dict[str, int]], list[Any]]:
    """Lost, duplicate and wrong comments per phase, against each ticket's known answer;
    and what the ledger and Jira hold for each ticket that came out wrong."""
    out: dict[str, dict[str, int]] = {}
    problems = []
    for key, (kind, phase) in tickets.kinds.items():
        tally = out.setdefault(phase, {"tickets": 0, "flagged": 0, "lost": 0, "duplicate": 0, "wrong": 0})
        comments = stack.fake.comments(key)
        flags = sum("{anchor:leaderleader-flag-" in c["body"] for c in comments)
        tally["tickets"] += 1
        if kind == "flagged":
            tally["flagged"] += 1
            tally["lost"] += flags == 0
            tally["duplicate"] += max(0, flags - 1)
            tally["wrong"] += len(comments) - flags  # a reminder is not due in minutes
        else:
            tally["wrong"] += len(comments)
        if (flags != 1 or len(comments) > 1) if kind == "flagged" else comments:
            problems.append(explain(stack, runtime, key, kind))
    return out, problems


def _ledger_misses(runtime: Runtime, queued: set[str]) -> int:
    """Deliveries answered 202 that the ledger never recorded."""
    with runtime.sessions() as session:
        recorded = set(session.scalars(select(Delivery.delivery_id)))
    return len(queued - recorded)


def _phase(stack: Stack, sender: Sender, runtime: Runtime, name: str, fault: Fault | None) -> dict[str, Any]:
    sender.phase = name
    sender.flowing.set()
    time.sleep(TRAFFIC_BEFORE)
    details = fault(stack, sender, runtime) if fault else {}
    recovered = time.monotonic()
    sender.flowing.clear()
    seconds, stuck = drained_after(runtime, sender, recovered)
    print(f"  {name}: drained {seconds if seconds is not None else 'NOT'} s after recovery "
          f"{details} {stuck or ''}", flush=True)
    return {"drained_s": seconds, **details, **stuck}


def run(seed: int = 15) -> dict[str, Any]:
    with scratch_postgres("ll_faults") as database_url:
        if database_url is None:
            return write_result("faults", {"not_measured": "no PostgreSQL server (BENCH_POSTGRES)"})
        return _run(seed, database_url)


def _run(seed: int, database_url: str) -> dict[str, Any]:
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # the fake Jira's access log
    started = time.monotonic()
    stack = Stack(postgres_admin(), database_url)
    sender: Sender | None = None
    runtime: Runtime | None = None
    phases: dict[str, Any] = {}
    try:
        stack.start()
        runtime = Runtime.build(stack.settings(), migrate=False)
        tickets = Tickets(stack.fake, seed)
        sender = Sender(stack.web_url, SECRET, tickets)
        sender.start()
        print(f"faults: stack up in {time.monotonic() - started:.1f} s", flush=True)
        phases["warm-up"] = _phase(stack, sender, runtime, "warm-up", None)
        for name, fault in FAULTS:
            if time.monotonic() - started > RUN_DEADLINE:
                phases[name] = {"drained_s": None, "not_run": "the run's time was up"}
                continue
            phases[name] = _phase(stack, sender, runtime, name, fault)
        scored, problems = score(stack, runtime, tickets)
        for name, figures in phases.items():
            figures.update(scored.get(name, {}))
        totals = {k: sum(s[k] for s in scored.values()) for k in ("tickets", "flagged", "lost", "duplicate", "wrong")}
        worst = [p["drained_s"] for p in phases.values()]
        result = {
            "target": f"drained <= {TARGET_SECONDS:.0f} s after each fault; 0 lost / 0 duplicate / 0 wrong",
            "faults": phases, "totals": totals,
            "worst_drained_s": None if None in worst else max(worst),
            "problems": problems[:10],
            "traffic": {"503_without_retry_after": 0, **dict(sorted(sender.stats.items()))},
            "deliveries_not_in_ledger": _ledger_misses(runtime, sender.queued),
            "deadlocks_logged": stack.log_count("DeadlockDetected"),
            "delivery_errors_logged": stack.log_count("jira.delivery.error"),
            "processes_exited": stack.exited(),
            "run_s": round(time.monotonic() - started, 1),
        }
    finally:
        if sender is not None:
            sender.close()
        if runtime is not None:
            runtime.engine.dispose()
        stack.close()
    return write_result("faults", result)
