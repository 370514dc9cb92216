"""Property: the webhooks and the backfill tell the same story about a ticket's approval waits.

Hypothesis writes a ticket's history: status changes (to statuses the rules file names
by name in another case, or by id), reassignments, the approver field set and cleared
while the ticket waits, and edits that matter to nobody. That history then reaches the
ledger twice, from an empty ledger and queue each time:

- as Jira's webhooks, one signed delivery per change, shuffled, some repeated (Jira's
  retries under the same delivery id, a second webhook under another), through
  ``POST /webhooks/jira`` and the real rq worker, which also posts the comments to the
  fake Jira;
- as Jira's history, by backfill reading the ticket and its changelog from the fake Jira.

Both must give the waits the statuses say (one per stay in an approval status, with its
start and end), the same verdict for each, and at most one comment per flagged wait,
exactly one on the wait still open at the end.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from connector.client import PROPERTY_KEY
from jobs.history import backfill
from ledger.models import ApprovalWait, Base, Comment
from service.runtime import current_runtime
from service.settings import EXAMPLE_RULES
from tests.conftest import post_webhook, run_worker
from webhooks.extension import app_runtime

KEY, ISSUE_ID = "PAY-7", "10707"
BOB = "5b10a2844c20165700ede21g"
PEOPLE = [BOB, "5b10ac8d82e05b22cc7d4ef5", "carol.s", "dana.k", "erin.v",
          "5b10a2844c20165700ede999"]  # the last one is not in the rules file
STATUSES = [("To Do", "1"), ("In Progress", "3"), ("Awaiting Approval", "10050"),
            ("Pending Sign-off", "10051"), ("Done", "10002")]
APPROVAL_IDS = {"10050", "10051"}
#: the rules file names one approval status by name (in another case), the other by id
RULES_STATUSES = '["awaiting APPROVAL", "10051"]'
APPROVER_FIELD = "customfield_10050"
EPOCH = datetime(1970, 1, 1)
NO_SHRINK = (Phase.explicit, Phase.reuse, Phase.generate)
CASES = [lambda s: s, str.lower, str.upper, str.swapcase]


def _ms(at: datetime) -> int:
    return (at - EPOCH) // timedelta(milliseconds=1)


def _jira_time(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}+0000"


def _user(account: str) -> dict[str, Any]:
    return {"accountId": account, "displayName": f"User {account[:6]}", "accountType": "atlassian"}


@dataclass
class State:
    status: tuple[str, str]  # (name as Jira wrote it this time, id)
    assignee: str | None
    approvers: tuple[str, ...] = ()
    summary: str = "Ship the thing"

    @property
    def waiting(self) -> bool:
        return self.status[1] in APPROVAL_IDS


@dataclass
class Change:
    at: datetime
    history_id: str
    items: list[dict[str, Any]]
    after: State


@dataclass
class History:
    created: datetime
    labels: list[str]
    start: State
    changes: list[Change] = field(default_factory=list)

    @property
    def last(self) -> State:
        return self.changes[-1].after if self.changes else self.start

    def fields(self, state: State, updated: datetime) -> dict[str, Any]:
        approvers = [_user(a) for a in state.approvers]
        return {
            "summary": state.summary, "project": {"key": "PAY", "id": "10010"},
            "issuetype": {"name": "Task", "id": "10002"}, "labels": list(self.labels),
            "components": [], "priority": {"name": "Medium", "id": "3"},
            "status": {"name": state.status[0], "id": state.status[1]},
            "assignee": _user(state.assignee) if state.assignee else None,
            "reporter": _user(BOB), "created": _jira_time(self.created),
            "updated": _jira_time(updated),
            APPROVER_FIELD: (approvers if len(approvers) > 1 else approvers[0] if approvers else None),
        }

    def deliveries(self) -> list[bytes]:
        """One webhook body per change (the first is the ticket's creation), in time order."""

        def body(event: str, at: datetime, state: State, change: Change | None) -> bytes:
            payload: dict[str, Any] = {
                "timestamp": _ms(at), "webhookEvent": event, "issue_event_type_name": "issue_generic",
                "user": _user(BOB),
                "issue": {"id": ISSUE_ID, "key": KEY, "fields": self.fields(state, at)},
            }
            if change is not None:
                payload["changelog"] = {"id": change.history_id, "items": change.items}
            return json.dumps(payload).encode()

        return [body("jira:issue_created", self.created, self.start, None)] + [
            body("jira:issue_updated", c.at, c.after, c) for c in self.changes]

    def jira_histories(self) -> list[dict[str, Any]]:
        return [{"id": c.history_id, "created": _jira_time(c.at), "author": _user(BOB),
                 "items": c.items} for c in self.changes]

    def expected_waits(self) -> list[tuple[datetime, datetime | None]]:
        """The statuses' story: one wait per stay in an approval status."""
        waits: list[tuple[datetime, datetime | None]] = []
        opened = self.created if self.start.waiting else None
        for change in self.changes:
            if change.after.waiting and opened is None:
                opened = change.at
            elif not change.after.waiting and opened is not None:
                waits.append((opened, change.at))
                opened = None
        if opened is not None:
            waits.append((opened, None))
        return waits


def _users_text(users: tuple[str, ...]) -> str | None:
    if not users:
        return None
    return users[0] if len(users) == 1 else "[" + ", ".join(users) + "]"


@st.composite
def histories(draw: st.DrawFn) -> History:
    # Approval statuses come up more often than the others, so most histories wait.
    status_choice = st.sampled_from(STATUSES + STATUSES[2:4])
    cased = st.sampled_from(CASES)
    approver_set = st.lists(st.sampled_from(PEOPLE), min_size=1, max_size=2, unique=True).map(tuple)
    created = datetime(2026, 3, 2, 9) + timedelta(milliseconds=draw(st.integers(0, 10**9)))
    name, sid = draw(status_choice)
    start = State((draw(cased)(name), sid), draw(st.none() | st.sampled_from(PEOPLE)))
    if start.waiting and draw(st.booleans()):
        start.approvers = draw(approver_set)
    history = History(created, draw(st.sampled_from([["deploy"], ["purchase"], []])), start)
    state, at = start, created
    for n in range(draw(st.integers(1, 22))):
        at = at + timedelta(milliseconds=draw(st.integers(1000, 3 * 86400 * 1000)))
        items: list[dict[str, Any]] = []
        after = State(state.status, state.assignee, state.approvers, state.summary)
        if draw(st.integers(0, 9)) < 6:
            current = state.status[1]
            name, sid = draw(status_choice.filter(lambda s, now=current: s[1] != now))
            after.status = (draw(cased)(name), sid)
            items.append({"field": "status", "fieldtype": "jira", "fieldId": "status",
                          "from": state.status[1], "fromString": state.status[0],
                          "to": sid, "toString": after.status[0]})
        if draw(st.integers(0, 9)) < 3:
            assignee = draw(st.none() | st.sampled_from(PEOPLE))
            if assignee != state.assignee:
                after.assignee = assignee
                items.append({"field": "assignee", "fieldtype": "jira", "fieldId": "assignee",
                              "from": state.assignee, "fromString": state.assignee,
                              "to": assignee, "toString": assignee,
                              "tmpFromAccountId": state.assignee, "tmpToAccountId": assignee})
        # The approver field is filled and emptied while the ticket waits, and emptied at
        # the latest when it leaves: the waits follow the status alone.
        wanted = state.approvers
        action = draw(st.sampled_from(["keep", "keep", "set", "clear"]))
        if action == "set":
            wanted = draw(approver_set)
        elif action == "clear":
            wanted = ()
        if not after.waiting:
            wanted = ()
        if wanted != state.approvers:
            after.approvers = wanted
            items.append({"field": "Approver", "fieldtype": "custom", "fieldId": APPROVER_FIELD,
                          "from": _users_text(state.approvers), "fromString": _users_text(state.approvers),
                          "to": _users_text(wanted), "toString": _users_text(wanted)})
        if not items or draw(st.integers(0, 9)) == 0:
            after.summary = f"Ship the thing, take {n}"
            items.append({"field": "summary", "fieldtype": "jira", "fieldId": "summary",
                          "from": None, "fromString": state.summary, "to": None,
                          "toString": after.summary})
        history.changes.append(Change(at, str(20000 + n), items, after))
        state = after
    return history


@st.composite
def deliveries(draw: st.DrawFn, bodies: list[bytes]) -> list[list[tuple[str, bytes, bool]]]:
    """The bodies shuffled, some repeated, cut into the batches a worker runs between."""
    sent = [(f"d-{n}", body, False) for n, body in enumerate(bodies)]
    for n in draw(st.lists(st.integers(0, len(bodies) - 1), max_size=4)):
        if draw(st.booleans()):
            sent.append((f"d-{n}", bodies[n], True))  # Jira's retry: same delivery id
        else:
            sent.append((f"again-{uuid.uuid4().hex[:8]}", bodies[n], False))  # a second webhook
    sent = draw(st.permutations(sent))
    cuts = sorted(draw(st.lists(st.integers(1, max(1, len(sent) - 1)), max_size=2, unique=True)))
    return [sent[a:b] for a, b in zip([0, *cuts], [*cuts, len(sent)], strict=True)]


def statuses_rules(tmp_path: Path) -> Path:
    """The example rules file, with its approval statuses named as ``RULES_STATUSES``."""
    text = EXAMPLE_RULES.read_text()
    start = text.index("  statuses:")
    end = text.index("\n", start)
    path = tmp_path / "rules.yaml"
    path.write_text(text[:start] + f"  statuses: {RULES_STATUSES}" + text[end:])
    return path


@pytest.fixture()
def rules_file(tmp_path: Path) -> Path:
    return statuses_rules(tmp_path)


def _empty(app) -> None:
    """An empty ledger and an empty queue, as if nothing had ever been delivered."""
    runtime = app_runtime(app)
    with runtime.engine.begin() as connection:
        for table in reversed(Base.metadata.sorted_tables):
            connection.execute(table.delete())
    runtime.redis.flushdb()


def _waits(app, source: str) -> list[ApprovalWait]:
    with app_runtime(app).sessions() as session:
        waits = list(session.scalars(select(ApprovalWait).where(ApprovalWait.source == source)
                                     .order_by(ApprovalWait.started_at)))
        session.expunge_all()
        return waits


def _backfill(app) -> None:
    """Backfill as the CLI runs it: every ticket of the project, read from Jira."""
    with app_runtime(app).activate():
        runtime = current_runtime()
        for _ in backfill(runtime.sessions, runtime.jira().search_issues("project = PAY"),
                          runtime.rules.require()):
            pass


def _verdict(wait: ApprovalWait) -> tuple[Any, ...]:
    return (wait.started_at, wait.ended_at, wait.flagged, wait.approver, wait.holder,
            wait.decider, wait.decision_rule)


def test_webhooks_and_backfill_give_the_waits_the_statuses_say(make_app, fake_jira, rules_file):
    app = make_app(rules_file=rules_file, jira_url=fake_jira.url, jira_user="bot@acme.example",
                   jira_api_token="t0ken-value")

    # No shrinking: each example runs the whole service, and a failure prints its deliveries.
    @settings(max_examples=40, deadline=None, database=None, phases=NO_SHRINK,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                     HealthCheck.function_scoped_fixture])
    @given(history=histories(), data=st.data())
    def check(history: History, data: st.DataObject) -> None:
        _empty(app)
        fake_jira.clear_comments(KEY)
        fake_jira.add_issue(KEY, history.fields(history.last, history.changes[-1].at),
                            history.jira_histories(), issue_id=ISSUE_ID)
        expected = history.expected_waits()

        # 1. the webhooks, shuffled and repeated, through the intake and the worker
        seen: set[str] = set()
        for batch in data.draw(deliveries(history.deliveries()), label="deliveries"):
            for delivery, body, retry in batch:
                answer = post_webhook(app, body, delivery=delivery, retry=1 if retry else None)
                assert answer.status_code == (200 if delivery in seen else 202), answer.get_json()
                seen.add(delivery)
            run_worker(app)
        webhook = _waits(app, "webhook")
        assert [(w.started_at, w.ended_at) for w in webhook] == expected
        with app_runtime(app).sessions() as session:
            rows = list(session.scalars(select(Comment)))
        on_jira = fake_jira.comments(KEY)
        markers = [p["value"]["marker"] for c in on_jira for p in c["properties"]
                   if p["key"] == PROPERTY_KEY]
        assert len(markers) == len(on_jira) == len(set(markers))  # each one ours, none twice
        assert len({r.wait_id for r in rows}) == len(rows)  # one comment row per wait at most
        flagged = {w.id for w in webhook if w.flagged}
        assert {r.wait_id for r in rows} <= flagged
        for row in rows:
            assert row.kind == "flag" and row.state in ("posted", "skipped"), (row.state, row.error)
            assert markers.count(row.marker) == (row.state == "posted")
        assert len(on_jira) == sum(r.state == "posted" for r in rows)
        if webhook and webhook[-1].ended_at is None and webhook[-1].flagged:
            still_waiting = next(r for r in rows if r.wait_id == webhook[-1].id)
            assert still_waiting.state == "posted"  # the wait still open got its comment

        # 2. the same history read back from Jira by backfill, into an empty ledger
        _empty(app)
        _backfill(app)
        rebuilt = _waits(app, "backfill")
        assert [(w.started_at, w.ended_at) for w in rebuilt] == expected
        assert [_verdict(w) for w in webhook] == [_verdict(w) for w in rebuilt]

    check()


# -- the cases the property found, kept as plain examples ----------------------------------
def _status(name: str, sid: str, to: tuple[str, str]) -> dict[str, Any]:
    return {"field": "status", "fieldId": "status", "from": sid, "fromString": name,
            "to": to[1], "toString": to[0]}


def _assign(frm: str | None, to: str | None) -> dict[str, Any]:
    return {"field": "assignee", "fieldId": "assignee", "from": frm, "fromString": frm,
            "to": to, "toString": to, "tmpFromAccountId": frm, "tmpToAccountId": to}


def _story(*steps: tuple[int, list[dict[str, Any]], State]) -> History:
    created = datetime(2026, 3, 2, 9)
    history = History(created, ["deploy"], State(("In Progress", "3"), BOB))
    for n, (hours, items, after) in enumerate(steps):
        history.changes.append(Change(created + timedelta(hours=hours), str(30000 + n), items, after))
    return history


def test_a_wait_that_began_unassigned_has_no_approver_in_either_path(make_app, fake_jira, rules_file):
    """It went to approval unassigned and was given to a director later: nobody approved it then."""
    history = _story(
        (1, [_status("In Progress", "3", ("Awaiting Approval", "10050")), _assign(BOB, None)],
         State(("Awaiting Approval", "10050"), None)),
        (2, [_assign(None, "dana.k")], State(("Awaiting Approval", "10050"), "dana.k")),
    )
    app = make_app(rules_file=rules_file, jira_url=fake_jira.url, jira_user="bot@acme.example",
                   jira_api_token="t0ken-value")
    fake_jira.add_issue(KEY, history.fields(history.last, history.changes[-1].at),
                        history.jira_histories(), issue_id=ISSUE_ID)
    for n, body in enumerate(history.deliveries()):
        post_webhook(app, body, delivery=f"d-{n}")
    run_worker(app)
    (webhook,) = _waits(app, "webhook")
    _empty(app)
    _backfill(app)
    (rebuilt,) = _waits(app, "backfill")
    assert (webhook.approver, webhook.flagged) == (rebuilt.approver, rebuilt.flagged) == (None, False)


def test_a_late_reassignment_does_not_change_who_held_the_information(make_app, rules_file):
    """Bob handed the ticket to Alice, who sent it to a director; Bob's change arrives last."""
    history = _story(
        (1, [_assign(BOB, "5b10ac8d82e05b22cc7d4ef5")],
         State(("In Progress", "3"), "5b10ac8d82e05b22cc7d4ef5")),
        (2, [_status("In Progress", "3", ("Awaiting Approval", "10050")),
             {"field": "Approver", "fieldId": APPROVER_FIELD, "from": None, "fromString": None,
              "to": "dana.k", "toString": "dana.k"}],
         State(("Awaiting Approval", "10050"), "5b10ac8d82e05b22cc7d4ef5", ("dana.k",))),
    )
    created, handed, entered = history.deliveries()
    app = make_app(rules_file=rules_file)
    for delivery, body in (("created", created), ("entered", entered), ("handed", handed)):
        post_webhook(app, body, delivery=delivery)
        run_worker(app)
    (wait,) = _waits(app, "webhook")
    assert (wait.approver, wait.holder) == ("dana", "alice")
