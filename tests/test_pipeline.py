"""End to end: a signed delivery, a real rq worker, the ledger, a comment on a fake Jira."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from jobs.deliveries import is_intent
from ledger.models import ApprovalWait, Comment, Intent
from service.runtime import current_runtime
from tests.conftest import fixture_body, fixture_json, post_webhook, run_worker
from tests.fakejira import FakeJira
from webhooks.extension import app_runtime

DEPLOY = "issue_updated__cloud_deploy_handed_to_director"
BOB = "5b10a2844c20165700ede21g"


def jira_app(make_app, fake_jira: FakeJira, **overrides):
    return make_app(
        jira_url=fake_jira.url,
        jira_user="bot@acme.example",
        jira_api_token="cloud-token-abcdef",
        **overrides,
    )


def seed(fake_jira: FakeJira, *fixtures: str) -> None:
    """Put the tickets the deliveries talk about on the fake Jira."""
    for name in fixtures:
        issue = fixture_json(name)["issue"]
        fake_jira.add_issue(issue["key"], issue["fields"], issue_id=issue["id"])


def waits(app) -> list[ApprovalWait]:
    with app_runtime(app).activate(), current_runtime().sessions() as session:
        return list(session.scalars(select(ApprovalWait).order_by(ApprovalWait.id)))


def comments(app) -> list[Comment]:
    with app_runtime(app).activate(), current_runtime().sessions() as session:
        return list(session.scalars(select(Comment).order_by(Comment.id)))


def test_flagged_transition_posts_one_comment_with_decider_and_intent(make_app, fake_jira):
    seed(fake_jira, DEPLOY)
    app = jira_app(make_app, fake_jira)
    assert post_webhook(app, fixture_body(DEPLOY)).status_code == 202
    run_worker(app)

    posted = fake_jira.comments("PAY-101")
    assert len(posted) == 1
    body = posted[0]["body"]
    assert f"[~accountid:{BOB}]" in body  # the suggested decider, mentioned
    assert "Dana K" in body and "director" in body  # who it waits on
    assert "Bob Li" in body and "engineer" in body  # where the information is
    assert "Routine production deploy" in body  # the rule that applies
    assert "I intend to" in body
    [wait] = waits(app)
    assert (wait.flagged, wait.approver, wait.holder, wait.decider) == (True, "dana", "bob", "bob")
    [comment] = comments(app)
    assert comment.state == "posted" and comment.jira_comment_id == posted[0]["id"]


def test_jira_retries_never_make_a_second_comment(make_app, fake_jira):
    seed(fake_jira, DEPLOY)
    app = jira_app(make_app, fake_jira)
    body = fixture_body(DEPLOY)
    post_webhook(app, body, delivery="same-id")
    run_worker(app)
    assert post_webhook(app, body, delivery="same-id", retry=1).status_code == 200
    # even a delivery Jira re-sent under a new id lands on the same episode
    post_webhook(app, body, delivery="other-id")
    run_worker(app)
    assert len(fake_jira.comments("PAY-101")) == 1
    assert len(waits(app)) == 1


def test_approver_at_the_decision_level_gets_no_comment(make_app, fake_jira):
    name = "issue_updated__cloud_purchase_manager_approves"
    seed(fake_jira, name)
    app = jira_app(make_app, fake_jira)
    post_webhook(app, fixture_body(name))
    run_worker(app)
    assert fake_jira.comments("PAY-102") == []
    [wait] = waits(app)
    assert (wait.flagged, wait.approver_level, wait.decision_level) == (False, "manager", "manager")


def test_unmapped_approver_is_recorded_and_gets_no_comment(make_app, fake_jira):
    name = "issue_updated__cloud_unmapped_approver"
    seed(fake_jira, name)
    app = jira_app(make_app, fake_jira)
    post_webhook(app, fixture_body(name))
    run_worker(app)
    assert fake_jira.comments("PAY-104") == []
    [wait] = waits(app)
    assert wait.flagged is False
    assert wait.unmapped == ["712020:0a1b2c3d-4e5f-6789-abcd-ef0123456789"]


def test_approver_field_and_reports_to_walk(make_app, fake_jira):
    name = "issue_updated__cloud_purchase_director_approver_field"
    seed(fake_jira, name)
    app = jira_app(make_app, fake_jira)
    post_webhook(app, fixture_body(name))
    run_worker(app)
    [wait] = waits(app)
    # bob holds the information but purchases are decided by a manager: bob -> alice -> carol
    assert (wait.approver, wait.holder, wait.decider) == ("dana", "bob", "carol")
    [posted] = fake_jira.comments("PAY-103")
    assert "[~accountid:carol.s]" in posted["body"]


def test_server_payload_mentions_by_username(make_app):
    name = "issue_updated__server_handed_to_director"
    with FakeJira(deployment="Server") as server:
        seed(server, name)
        app = make_app(jira_url=server.url, jira_pat="dc-personal-token")
        post_webhook(app, fixture_body(name))
        run_worker(app)
        [posted] = server.comments("OPS-7")
    assert "[~carol.s]" in posted["body"]
    assert "accountid" not in posted["body"]


def test_dry_run_records_the_comment_and_sends_nothing(make_app, fake_jira):
    seed(fake_jira, DEPLOY)
    app = make_app()  # no JIRA_URL: dry-run
    post_webhook(app, fixture_body(DEPLOY))
    run_worker(app)
    [comment] = comments(app)
    assert comment.state == "dry_run"
    assert f"[~accountid:{BOB}]" in comment.body
    assert fake_jira.comments("PAY-101") == []


def test_leaving_approval_closes_the_wait(make_app):
    app = make_app()
    post_webhook(app, fixture_body(DEPLOY))
    post_webhook(app, fixture_body("issue_updated__cloud_leaves_approval"))
    run_worker(app)
    [wait] = waits(app)
    assert wait.ended_at is not None
    assert (wait.ended_at - wait.started_at).total_seconds() == 3 * 3600


def test_late_entry_after_its_exit_is_closed_and_not_commented(make_app, fake_jira):
    seed(fake_jira, DEPLOY)
    app = jira_app(make_app, fake_jira)
    post_webhook(app, fixture_body("issue_updated__cloud_leaves_approval"))
    run_worker(app)
    post_webhook(app, fixture_body(DEPLOY))  # delivered late, happened first
    run_worker(app)
    [wait] = waits(app)
    assert wait.ended_at is not None and wait.flagged
    assert fake_jira.comments("PAY-101") == []


def test_intent_comment_is_recorded_on_the_open_wait(make_app):
    app = make_app()
    post_webhook(app, fixture_body(DEPLOY))
    post_webhook(app, fixture_body("comment_created__cloud_intent"))
    post_webhook(app, fixture_body("comment_created__cloud_plain_comment"))
    run_worker(app)
    [wait] = waits(app)
    with app_runtime(app).activate(), current_runtime().sessions() as session:
        [intent] = session.scalars(select(Intent)).all()
    assert (intent.wait_id, intent.author, intent.author_handle) == (wait.id, BOB, "bob")
    assert wait.first_intent_at == intent.declared_at


def test_server_comment_without_issue_finds_its_ticket_by_id(make_app):
    app = make_app()
    post_webhook(app, fixture_body("issue_updated__server_handed_to_director"))
    post_webhook(app, fixture_body("comment_created__server_no_issue"))
    run_worker(app)
    with app_runtime(app).activate(), current_runtime().sessions() as session:
        [intent] = session.scalars(select(Intent)).all()
    assert (intent.issue_key, intent.author_handle) == ("OPS-7", "carol")


def test_created_in_approval_with_null_assignee_and_unicode(make_app):
    app = make_app()
    post_webhook(app, fixture_body("issue_created__cloud_unicode_null_assignee_multi_approver"))
    run_worker(app)
    [wait] = waits(app)
    # multi-user approver field; no assignee, so the reporter holds the information
    assert (wait.approver, wait.holder, wait.decider, wait.flagged) == ("dana", "bob", "bob", True)
    [comment] = comments(app)
    assert "München" in comment.body


def test_changes_without_a_status_move_open_no_wait(make_app):
    app = make_app()
    for name in ("issue_updated__cloud_several_items_no_status", "issue_updated__cloud_empty_items",
                 "issue_deleted__cloud"):
        assert post_webhook(app, fixture_body(name)).status_code == 202
    run_worker(app)
    assert waits(app) == []


def test_the_whole_comment_a_user_sees(make_app):
    from pathlib import Path

    from jobs.comments import proceed_on
    from rules.loader import load_rules
    from service.settings import EXAMPLE_RULES

    app = make_app()
    post_webhook(app, fixture_body(DEPLOY))
    run_worker(app)
    [comment] = comments(app)
    [wait] = waits(app)
    expected = (Path(__file__).parent / "fixtures" / "comments" / f"{DEPLOY}.txt").read_text()
    date = proceed_on(wait.started_at, load_rules(EXAMPLE_RULES)).isoformat()
    assert comment.body + "\n" == expected.replace("{proceed_on}", date)


def test_server_comment_events_inside_issue_updated(make_app):
    app = make_app()
    for name in ("issue_updated__server_handed_to_director",
                 "issue_updated__server_commented_italic_intent",
                 "issue_updated__server_comment_deleted_intent"):
        assert post_webhook(app, fixture_body(name)).status_code == 202
    run_worker(app)
    [wait] = waits(app)
    with app_runtime(app).activate(), current_runtime().sessions() as session:
        intents = session.scalars(select(Intent)).all()
    # the deleted comment is not an intent; the italic one is
    assert [(i.jira_comment_id, i.wait_id, i.author_handle) for i in intents] == [
        ("50002", wait.id, "carol")
    ]


@pytest.mark.parametrize("body", [
    "I intend to ship", "i INTEND to ship", "bq. I intend to ship", "{quote}I intend to ship{quote}",
    "{quote:title=Plan}I intend to ship{quote}", "*I intend to* ship", "_I intend to_ ship",
    "_I intend to_", "> I intend to ship", "h3. I intend to ship", "  \n I intend to ship",
    "{panel:title=x}I intend to ship{panel}", "+I intend to+ ship", "-I intend to-", "I intend to\u2026",
])
def test_intents_after_quoting_and_markup(body):
    assert is_intent(body)


@pytest.mark.parametrize("body", [
    "I intend toast", "Do I intend to ship?", "We intend to ship", "I intended to ship", "",
])
def test_not_intents(body):
    assert not is_intent(body)


def test_late_entry_of_an_episode_that_a_later_one_followed_gets_no_comment(make_app, fake_jira):
    seed(fake_jira, DEPLOY)
    app = jira_app(make_app, fake_jira)
    post_webhook(app, fixture_body("issue_updated__cloud_deploy_back_in_approval"))
    run_worker(app)
    # the first episode's entry arrives after the second one's; its exit is still on the way
    post_webhook(app, fixture_body(DEPLOY))
    run_worker(app)
    first, second = sorted(waits(app), key=lambda w: w.started_at)
    assert first.ended_at is not None and first.ended_at <= second.started_at
    assert second.ended_at is None
    assert len(fake_jira.comments("PAY-101")) == 1
    # the exit, when it comes, gives the first episode its real end
    post_webhook(app, fixture_body("issue_updated__cloud_leaves_approval"))
    run_worker(app)
    first, second = sorted(waits(app), key=lambda w: w.started_at)
    assert (first.ended_at - first.started_at).total_seconds() == 3 * 3600
    assert second.ended_at is None


def test_late_entry_of_a_ticket_known_to_have_moved_on_gets_no_comment(make_app, fake_jira):
    seed(fake_jira, DEPLOY)
    app = jira_app(make_app, fake_jira)
    post_webhook(app, fixture_body("issue_updated__cloud_labels_edited_when_done"))
    run_worker(app)
    post_webhook(app, fixture_body(DEPLOY))  # happened 4 hours before the edit
    run_worker(app)
    [wait] = waits(app)
    assert wait.ended_at is not None and (wait.ended_at - wait.started_at).total_seconds() <= 4 * 3600
    assert fake_jira.comments("PAY-101") == []
    post_webhook(app, fixture_body("issue_updated__cloud_leaves_approval"))
    run_worker(app)
    [wait] = waits(app)
    assert (wait.ended_at - wait.started_at).total_seconds() == 3 * 3600
