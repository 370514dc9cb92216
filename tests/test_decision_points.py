"""Decision points a hand-made mutant got past: each test names the comparison it pins down."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from ledger.models import ApprovalWait, Delivery
from rules.engine import evaluate
from rules.loader import load_rules
from rules.model import Ticket
from service.settings import EXAMPLE_RULES
from tests.conftest import fixture_body, fixture_json, post_webhook, run_worker
from tests.test_properties import State, _assign, _status, _story, _waits, statuses_rules
from webhooks.extension import app_runtime

RULES = load_rules(EXAMPLE_RULES)
BOB, ALICE, DANA = "5b10a2844c20165700ede21g", "5b10ac8d82e05b22cc7d4ef5", "dana.k"
APPROVER_FIELD = "customfield_10050"


def _waiting(**values) -> Ticket:
    """A deploy in approval, the director named in the approver field, nothing known of before."""
    base = dict(key="PAY-1", project="PAY", issue_type="Task", status="Awaiting Approval",
                labels=("deploy",), reporter=BOB, fields={APPROVER_FIELD: DANA})
    base.update(values)
    return Ticket(**base)


def test_the_assignee_who_is_not_an_approver_holds_the_information():
    """Holder choice: with the approver in the approver field, the assignee is the one who knows."""
    verdict = evaluate(RULES, _waiting(assignee=ALICE))
    assert (verdict.approver, verdict.holder, verdict.holder_level) == ("dana", "alice", "tech_lead")
    assert "The information sits with Alice Ng (tech_lead), the assignee." in verdict.reasons


def test_an_assignee_who_is_the_approver_does_not_hold_the_information():
    """Holder choice: the approver assigned to themselves is not the holder; the reporter is."""
    verdict = evaluate(RULES, _waiting(assignee=DANA))
    assert (verdict.approver, verdict.holder) == ("dana", "bob")
    assert "The information sits with Bob Li (engineer), the reporter." in verdict.reasons
    assert verdict.flagged and verdict.decider == "bob"


def test_a_decider_at_the_approvers_own_level_is_still_suggested():
    """Decider vs approver: only someone *above* the approver is dropped, not an equal."""
    purchase = _waiting(labels=("purchase",), fields={}, assignee="carol.s",
                        assignee_before_approval=BOB)
    verdict = evaluate(RULES, purchase)
    assert (verdict.approver, verdict.decision_level, verdict.flagged) == ("carol", "manager", False)
    assert (verdict.decider, verdict.decider_path) == ("carol", ("bob", "alice", "carol"))


@pytest.mark.parametrize("order", [(0, 1, 2, 3), (0, 1, 3, 2)], ids=["in order", "re-entry first"])
def test_a_ticket_bounced_out_of_approval_and_back_in_the_same_millisecond_waits_again(
    make_app, tmp_path, order
):
    """Wait open and close: an exit at the very instant a new wait starts ends the earlier
    wait, never the new one, whichever of the two arrives first."""
    left = State(("In Progress", "3"), "dana.k")
    back = State(("Awaiting Approval", "10050"), "dana.k")
    history = _story(
        (1, [_status("In Progress", "3", ("Awaiting Approval", "10050")), _assign(BOB, "dana.k")], back),
        (2, [_status("Awaiting Approval", "10050", ("In Progress", "3"))], left),
        (2, [_status("In Progress", "3", ("Awaiting Approval", "10050"))], back),  # automation
    )
    bodies = history.deliveries()
    app = make_app(rules_file=statuses_rules(tmp_path))
    for n in order:
        assert post_webhook(app, bodies[n], delivery=f"d-{n}").status_code == 202
        run_worker(app)
    waits = [(w.started_at, w.ended_at) for w in _waits(app, "webhook")]
    assert waits == history.expected_waits()
    assert len(waits) == 2 and waits[0][1] == waits[1][0] and waits[1][1] is None


def test_an_exit_delivered_twice_closes_the_wait_once(app):
    """Wait close: a second webhook repeating the exit records nothing new."""
    repeat = fixture_json("issue_updated__cloud_leaves_approval")
    repeat["changelog"]["id"] = "10441"  # not the same changelog entry: it reaches the ledger
    bodies = [fixture_body("issue_updated__cloud_deploy_handed_to_director"),
              fixture_body("issue_updated__cloud_leaves_approval"), json.dumps(repeat).encode()]
    for n, body in enumerate(bodies):
        post_webhook(app, body, delivery=f"d-{n}")
    run_worker(app)
    with app_runtime(app).sessions() as session:
        outcomes = dict(session.execute(select(Delivery.delivery_id, Delivery.outcome)).all())
        (wait,) = session.scalars(select(ApprovalWait)).all()
    assert outcomes == {"d-0": "flagged", "d-1": "wait-closed", "d-2": "wait-end-recorded"}
    assert wait.ended_at is not None
