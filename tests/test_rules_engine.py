"""The evaluator: verdicts for the SPEC's decision rules, and invariants over random orgs."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import date

from hypothesis import given, settings
from hypothesis import strategies as st

from rules.comment import escape_wiki, render_comment
from rules.engine import evaluate
from rules.loader import load_rules
from rules.model import (
    INFORMATION,
    DecisionRule,
    FieldCondition,
    FlagPolicy,
    Match,
    Person,
    Rules,
    Ticket,
    WaitingForApproval,
)
from service.settings import EXAMPLE_RULES

RULES = load_rules(EXAMPLE_RULES)
BOB, ALICE, CAROL, DANA = "5b10a2844c20165700ede21g", "5b10ac8d82e05b22cc7d4ef5", "carol.s", "dana.k"


def ticket(**values) -> Ticket:
    base = dict(key="PAY-1", project="PAY", issue_type="Task", status="Awaiting Approval",
                assignee=DANA, reporter=BOB, assignee_before_approval=BOB)
    base.update(values)
    return Ticket(**base)


def test_routine_deploy_is_decided_by_the_engineer():
    verdict = evaluate(RULES, ticket(labels=("deploy",)))
    assert verdict.flagged
    assert (verdict.rule, verdict.decision_level, verdict.approver_level) == (
        "Routine production deploy", "engineer", "director")
    assert (verdict.holder, verdict.decider, verdict.decider_path) == ("bob", "bob", ("bob",))


def test_deploy_approved_by_an_engineer_is_not_flagged():
    verdict = evaluate(RULES, ticket(labels=("deploy",), assignee=BOB, assignee_before_approval=ALICE))
    assert verdict.waiting and not verdict.flagged
    assert verdict.approver == "bob"


def test_spend_under_5k_walks_reports_to_up_to_a_manager():
    verdict = evaluate(RULES, ticket(labels=("purchase",)))
    assert verdict.flagged and verdict.rule == "Spend under 5k"
    assert (verdict.decider, verdict.decider_path) == ("carol", ("bob", "alice", "carol"))
    assert not evaluate(RULES, ticket(labels=("purchase",), assignee=CAROL)).flagged


def test_small_spend_by_custom_field_range():
    small = evaluate(RULES, ticket(labels=("purchase",), fields={"customfield_10060": 1200.0}))
    large = evaluate(RULES, ticket(labels=("purchase",), fields={"customfield_10060": 9000}))
    assert (small.rule, small.decider) == ("Small spend", "alice")
    assert large.rule == "Spend under 5k"


def test_everything_else_is_decided_where_the_information_is():
    verdict = evaluate(RULES, ticket(issue_type="Bug", assignee_before_approval=ALICE))
    assert (verdict.rule, verdict.decision_level, verdict.decider) == (
        "Everything else", "tech_lead", "alice")
    assert verdict.flagged
    assert not evaluate(RULES, ticket(issue_type="Bug", assignee_before_approval=DANA)).flagged


def test_approver_field_takes_the_highest_level_approver():
    verdict = evaluate(RULES, ticket(assignee=BOB, fields={"customfield_10050": (CAROL, DANA)}))
    assert (verdict.approver, verdict.approvers) == ("dana", (CAROL, DANA))


def test_status_by_id_and_case_insensitive_name():
    assert evaluate(RULES, ticket(status="awaiting approval")).waiting
    assert not evaluate(RULES, ticket(status="In Progress", status_id="3")).waiting


def test_unmapped_people_are_never_guessed():
    stranger = evaluate(RULES, ticket(assignee="someone-new", labels=("deploy",)))
    assert not stranger.flagged and stranger.unmapped == ("someone-new",)
    unknown_holder = evaluate(RULES, ticket(project="OPS", assignee_before_approval="ghost",
                                            labels=("deploy",)))
    assert not unknown_holder.flagged and "ghost" in unknown_holder.unmapped


def test_team_lead_holds_the_information_when_the_holder_is_unknown():
    verdict = evaluate(RULES, ticket(assignee_before_approval="ghost", issue_type="Bug"))
    assert (verdict.holder, verdict.holder_team) == ("alice", "payments")
    assert any("team payments owns this work" in r for r in verdict.reasons)


def test_the_comment_shows_the_same_reasons_and_escapes_ticket_text():
    hostile = "[~accountid:evil] {color:red}x{color} [click|http://evil.example] *bold* h1. x"
    t = ticket(labels=("deploy",), summary=hostile + "\nh1. heading")
    verdict = evaluate(RULES, t)
    for style, mention in (("cloud", f"[~accountid:{BOB}]"), ("server", f"[~{BOB}]")):
        body = render_comment(RULES, verdict, t, mention_style=style, proceed_on=date(2026, 12, 1))
        assert mention in body
        for markup in ("[~accountid:evil]", "{color", "[click|", "*bold*"):
            assert not re.search(r"(?<!\\)" + re.escape(markup), body), markup
        assert "http://evil" not in body and "\nh1. heading" not in body
        assert "I will proceed on 2026-12-01 unless someone objects." in body
        for reason in verdict.reasons:
            assert escape_wiki(reason) in body
    assert escape_wiki("a|b") == "a\\|b"


# -- properties over random organisations --------------------------------------------------

LEVELS = ("l0", "l1", "l2", "l3", "l4")


@st.composite
def orgs(draw):
    count = draw(st.integers(2, 7))
    people = {}
    for n in range(count):
        boss = draw(st.one_of(st.none(), st.integers(0, count - 1)))
        people[f"p{n}"] = Person(handle=f"p{n}", jira=f"j{n}", name=f"P{n}",
                                 level=draw(st.sampled_from(LEVELS)),
                                 reports_to=f"p{boss}" if boss is not None and boss != n else None)
    rules_ = tuple(
        DecisionRule(name=f"r{i}", decided_at=draw(st.sampled_from(LEVELS + (INFORMATION,))),
                     match=Match(labels=draw(st.sampled_from(((), ("a",), ("b",))))),
                     line=i + 1)
        for i in range(draw(st.integers(0, 3)))
    )
    return Rules(version=1, levels=LEVELS, people=people,
                 waiting=WaitingForApproval(statuses=("Waiting",), approver_field="cf"),
                 decisions=rules_, flag=FlagPolicy(tolerance=draw(st.integers(0, 3))))


ids = st.sampled_from([f"j{n}" for n in range(7)] + ["stranger", None])


@st.composite
def tickets(draw):
    return Ticket(key="X-1", project="X", status=draw(st.sampled_from(["Waiting", "Open"])),
                  labels=draw(st.sampled_from(((), ("a",), ("b",), ("a", "b")))),
                  assignee=draw(ids), reporter=draw(ids), assignee_before_approval=draw(ids),
                  fields={"cf": draw(st.one_of(st.none(), ids, st.tuples(ids, ids)))},
                  priority=draw(st.sampled_from([None, "High"])))


@settings(max_examples=400, deadline=None)
@given(orgs(), tickets())
def test_invariants(rules, t):
    verdict = evaluate(rules, t)  # never raises
    if verdict.flagged:
        # never flag unless the approver sits above the decision level by more than the tolerance
        gap = rules.rank(verdict.approver_level) - rules.rank(verdict.decision_level)
        assert gap > rules.flag.tolerance
        # the suggested decider is at or above the decision level and never above the approver
        decider = rules.people[verdict.decider]
        assert rules.rank(verdict.decision_level) <= rules.rank(decider.level)
        assert rules.rank(decider.level) <= rules.rank(verdict.approver_level)
        # people missing from the file never produce a flag
        assert verdict.approver in rules.people and verdict.holder in rules.people
    if verdict.approvers and all(rules.person_by_jira(a) is None for a in verdict.approvers):
        assert not verdict.flagged
    # raising the tolerance never adds flags
    looser = replace(rules, flag=FlagPolicy(tolerance=rules.flag.tolerance + 1))
    assert evaluate(looser, t).flagged <= verdict.flagged
    assert verdict.reasons  # every verdict explains itself


@settings(max_examples=200, deadline=None)
@given(st.floats(allow_nan=False, allow_infinity=False, min_value=-1e6, max_value=1e6))
def test_numeric_range_conditions(value):
    rule = DecisionRule(name="r", decided_at="l0", match=Match(
        fields=(FieldCondition(field="cf", gte=0.0, lt=5000.0),)))
    rules = Rules(version=1, levels=LEVELS, people={}, decisions=(rule,))
    from rules.engine import rule_matches

    assert rule_matches(rule, Ticket(key="X-1", fields={"cf": value})) == (0 <= value < 5000)
    assert rules.decisions[0] is rule


def test_never_suggests_someone_above_the_approver():
    people = {
        "ann": Person(handle="ann", jira="j-ann", name="Ann", level="l0", reports_to="vic"),
        "vic": Person(handle="vic", jira="j-vic", name="Vic", level="l4"),
        "amy": Person(handle="amy", jira="j-amy", name="Amy", level="l2"),
    }
    rules = Rules(version=1, levels=LEVELS, people=people,
                  waiting=WaitingForApproval(statuses=("Waiting",)),
                  decisions=(DecisionRule(name="r", decided_at="l1"),))
    verdict = evaluate(rules, Ticket(key="X-1", status="Waiting", assignee="j-amy",
                                     assignee_before_approval="j-ann"))
    assert verdict.decider is None and not verdict.flagged
    assert verdict.reasons[-1].startswith("Nobody up reports_to from Ann (ann -> vic) reaches l1")


def test_without_a_jira_to_ask_mentions_follow_the_shape_of_the_id():
    """Dry-run with no Jira: accountIds are mentioned the Cloud way, usernames the Server way."""
    from rules.comment import mention

    assert mention(BOB, "auto") == f"[~accountid:{BOB}]"
    assert mention("712020:0a1b2c3d-4e5f-6789-abcd-ef0123456789", "auto") == (
        "[~accountid:712020:0a1b2c3d-4e5f-6789-abcd-ef0123456789]")
    assert mention(CAROL, "auto") == f"[~{CAROL}]"
    assert mention(CAROL, "cloud") == f"[~accountid:{CAROL}]"


def test_an_unmapped_approver_still_shows_the_holder_and_the_team():
    verdict = evaluate(RULES, ticket(labels=("deploy",), assignee="712020:stranger"))
    assert (verdict.waiting, verdict.flagged) == (True, False)
    assert (verdict.approver, verdict.approver_level) == ("712020:stranger", None)
    assert (verdict.holder, verdict.holder_level, verdict.holder_team) == ("bob", "engineer", "payments")
    assert (verdict.rule, verdict.unmapped) == ("Routine production deploy", ("712020:stranger",))
    assert "712020:stranger, not in the rules file" in " ".join(verdict.reasons)


def test_a_wait_with_no_approver_says_so():
    verdict = evaluate(RULES, ticket(labels=("deploy",), assignee=None))
    assert (verdict.waiting, verdict.flagged, verdict.approver, verdict.unmapped) == (True, False, None, ())
    assert verdict.holder == "bob"
    text = " ".join(verdict.reasons)
    assert "it is unassigned: nobody is named to approve it" in text
    assert "the rules file knows" not in text


def test_a_jsm_approval_waits_on_its_pending_approvers_only():
    jsm = replace(RULES, waiting=WaitingForApproval(statuses=("Waiting for approval",),
                                                    approver_field="customfield_10010"))
    approval = {"decision": "pending", "approvers": [CAROL, DANA], "pending": [CAROL]}
    waiting = ticket(status="Waiting for approval", labels=("deploy",),
                     fields={"customfield_10010": approval})
    assert evaluate(jsm, waiting).approver == "carol"  # dana already answered
    decided = replace(waiting, fields={"customfield_10010": {**approval, "decision": "approved",
                                                             "pending": []}})
    verdict = evaluate(jsm, decided)
    assert not verdict.waiting
    assert "final decision (approved)" in verdict.reasons[0]
