"""The delivery inbox: how the intake hands deliveries to the workers, cheaply and safely.

Creating an rq job costs more than everything else the webhook endpoint does, so
the endpoint does not create one per delivery. One Redis script call de-duplicates
the delivery and appends it to an inbox list, atomically: a delivery is either
refused as a duplicate or in the inbox, never half of each. rq jobs (``drain_inbox``)
then process the inbox: one is queued when the inbox goes from empty to not empty,
and another for every ``DRAIN_EVERY`` waiting deliveries, so workers scale out.

A drain job moves deliveries (up to ``COMMIT_EVERY`` at a time) to its own "in hand"
list, applies them in one database transaction, each in its own savepoint, and
removes them only after the commit, so a worker killed mid-way leaves them there.
While it works the job keeps a short lease on its hand (``LEASE_SECONDS``); a hand
whose lease ran out belongs to a worker that is gone, and the scheduler's round puts
its deliveries back at the front of the inbox (``reclaim_abandoned``) within seconds,
instead of waiting for rq to notice the abandoned job. A delivery whose processing
fails is rolled back alone and goes to the retry list, which the scheduler puts back
into the inbox.
Processing is idempotent (the ledger's unique delivery id), so a repeat is harmless.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import threading
import weakref
from typing import Any

import redis
from redis.connection import ConnectionInterface, ConnectionPool
from redis.exceptions import NoScriptError
from rq import get_current_job
from rq.job import Job

from jobs.batch import apply_batch
from jobs.deliveries import Applied, Parsed, after_commit, apply_delivery, parse_delivery
from service.metrics import COUNTERS, count
from service.runtime import Runtime, current_runtime

log = logging.getLogger("leaderleader.jobs")

#: How long a delivery id is remembered at the door; the ledger remembers it for good.
SEEN_TTL_SECONDS = 7 * 24 * 3600
DRAIN_EVERY = 200
DRAIN_BATCH = 1000
#: deliveries applied in one database transaction (each in its own savepoint)
COMMIT_EVERY = 50
#: how long a drain job's hold on its hand lasts without renewal (renewed every batch)
LEASE_SECONDS = 20

_ACCEPT = """
if redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then
  local waiting = redis.call('RPUSH', KEYS[2], ARGV[2])
  redis.call('HINCRBY', KEYS[3], 'deliveries|queued', 1)
  return waiting
end
redis.call('HINCRBY', KEYS[3], 'deliveries|duplicate', 1)
return 0
"""
_ACCEPT_SHA = hashlib.sha1(_ACCEPT.encode()).hexdigest()


def inbox_key(runtime: Runtime) -> str:
    return f"leaderleader:inbox:{runtime.settings.queue_name}"


def hands_key(runtime: Runtime) -> str:
    """The set of "in hand" lists that drain jobs hold (or held, if their worker died)."""
    return inbox_key(runtime) + ":hands"


def _lease_key(in_hand: str) -> str:
    return in_hand + ":lease"


def _hold(runtime: Runtime, in_hand: str) -> None:
    """Take or renew this job's lease on its hand."""
    pipe = runtime.redis.pipeline()
    pipe.sadd(hands_key(runtime), in_hand)
    pipe.set(_lease_key(in_hand), "1", ex=LEASE_SECONDS)
    pipe.execute()


def _let_go(runtime: Runtime, in_hand: str) -> None:
    """Give up an empty hand; one still holding deliveries is left for ``reclaim_abandoned``."""
    if runtime.redis.llen(in_hand) == 0:
        pipe = runtime.redis.pipeline()
        pipe.srem(hands_key(runtime), in_hand)
        pipe.delete(_lease_key(in_hand))
        pipe.execute()


def encode(delivery_id: str, received_at: str, body: str) -> str:
    """One list entry: id and time on the first two lines (header values hold no newline)."""
    return f"{delivery_id}\n{received_at}\n{body}"


def decode(entry: bytes | str) -> tuple[str, str, str]:
    text = entry.decode("utf-8") if isinstance(entry, bytes) else entry
    delivery_id, received_at, body = text.split("\n", 2)
    return delivery_id, received_at, body


def enqueue_drain(runtime: Runtime) -> Job:
    """Queue a job that processes waiting deliveries."""
    return runtime.queue.enqueue(
        drain_inbox,
        retry=runtime.retry(),
        result_ttl=600,
        failure_ttl=7 * 24 * 3600,
        description="drain the delivery inbox",
    )


class _DoorConnections(threading.local):
    """Each web thread's own connection to the inbox's Redis, per pool, kept between deliveries.

    The intake's one Redis call goes straight through a connection (send the script,
    read the answer): the client's general command path (taking a connection from the
    pool and giving it back, its retry wrapper, events and instruments) cost a third of
    the round trip, measured from the endpoint. A broken connection is dropped and made
    again; while Redis stays unreachable the endpoint answers 503, so Jira retries.
    """

    def __init__(self) -> None:
        self.held: weakref.WeakKeyDictionary[ConnectionPool, tuple[int, ConnectionInterface]] = (
            weakref.WeakKeyDictionary())

    def connection(self, pool: ConnectionPool) -> ConnectionInterface:
        held = self.held.get(pool)
        if held is None or held[0] != os.getpid():  # a forked child never shares a socket
            held = (os.getpid(), pool.make_connection())
            self.held[pool] = held
        return held[1]


_door = _DoorConnections()


def _script(connection: ConnectionInterface, keys: tuple[str, ...], args: tuple[Any, ...]) -> Any:
    """The accept script, by its digest (its text goes only when Redis does not know it)."""
    connection.send_command("EVALSHA", _ACCEPT_SHA, len(keys), *keys, *args)
    try:
        return connection.read_response()
    except NoScriptError:
        connection.send_command("EVAL", _ACCEPT, len(keys), *keys, *args)
        return connection.read_response()


def _run_accept(runtime: Runtime, keys: tuple[str, ...], args: tuple[Any, ...]) -> Any:
    """The accept script through this thread's connection.

    A connection found broken (Redis restarted, the connection killed) drops its socket
    and the call is made once more on a new one, as the client would: if the first call
    did reach Redis, the second finds the delivery already seen, which is still an
    accepted delivery. A second failure is Redis being away: the caller answers 503.
    """
    pool = runtime.redis.connection_pool
    try:
        return _script(_door.connection(pool), keys, args)
    except (redis.ConnectionError, redis.TimeoutError):
        return _script(_door.connection(pool), keys, args)


def accept(runtime: Runtime, delivery_id: str, body: str, received_at: str) -> bool:
    """Put a delivery in the inbox unless seen before; False for a duplicate.

    Raises redis.RedisError when Redis is unreachable: nothing was accepted then.
    """
    waiting = _run_accept(
        runtime, (f"leaderleader:seen:{delivery_id}", inbox_key(runtime), COUNTERS),
        (SEEN_TTL_SECONDS, encode(delivery_id, received_at, body)),
    )
    if not waiting:
        return False
    if waiting == 1 or waiting % DRAIN_EVERY == 0:
        enqueue_drain(runtime)
    return True


_ISSUE_KEY = re.compile(rb'"key"\s*:\s*"([A-Za-z][A-Za-z0-9_]*-[0-9]+)"')


def _lock_order(entry: bytes | str) -> tuple[int, bytes]:
    """Apply a batch ticket by ticket, in one order for every worker.

    Two workers whose batches touch the same tickets then take the tickets' rows (and the
    waits under them) in the same order, so they can wait for each other but never
    deadlock. Deliveries of one ticket keep their order; the ledger orders them by
    their own times anyway. The first issue key in the body is enough to sort by. A body
    with no key (a Server comment naming its issue only by id) comes last: it only reads
    the ticket, which a delivery before it in the batch may be creating.
    """
    raw = entry if isinstance(entry, bytes) else entry.encode("utf-8", "surrogatepass")
    found = _ISSUE_KEY.search(raw)
    return (0, found.group(1).upper()) if found else (1, b"")


def _process(runtime: Runtime, entries: list[Any], in_hand: str) -> None:
    """Apply deliveries in one transaction, and remove them from the hand after its commit.

    One durable commit for many deliveries (on PostgreSQL the commit's flush to disk
    costs more than a delivery's own work), while a delivery that fails is rolled back
    alone and set aside for another try: the batch is applied in few round trips
    (``jobs.batch``), and if any delivery fails, again one savepoint per delivery. The
    entries leave the "in hand" list only after the commit: a worker killed before it
    leaves them all to be done again.
    """
    ordered = sorted(entries, key=_lock_order)
    failed, readable = [], []
    for entry in ordered:
        delivery_id = "unreadable"
        try:
            delivery_id, received_at, body = decode(entry)
            readable.append((entry, parse_delivery(delivery_id, body, received_at)))
        except Exception:
            _failed(runtime, entry, delivery_id)
            failed.append(entry)
    try:
        with runtime.sessions() as session:
            applied = apply_batch(session, runtime.rules.require(),
                                  [parsed for _, parsed in readable])
            session.commit()
    except Exception:
        log.warning("jira.delivery.batch_retried", exc_info=True,
                    extra={"deliveries": len(readable)})
        applied = _one_by_one(runtime, readable, failed)
    pipe = runtime.redis.pipeline()
    for entry in failed:
        pipe.rpush(inbox_key(runtime) + ":retry", entry)
    for entry in entries:
        pipe.lrem(in_hand, 1, entry)
    pipe.execute()
    after_commit(runtime, applied)


def _failed(runtime: Runtime, entry: Any, delivery_id: str) -> None:
    log.exception("jira.delivery.error", extra={"delivery": delivery_id})
    count(runtime.redis, "processed", "error")


def _one_by_one(runtime: Runtime, readable: list[tuple[Any, Parsed]],
                failed: list[Any]) -> list[Applied]:
    """Apply the batch again, each delivery in its own savepoint; the failing ones go to ``failed``."""
    applied = []
    with runtime.sessions() as session:
        for entry, parsed in readable:
            try:
                rules = runtime.rules.require()
                with session.begin_nested():
                    applied.append(apply_delivery(session, rules, parsed))
            except Exception:
                _failed(runtime, entry, parsed.delivery_id)
                failed.append(entry)
        session.commit()
    return applied


def _take(runtime: Runtime, in_hand: str, most: int) -> list[Any]:
    """Move up to ``most`` waiting deliveries into this job's hand, in one round trip."""
    pipe = runtime.redis.pipeline()
    for _ in range(most):
        pipe.lmove(inbox_key(runtime), in_hand, "LEFT", "RIGHT")
    return [entry for entry in pipe.execute() if entry is not None]


def drain_inbox(batch: int = DRAIN_BATCH) -> int:
    """rq job: process waiting deliveries (first any left in hand by a killed run); returns how many."""
    runtime = current_runtime()
    job = get_current_job()
    inbox = inbox_key(runtime)
    in_hand = f"{inbox}:hand:{job.id if job else 'inline'}"
    _hold(runtime, in_hand)
    try:
        left = runtime.redis.lrange(in_hand, 0, -1)
        if left:
            _process(runtime, left, in_hand)
        done = len(left)
        while done < batch:
            _hold(runtime, in_hand)
            entries = _take(runtime, in_hand, min(COMMIT_EVERY, batch - done))
            if not entries:
                return done
            _process(runtime, entries, in_hand)
            done += len(entries)
    finally:
        _let_go(runtime, in_hand)
    if runtime.redis.llen(inbox):
        enqueue_drain(runtime)  # keep jobs short; the rest goes to the next one
    return done


def reclaim_abandoned(runtime: Runtime) -> int:
    """Put the deliveries of hands whose lease ran out back at the front of the inbox.

    A drain job renews its lease every batch; a lease that ran out means its worker was
    killed (or lost Redis for longer than the lease). Applying a delivery twice is
    harmless (the ledger's unique delivery id), so a slow job that loses its hand to this
    costs a little work and nothing else. Returns how many deliveries were put back.
    """
    moved = 0
    for raw in runtime.redis.smembers(hands_key(runtime)):
        in_hand = raw.decode() if isinstance(raw, bytes) else str(raw)
        if runtime.redis.exists(_lease_key(in_hand)):
            continue
        while runtime.redis.lmove(in_hand, inbox_key(runtime), "RIGHT", "LEFT") is not None:
            moved += 1
        runtime.redis.srem(hands_key(runtime), in_hand)
    if moved:
        log.warning("jira.delivery.reclaimed", extra={"deliveries": moved})
        enqueue_drain(runtime)
    return moved


def requeue_failed(runtime: Runtime) -> int:
    """Put deliveries whose processing failed back into the inbox; returns how many.

    The scheduler calls this every round. It also queues a drain job whenever the inbox
    is not empty, so no delivery waits there for ever because the job meant for it was
    never queued (Redis failed just after accepting it) or was lost.
    """
    retry = inbox_key(runtime) + ":retry"
    moved = 0
    while runtime.redis.lmove(retry, inbox_key(runtime), "LEFT", "RIGHT") is not None:
        moved += 1
    if runtime.redis.llen(inbox_key(runtime)):
        enqueue_drain(runtime)
    return moved


def backlog(runtime: Runtime) -> dict[str, int]:
    """Deliveries waiting, and deliveries waiting for another try."""
    inbox = inbox_key(runtime)
    return {"waiting": int(runtime.redis.llen(inbox)),
            "retrying": int(runtime.redis.llen(inbox + ":retry"))}
