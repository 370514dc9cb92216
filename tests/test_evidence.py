"""What counts as a wait, and evidence beating memory: through the intake, a real worker
and the fake Jira."""

from __future__ import annotations

import json

import pytest

from ledger.models import ApprovalWait
from tests.conftest import fixture_body, fixture_json, post_webhook, run_worker
from tests.fakejira import FakeJira
from tests.test_pipeline import DEPLOY, comments, jira_app, seed, waits
from webhooks.extension import app_runtime

LEAVES = "issue_updated__cloud_leaves_approval"
DONE_AFTER_MISSED_EXIT = "issue_updated__cloud_done_after_missed_exit"
LABELS_WHEN_DONE = "issue_updated__cloud_labels_edited_when_done"
PURCHASE = "issue_updated__cloud_purchase_director_approver_field"
PURCHASE_APPROVED = "issue_updated__cloud_purchase_approved_field_left_filled"
PF_ENTERS = "workflow_transition__server_enters_approval"
PF_LEAVES = "workflow_transition__server_leaves_approval"
SERVER_ENTERS = "issue_updated__server_handed_to_director"
TOKEN = "report-token-for-evidence"


def hours(wait: ApprovalWait) -> float:
    assert wait.ended_at is not None
    return (wait.ended_at - wait.started_at).total_seconds() / 3600


def waiting_now(app) -> list[str]:
    answer = app.test_client().get("/reports/bottlenecks?since=2026-01-01",
                                   headers={"Authorization": f"Bearer {TOKEN}"})
    assert answer.status_code == 200, answer.get_json()
    report = answer.get_json()
    return [row["key"] for row in report["longest_waiting"]] + [report["summary"]["waiting_now"]]


# -- a filled approver field is not a wait --------------------------------------------


def test_a_ticket_that_left_approval_with_its_approver_field_filled_stops_waiting(make_app):
    app = make_app(report_token=TOKEN)
    post_webhook(app, fixture_body(PURCHASE))
    run_worker(app)
    assert waiting_now(app) == ["PAY-103", 1]
    # Jira leaves the approver field filled after the approval: the ticket is in progress
    approved = fixture_json(PURCHASE_APPROVED)
    assert approved["issue"]["fields"]["customfield_10050"]["accountId"] == "dana.k"
    post_webhook(app, fixture_body(PURCHASE_APPROVED))
    run_worker(app)
    [wait] = waits(app)
    assert hours(wait) == 2 and wait.end_inferred is False
    assert waiting_now(app) == [0]


def test_without_statuses_a_filled_approver_field_is_the_wait(make_app, tmp_path):
    from service.settings import EXAMPLE_RULES

    rules = tmp_path / "rules.yaml"
    rules.write_text(EXAMPLE_RULES.read_text().replace(
        'statuses: ["Awaiting Approval", "Pending Sign-off"]', "statuses: []"))
    app = make_app(rules_file=rules)
    post_webhook(app, fixture_body(PURCHASE))
    post_webhook(app, fixture_body(PURCHASE_APPROVED))
    run_worker(app)
    [wait] = waits(app)
    assert wait.ended_at is None and wait.approver == "dana"  # the field is still filled


# -- evidence beats memory ------------------------------------------------------------


def test_a_later_delivery_from_elsewhere_ends_the_wait_whose_exit_was_missed(make_app):
    app = make_app()
    post_webhook(app, fixture_body(DEPLOY))
    run_worker(app)
    # the exit to "In Progress" never arrives; six hours in, the ticket goes In Progress -> Done
    post_webhook(app, fixture_body(DONE_AFTER_MISSED_EXIT), delivery="done-delivery")
    run_worker(app)
    [wait] = waits(app)
    assert hours(wait) == 6 and wait.end_inferred is True
    assert wait.end_evidence == "delivery done-delivery: the ticket came from 'In Progress'"
    # the missed exit turns up after all: the end becomes the real one
    post_webhook(app, fixture_body(LEAVES))
    run_worker(app)
    [wait] = waits(app)
    assert hours(wait) == 3 and wait.end_inferred is False and wait.end_evidence is None


def test_a_snapshot_outside_approval_ends_the_wait(make_app):
    app = make_app()
    post_webhook(app, fixture_body(DEPLOY))
    run_worker(app)
    post_webhook(app, fixture_body(LABELS_WHEN_DONE))  # a label edit, the ticket in Done
    run_worker(app)
    [wait] = waits(app)
    assert hours(wait) == 4 and wait.end_inferred is True
    assert "was in 'Done'" in wait.end_evidence


def test_a_late_exit_never_moves_an_earlier_end(make_app):
    app = make_app()
    for name in (DEPLOY, LEAVES):
        post_webhook(app, fixture_body(name))
    run_worker(app)
    post_webhook(app, fixture_body(DONE_AFTER_MISSED_EXIT))
    post_webhook(app, fixture_body(LABELS_WHEN_DONE))
    run_worker(app)
    [wait] = waits(app)
    assert hours(wait) == 3 and wait.end_inferred is False


def test_a_comment_event_showing_the_ticket_done_ends_the_wait(make_app):
    app = make_app()
    post_webhook(app, fixture_body(DEPLOY))
    run_worker(app)
    comment = fixture_json("comment_created__cloud_plain_comment")
    comment["issue"]["fields"]["status"] = {"name": "Done", "id": "10001"}
    post_webhook(app, json.dumps(comment).encode())
    run_worker(app)
    [wait] = waits(app)
    assert wait.end_inferred is True and wait.ended_at is not None


# -- workflow post-function webhooks ----------------------------------------------------


def test_workflow_post_function_bodies_are_transitions():
    from connector.events import parse_event

    body = fixture_json(PF_ENTERS)
    assert "webhookEvent" not in body and body["issue"]["fields"]["status"]["name"] == "In Progress"
    event = parse_event(body)
    assert event.event == "workflow_transition"
    assert (event.ticket.status, event.ticket.status_id) == ("Awaiting Approval", None)
    assert [(c.field_id, c.from_string, c.to_string) for c in event.changes] == [
        ("status", "In Progress", "Awaiting Approval")]
    assert event.transition_key == "transition:OPS-7:10512:41:1795170602498"


def test_a_post_function_without_to_status_is_a_readable_400(app):
    body = fixture_json(PF_ENTERS)
    del body["transition"]["to_status"]
    answer = post_webhook(app, json.dumps(body).encode())
    assert answer.status_code == 400
    assert "transition.to_status" in answer.get_json()["error"]


def test_post_function_enters_and_leaves_approval_on_data_center(make_app):
    with FakeJira(deployment="Server") as server:
        seed(server, SERVER_ENTERS)
        app = make_app(jira_url=server.url, jira_pat="dc-personal-token")
        assert post_webhook(app, fixture_body(PF_ENTERS)).status_code == 202
        run_worker(app)
        [posted] = server.comments("OPS-7")
        assert "[~carol.s]" in posted["body"]
        assert post_webhook(app, fixture_body(PF_LEAVES)).status_code == 202
        run_worker(app)
    [wait] = waits(app)
    assert wait.status == "Awaiting Approval" and wait.approver == "dana"
    assert hours(wait) == 3 and wait.end_inferred is False


# -- the same transition twice ----------------------------------------------------------


def test_the_same_transition_from_two_webhooks_makes_one_wait_and_one_comment(make_app, fake_jira):
    seed(fake_jira, DEPLOY)
    app = jira_app(make_app, fake_jira)
    first = fixture_json(DEPLOY)
    second = {**first, "timestamp": first["timestamp"] + 2500}  # the other webhook's own time
    post_webhook(app, json.dumps(first).encode(), delivery="webhook-a")
    run_worker(app)
    post_webhook(app, json.dumps(second).encode(), delivery="webhook-b")
    run_worker(app)
    [wait] = waits(app)
    assert wait.ended_at is None
    assert len(fake_jira.comments("PAY-101")) == 1 and len(comments(app)) == 1


def _created_left_and_back(seconds_out: int, seconds_back: int) -> dict[str, bytes]:
    """PAY-101 created waiting at T, out of approval at T+seconds_out, back at T+seconds_back."""
    created = {k: v for k, v in fixture_json(DEPLOY).items() if k != "changelog"}
    created["webhookEvent"] = "jira:issue_created"
    left, back = fixture_json("issue_updated__cloud_leaves_approval"), fixture_json(
        "issue_updated__cloud_deploy_back_in_approval")
    left["timestamp"] = created["timestamp"] + seconds_out * 1000
    back["timestamp"] = created["timestamp"] + seconds_back * 1000
    return {name: json.dumps(body).encode()
            for name, body in (("created", created), ("left", left), ("back", back))}


@pytest.mark.parametrize("order", [["back", "created", "left"], ["created", "back", "left"],
                                   ["left", "back", "created"], ["created", "left", "back"]])
def test_a_ticket_created_waiting_and_back_within_a_minute_has_two_waits_in_any_order(
        make_app, order):
    """The creation and the return 44 s later are two stays, whichever is applied first,
    even while the exit between them is still on its way (one batch, in that order)."""
    bodies = _created_left_and_back(seconds_out=42, seconds_back=44)
    app = make_app()
    for name in order:
        post_webhook(app, bodies[name], delivery=name)
    run_worker(app)
    first, second = sorted(waits(app), key=lambda wait: wait.started_at)
    assert (second.started_at - first.started_at).total_seconds() == 44
    assert (first.ended_at - first.started_at).total_seconds() == 42
    assert second.ended_at is None


def test_a_post_function_and_an_issue_event_for_one_transition_make_one_wait(make_app):
    with FakeJira(deployment="Server") as server:
        seed(server, SERVER_ENTERS)
        app = make_app(jira_url=server.url, jira_pat="dc-personal-token")
        post_webhook(app, fixture_body(PF_ENTERS))  # the same transition, 13 ms apart
        post_webhook(app, fixture_body(SERVER_ENTERS))
        run_worker(app)
        assert len(server.comments("OPS-7")) == 1
    [wait] = waits(app)
    assert wait.ended_at is None


def test_a_delivery_without_timestamp_takes_the_time_jira_gives_the_change(make_app, fake_jira):
    seed(fake_jira, DEPLOY)
    app = jira_app(make_app, fake_jira)
    post_webhook(app, fixture_body(LEAVES))
    run_worker(app)
    late = fixture_json(DEPLOY)
    del late["timestamp"]  # delivered days later, with no time of its own
    post_webhook(app, json.dumps(late).encode())
    run_worker(app)
    [wait] = waits(app)
    assert wait.started_at.isoformat() == "2026-11-20T10:15:02.511000"  # its fields.updated
    assert hours(wait) == 3
    assert fake_jira.comments("PAY-101") == []


def test_a_repeat_with_no_time_of_its_own_is_known_by_its_changelog_id(make_app, fake_jira):
    seed(fake_jira, DEPLOY)
    app = jira_app(make_app, fake_jira)
    post_webhook(app, fixture_body(DEPLOY), delivery="first")
    run_worker(app)
    repeat = fixture_json(DEPLOY)
    del repeat["timestamp"], repeat["issue"]["fields"]["updated"]  # only its arrival to go by
    post_webhook(app, json.dumps(repeat).encode(), delivery=None, headers={})
    run_worker(app)
    [wait] = waits(app)
    assert wait.ended_at is None
    assert len(fake_jira.comments("PAY-101")) == 1


# -- look before posting ------------------------------------------------------------------


def test_no_comment_on_a_ticket_jira_says_has_moved_on(make_app, fake_jira):
    seed(fake_jira, DEPLOY)
    fake_jira.issues["PAY-101"]["fields"]["status"] = {"name": "Done", "id": "10001"}
    fake_jira.issues["PAY-101"]["fields"]["updated"] = "2026-11-20T12:00:00.000+0000"
    app = jira_app(make_app, fake_jira)
    post_webhook(app, fixture_body(DEPLOY))  # its exit never reached us
    run_worker(app)
    assert fake_jira.comments("PAY-101") == []
    [comment] = comments(app)
    assert comment.state == "skipped" and "no longer waiting (status 'Done')" in comment.error
    [wait] = waits(app)
    assert wait.end_inferred is True and wait.ended_at.isoformat() == "2026-11-20T12:00:00"
    assert fake_jira.count("GET", r"/issue/PAY-101$") == 1  # one look, no comment listing
    assert fake_jira.count("GET", r"/comment$") == 0


def test_no_reminder_on_a_ticket_jira_says_has_moved_on(make_app, fake_jira):
    from jobs.comments import queue_reminders

    seed(fake_jira, DEPLOY)
    app = jira_app(make_app, fake_jira)
    post_webhook(app, fixture_body(DEPLOY))
    run_worker(app)
    assert len(fake_jira.comments("PAY-101")) == 1
    fake_jira.issues["PAY-101"]["fields"]["status"] = {"name": "In Progress", "id": "3"}
    with app_runtime(app).activate() as runtime:
        assert queue_reminders(runtime) == 1  # two days on, the ledger thinks it still waits
    run_worker(app)
    assert len(fake_jira.comments("PAY-101")) == 1
    reminder = comments(app)[-1]
    assert (reminder.kind, reminder.state) == ("reminder", "skipped")


def test_no_first_comment_when_the_holder_already_declared_an_intent(make_app, fake_jira):
    seed(fake_jira, DEPLOY)
    app = jira_app(make_app, fake_jira)
    post_webhook(app, fixture_body(DEPLOY))
    post_webhook(app, fixture_body("comment_created__cloud_intent"))  # bob: "I intend to …"
    run_worker(app)
    assert fake_jira.comments("PAY-101") == []
    [comment] = comments(app)
    assert comment.state == "skipped" and "intent" in comment.error
    assert len(fake_jira.requests) == 0  # not even a look: the ledger knew enough
