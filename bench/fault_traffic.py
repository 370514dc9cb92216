"""The traffic of the fault run: tickets whose right answer is known, sent the way Jira sends.

Every ticket is one of three kinds, its final state set on the fake Jira before its
first delivery is sent:

* ``flagged``: handed to a director on a rule that lets an engineer decide; it must get
  exactly one flag comment;
* ``ended``: the same hand-over, but its exit (sent first, 10% of the ticket
  deliveries arrive out of order this way) and its entry a second later: no comment;
* ``right_level``: a purchase waiting on the manager the rule names: no comment.

Between them go plain comments on flagged tickets (they change nothing) and re-sends
of deliveries already sent (Jira's duplicates, same delivery id). Deliveries are signed
with the webhook secret, paced at ``rate`` a second, and one refused (non-2xx, or no
connection) is sent again after a short backoff, as Jira re-sends a failed webhook.
"""

from __future__ import annotations

import copy
import heapq
import itertools
import json
import random
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import requests

from bench.common import ROOT
from tests.fakejira import FakeJira
from webhooks.auth import sign

FIXTURES = ROOT / "tests" / "fixtures" / "jira"
ENTER = "issue_updated__cloud_deploy_handed_to_director"
LEAVE = "issue_updated__cloud_leaves_approval"
RIGHT_LEVEL = "issue_updated__cloud_purchase_manager_approves"
PLAIN = "comment_created__cloud_plain_comment"
KINDS = (("flagged", 0.5), ("ended", 0.25), ("right_level", 0.25))


@dataclass(order=True)
class Delivery:
    due: float
    seq: int
    delivery_id: str = field(compare=False)
    body: bytes = field(compare=False, repr=False)
    retry: int = field(default=0, compare=False)


def _jira_time(at_ms: int) -> str:
    return datetime.fromtimestamp(at_ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "+0000"


class Tickets:
    """Makes tickets and their deliveries, and remembers each ticket's kind and phase."""

    def __init__(self, fake: FakeJira, seed: int) -> None:
        self.fake = fake
        self.rng = random.Random(seed)
        self.templates = {name: json.loads((FIXTURES / f"{name}.json").read_text())
                          for name in (ENTER, LEAVE, RIGHT_LEVEL, PLAIN)}
        self.kinds: dict[str, tuple[str, str]] = {}  # key -> (kind, phase)
        self._numbers = itertools.count(1)

    def _body(self, name: str, key: str, issue_id: str, at_ms: int, serial: int) -> dict[str, Any]:
        body = copy.deepcopy(self.templates[name])
        body["timestamp"] = at_ms
        body["issue"].update(key=key, id=issue_id)
        body["issue"]["fields"]["updated"] = _jira_time(at_ms)
        if body.get("changelog"):
            body["changelog"]["id"] = str(serial)
        return body

    def new(self, phase: str) -> list[tuple[float, str, bytes]]:
        """A new ticket on the fake Jira; its deliveries as (delay in seconds, id, body)."""
        n = next(self._numbers)
        kind = self.rng.choices([k for k, _ in KINDS], [w for _, w in KINDS])[0]
        key, issue_id = f"PAY-{5000 + n}", str(800000 + n)
        entered = int(time.time() * 1000) - 60_000
        enter = self._body(RIGHT_LEVEL if kind == "right_level" else ENTER, key, issue_id,
                           entered, 9_000_000 + n * 10)
        final = enter
        deliveries = [(0.0, f"{key}-enter", enter)]
        if kind == "ended":  # the exit, 30 s later in Jira, reaches us first
            final = self._body(LEAVE, key, issue_id, entered + 30_000, 9_000_000 + n * 10 + 1)
            deliveries = [(0.0, f"{key}-leave", final), (1.0, f"{key}-enter", enter)]
        # Jira's own view, as reconciliation reads it: the fields now, the changelog so far
        final["issue"]["fields"]["created"] = _jira_time(entered - 3_600_000)
        histories = [{"id": b["changelog"]["id"], "created": _jira_time(b["timestamp"]),
                      "author": b.get("user"), "items": b["changelog"]["items"]}
                     for b in sorted((b for _, _, b in deliveries), key=lambda b: b["timestamp"])]
        self.fake.add_issue(key, final["issue"]["fields"], histories, issue_id=issue_id)
        self.kinds[key] = (kind, phase)
        return [(delay, delivery_id, json.dumps(body).encode()) for delay, delivery_id, body in deliveries]

    def filler(self) -> tuple[str, bytes] | None:
        """A plain comment on a flagged ticket (nothing changes): id and body."""
        flagged = [k for k, (kind, _) in self.kinds.items() if kind == "flagged"]
        if not flagged:
            return None
        key = self.rng.choice(flagged)
        n = next(self._numbers)
        body = copy.deepcopy(self.templates[PLAIN])
        body["timestamp"] = int(time.time() * 1000)
        body["issue"].update(key=key, id=str(800000 + int(key.split("-")[1]) - 5000))
        comment = body["comment"]
        comment["id"] = str(7_000_000 + n)
        comment["self"] = comment["self"].rsplit("/", 1)[0] + "/" + comment["id"]
        return f"{key}-comment-{n}", json.dumps(body).encode()


class Sender:
    """Sends deliveries to the web at a steady pace from a pacing thread and a few senders."""

    def __init__(self, url: str, secret: str, tickets: Tickets, rate: float = 50.0,
                 max_tickets: int = 300, seed: int = 11) -> None:
        self.url, self.secret, self.tickets = url + "/webhooks/jira", secret, tickets
        self.rate, self.max_tickets = rate, max_tickets
        self.rng = random.Random(seed)
        self.phase = "warm-up"
        self.flowing = threading.Event()
        self.stats: Counter[str] = Counter()
        self.accepted: set[str] = set()  # answered 2xx (queued, duplicate or ignored)
        self.queued: set[str] = set()  # answered 202: the ledger must record each
        self._heap: list[Delivery] = []
        self._seq = itertools.count()
        self._lock = threading.Lock()
        self._in_flight = 0
        self._recent: list[tuple[str, bytes]] = []
        self._stop = threading.Event()
        self._local = threading.local()
        self._pool = ThreadPoolExecutor(max_workers=4)
        self._thread = threading.Thread(target=self._pace, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self._pool.shutdown(wait=True, cancel_futures=True)

    def idle(self) -> bool:
        """Nothing waiting to be sent (again) and nothing in flight."""
        with self._lock:
            return not self._heap and self._in_flight == 0

    def _count(self, name: str, by: int = 1) -> None:
        with self._lock:
            self.stats[name] += by

    def _later(self, seconds: float, delivery_id: str, body: bytes, retry: int = 0) -> None:
        with self._lock:
            heapq.heappush(self._heap, Delivery(time.monotonic() + seconds, next(self._seq),
                                                delivery_id, body, retry))

    def _next(self) -> Delivery | None:
        with self._lock:
            if self._heap and self._heap[0].due <= time.monotonic():
                return heapq.heappop(self._heap)
        if not self.flowing.is_set():
            return None
        roll = self.rng.random()
        if roll < 0.1 and len(self.tickets.kinds) < self.max_tickets:
            (_, first_id, first), *rest = self.tickets.new(self.phase)
            for delay, delivery_id, body in rest:
                self._later(delay, delivery_id, body)
            self._count("ticket_deliveries", 1 + len(rest))
            self._count("out_of_order", 1 if rest else 0)  # the exit, sent before its entry
            return Delivery(0, next(self._seq), first_id, first)
        if roll < 0.2 and self._recent:  # Jira delivers the same event twice
            delivery_id, body = self.rng.choice(self._recent)
            self._count("duplicates_sent")
            return Delivery(0, next(self._seq), delivery_id, body, retry=1)
        made = self.tickets.filler()
        return Delivery(0, next(self._seq), *made) if made else None

    def _pace(self) -> None:
        gap = 1.0 / self.rate
        upcoming = time.monotonic()
        while not self._stop.is_set():
            delivery = self._next()
            if delivery is not None:
                with self._lock:
                    self._in_flight += 1
                self._pool.submit(self._send, delivery)
            upcoming += gap
            time.sleep(max(0.0, upcoming - time.monotonic()))
            upcoming = max(upcoming, time.monotonic() - 1.0)  # never burst to catch up

    def _session(self) -> requests.Session:
        if not hasattr(self._local, "session"):
            self._local.session = requests.Session()
        return self._local.session  # type: ignore[no-any-return]

    def _send(self, delivery: Delivery) -> None:
        headers = {"Content-Type": "application/json", "X-Hub-Signature": sign(self.secret, delivery.body),
                   "X-Atlassian-Webhook-Identifier": delivery.delivery_id}
        if delivery.retry:
            headers["X-Atlassian-Webhook-Retry"] = str(delivery.retry)
        status, retry_after = 0, None
        try:
            answer = self._session().post(self.url, data=delivery.body, headers=headers, timeout=(1, 10))
            status, retry_after = answer.status_code, answer.headers.get("Retry-After")
        except requests.RequestException:
            self._local.__dict__.pop("session", None)
        try:
            self._count("sent")
            self._count(f"answered_{status}" if status else "no_connection")
            if status in (200, 202):
                with self._lock:
                    self.accepted.add(delivery.delivery_id)
                    if status == 202:
                        self.queued.add(delivery.delivery_id)
                        if len(self._recent) < 2000:
                            self._recent.append((delivery.delivery_id, delivery.body))
                return
            if status == 503 and not retry_after:
                self._count("503_without_retry_after")
            # sent again as Jira does, soon: the figure measures the service, not our patience
            self._later(min(2.0 ** delivery.retry, 5.0), delivery.delivery_id, delivery.body,
                        delivery.retry + 1)
        finally:
            with self._lock:
                self._in_flight -= 1
