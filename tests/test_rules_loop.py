"""The rules file's loop keys: purpose, competences, require, outcome_window."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from leaderleader.cli import main
from rules.loader import check_rules_text
from tests.test_rules_file import GOOD, edit

TEAM = "  alice: {jira: acc-alice, name: Alice, level: tech_lead, reports_to: carol}"
ALICE_IN_TEAM = "  alice: {jira: acc-alice, name: Alice, level: tech_lead, team: payments, reports_to: carol}"
NO_PURPOSE = ("rules.yaml:14: decision 'Deploys' lets engineer decide below the level of whoever "
              "holds the information (e.g. alice) but gives no purpose: say why this level may "
              "decide (purpose: ...)")


def warnings(text: str) -> list[str]:
    return [str(p) for p in check_rules_text(text, "rules.yaml").warnings]


def test_a_rule_lowering_a_decision_below_a_team_member_needs_a_purpose():
    lowered = edit(TEAM, ALICE_IN_TEAM)  # alice (tech_lead) now holds information too
    assert warnings(lowered) == [NO_PURPOSE]
    with_purpose = lowered.replace("    decided_at: engineer",
                                   "    decided_at: engineer\n    purpose: Engineers own deploys.")
    assert warnings(with_purpose) == []
    rules = check_rules_text(with_purpose, "rules.yaml").rules
    assert rules is not None and rules.decisions[0].purpose == "Engineers own deploys."


def test_a_rule_at_the_lowest_team_level_lowers_nothing():
    assert warnings(GOOD) == []  # bob, the only team member, is an engineer


def test_rules_check_strict_fails_on_a_missing_purpose(tmp_path: Path):
    path = tmp_path / "rules.yaml"
    path.write_text(edit(TEAM, ALICE_IN_TEAM))
    lenient = CliRunner().invoke(main, ["rules", "check", str(path)])
    assert lenient.exit_code == 0 and "warning: decision 'Deploys' lets engineer" in lenient.output
    strict = CliRunner().invoke(main, ["rules", "check", "--strict", str(path)])
    assert strict.exit_code == 1 and "1 problem(s)" in strict.output


def test_competences_and_require_are_read_and_checked():
    text = edit("  bob:   {jira: acc-bob, name: Bob, level: engineer,",
                "  bob:   {jira: acc-bob, name: Bob, level: engineer, competences: [deploy],")
    text = text.replace("    decided_at: engineer", "    decided_at: engineer\n    require: deploi")
    result = check_rules_text(text, "rules.yaml")
    assert [str(w) for w in result.warnings] == [
        "rules.yaml:17: decisions[0].require: nobody in people holds the competence 'deploi'; "
        "did you mean 'deploy'?"]
    fixed = check_rules_text(text.replace("deploi", "deploy"), "rules.yaml")
    assert fixed.rules is not None and fixed.warnings == []
    assert fixed.rules.people["bob"].competences == ("deploy",)
    assert fixed.rules.decisions[0].require == "deploy"


def test_outcome_window_defaults_to_two_weeks_and_is_a_duration():
    assert check_rules_text(GOOD, "r.yaml").rules.outcome_window == timedelta(days=14)  # type: ignore[union-attr]
    week = check_rules_text(GOOD + "outcome_window: 1w\n", "r.yaml")
    assert week.rules is not None and week.rules.outcome_window == timedelta(weeks=1)
    bad = check_rules_text(GOOD + "outcome_window: soon\n", "r.yaml")
    assert [str(e) for e in bad.errors] == [
        "r.yaml:24: outcome_window: 'soon' is not a duration (write it like 14d, 2w or 36h)"]


def _vendor_rules(**competences: str) -> str:
    """The example rules with these people's competences replaced (everyone else's kept)."""
    import re

    from service.settings import EXAMPLE_RULES

    text = EXAMPLE_RULES.read_text()
    for handle in ("carol", "dana", "erin"):
        found = re.search(rf"^(  {handle}:\s+\{{)(.*?)\}}", text, re.MULTILINE | re.DOTALL)
        assert found is not None, handle
        body = re.sub(r",\s*competences: \[[^\]]*\]", "", found.group(2))
        replacement = f"{found.group(1)}{body}, competences: [{competences.get(handle, '')}]}}"
        text = text[:found.start()] + replacement + text[found.end():]
    return text


def _vendor_ticket(approver: str = "erin.v") -> Any:
    from rules.model import Ticket

    return Ticket(key="PAY-105", project="PAY", issue_type="Task", status="Awaiting Approval",
                  labels=("vendor",), assignee=approver,
                  assignee_before_approval="5b10a2844c20165700ede21g")


def test_the_nearest_competent_person_is_never_above_the_approver():
    from rules.engine import evaluate
    from rules.loader import load_rules_text

    # only Erin (vp) holds it; Dana (director) approves: Erin is above her, so nobody is named
    rules = load_rules_text(_vendor_rules(erin="vendor-spend"), "r.yaml")
    verdict = evaluate(rules, _vendor_ticket("dana.k"))
    assert (verdict.flagged, verdict.competence_gap, verdict.competent, verdict.decider) == (
        True, True, None, None)
    assert "Nobody up reports_to up to Dana K holds it." in verdict.reasons[-1]
    # Dana holds it and approves: she is the nearest, and no one else is suggested
    rules = load_rules_text(_vendor_rules(dana="vendor-spend"), "r.yaml")
    verdict = evaluate(rules, _vendor_ticket("dana.k"))
    assert (verdict.competence_gap, verdict.competent, verdict.decider) == (True, "dana", None)
    # Carol, the first at the decision level (manager), holds it: no gap, she is suggested
    rules = load_rules_text(_vendor_rules(carol="vendor-spend"), "r.yaml")
    verdict = evaluate(rules, _vendor_ticket("dana.k"))
    assert (verdict.competence_gap, verdict.competent, verdict.decider) == (False, None, "carol")
    # Dana holds it, Erin (vp) approves: the walk goes past Carol to Dana
    rules = load_rules_text(_vendor_rules(dana="vendor-spend"), "r.yaml")
    verdict = evaluate(rules, _vendor_ticket("erin.v"))
    assert (verdict.competence_gap, verdict.competent, verdict.decider,
            verdict.decider_path) == (True, "dana", "dana", ("bob", "alice", "carol", "dana"))


def test_a_decider_who_holds_the_competence_is_no_gap():
    from rules.engine import evaluate
    from rules.loader import load_rules_text

    text = _vendor_rules(carol="vendor-spend").replace(  # Bob himself holds it
        "competences: [deploy]}", "competences: [deploy, vendor-spend]}", 1)
    verdict = evaluate(load_rules_text(text, "r.yaml"), _vendor_ticket())
    assert (verdict.competence_gap, verdict.competent, verdict.require) == (False, None,
                                                                            "vendor-spend")
