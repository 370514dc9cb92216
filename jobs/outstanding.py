"""Work accepted but not finished yet, wherever it sits: the honest "is it drained?".

A delivery can wait in the inbox, wait for another try, be in a drain job's hand (or in
the hand of a worker that died), and a comment can be pending in the ledger while its
job waits in the queue or in rq's schedule for a retry. ``/readyz`` and ``/metrics``
report each, with the age of the oldest, so "0 waiting" never hides work in hand.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime

from rq.registry import ScheduledJobRegistry
from sqlalchemy import func, select

from jobs.inbox import decode, hands_key, inbox_key
from ledger.models import Comment
from rules.model import utc_now
from service.runtime import Runtime


@dataclass(frozen=True)
class Outstanding:
    waiting: int  # deliveries in the inbox
    retrying: int  # deliveries set aside after a failure, for the scheduler to put back
    in_hand: int  # deliveries a drain job has taken and not committed yet
    queued_jobs: int  # rq jobs waiting for a worker (drains, comments)
    scheduled_retries: int  # rq jobs waiting for their retry time
    comments_pending: int  # comments the ledger has not posted, recorded or given up yet
    oldest_seconds: float | None  # age of the oldest delivery or pending comment

    @property
    def total(self) -> int:
        return (self.waiting + self.retrying + self.in_hand + self.queued_jobs
                + self.scheduled_retries + self.comments_pending)

    def to_dict(self) -> dict[str, int | float | None]:
        return asdict(self)


def _received(entry: bytes | str | None) -> datetime | None:
    if entry is None:
        return None
    try:
        return datetime.fromisoformat(decode(entry)[1])
    except ValueError:
        return None


def outstanding(runtime: Runtime, now: datetime | None = None) -> Outstanding:
    """Count what is outstanding now (a few Redis round trips and one ledger query)."""
    now = now or utc_now()
    redis, inbox = runtime.redis, inbox_key(runtime)
    hands = [h.decode() if isinstance(h, bytes) else str(h)
             for h in redis.smembers(hands_key(runtime))]
    pipe = redis.pipeline(transaction=False)
    pipe.llen(inbox)
    pipe.llen(inbox + ":retry")
    pipe.lindex(inbox, 0)
    pipe.lindex(inbox + ":retry", 0)
    for hand in hands:
        pipe.llen(hand)
        pipe.lindex(hand, 0)
    answers = pipe.execute()
    waiting, retrying, heads = int(answers[0]), int(answers[1]), [answers[2], answers[3]]
    in_hand = sum(int(n) for n in answers[4::2])
    heads.extend(answers[5::2])
    with runtime.sessions() as session:
        pending, oldest_comment = session.execute(
            select(func.count(Comment.id), func.min(Comment.created_at))
            .where(Comment.state == "pending")).one()
    starts = [t for t in (*(_received(h) for h in heads), oldest_comment) if t is not None]
    oldest = max(0.0, (now - min(starts)).total_seconds()) if starts else None
    return Outstanding(
        waiting=waiting, retrying=retrying, in_hand=in_hand, queued_jobs=int(runtime.queue.count),
        scheduled_retries=ScheduledJobRegistry(queue=runtime.queue).count,
        comments_pending=int(pending or 0), oldest_seconds=oldest,
    )
