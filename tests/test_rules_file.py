"""The rules file: every problem reported with its exact line, all at once."""

from __future__ import annotations

import textwrap
from datetime import timedelta

import pytest
from click.testing import CliRunner

from leaderleader.cli import main
from leaderleader.config import EXAMPLE_RULES
from rules.loader import RulesError, check_rules_text, load_rules, load_rules_text

GOOD = textwrap.dedent("""\
    version: 1
    levels: [engineer, tech_lead, manager, director]
    people:
      bob:   {jira: acc-bob, name: Bob, level: engineer, team: payments, reports_to: alice}
      alice: {jira: acc-alice, name: Alice, level: tech_lead, reports_to: carol}
      carol: {jira: acc-carol, name: Carol, level: manager, reports_to: dana}
      dana:  {jira: acc-dana, name: Dana, level: director}
    teams:
      payments: {lead: alice, components: [billing], projects: [PAY]}
    waiting_for_approval:
      statuses: ["Awaiting Approval", 10051]
      approver_field: customfield_10050
    decisions:
      - name: Deploys
        match: {labels: [deploy]}
        decided_at: engineer
      - name: Everything else
        decided_at: information
    flag:
      tolerance: 0
      remind_after: 1d12h
    comment:
      intent_template: "I intend to ship on {{ proceed_on }}."
    """)


def problems(text: str) -> list[str]:
    result = check_rules_text(text, "rules.yaml")
    return [str(p) for p in result.errors]


def warnings(text: str) -> list[str]:
    result = check_rules_text(text, "rules.yaml")
    return [str(p) for p in result.warnings]


def edit(old: str, new: str) -> str:
    assert old in GOOD, old
    return GOOD.replace(old, new)


def test_the_good_file_and_the_bundled_example_load_cleanly():
    rules = load_rules_text(GOOD, "rules.yaml")
    assert rules.levels == ("engineer", "tech_lead", "manager", "director")
    assert rules.waiting.statuses == ("Awaiting Approval", "10051")
    assert rules.flag.remind_after == timedelta(hours=36)
    assert rules.people["bob"].reports_to == "alice"
    result = check_rules_text(EXAMPLE_RULES.read_text(), "example.yaml")
    assert (result.errors, result.warnings) == ([], [])
    assert len(load_rules(EXAMPLE_RULES).digest) == 64


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("version: 1", "version: 2",
         "rules.yaml:1: version: unsupported version 2 (this leaderleader reads version 1)"),
        ("  tolerance: 0", "  tolerence: 0",
         "rules.yaml:20: unknown key 'tolerence' in flag; did you mean 'tolerance'?"),
        ("level: engineer, team", "level: enginer, team",
         "rules.yaml:4: people.bob.level: unknown level 'enginer' (levels: engineer, tech_lead, "
         "manager, director); did you mean 'engineer'?"),
        ("reports_to: alice}", "reports_to: alise}",
         "rules.yaml:4: people.bob.reports_to: nobody called 'alise' in people; "
         "did you mean 'alice'?"),
        ("team: payments,", "team: paymnts,",
         "rules.yaml:4: people.bob.team: no team called 'paymnts' in teams; did you mean 'payments'?"),
        ("{lead: alice,", "{lead: zed,", "rules.yaml:9: teams.payments.lead: nobody called 'zed' in people"),
        ("level: director}", "level: director, reports_to: carol}",
         "rules.yaml:6: people.carol.reports_to: reports_to goes round in a circle: "
         "carol -> dana -> carol"),
        ("jira: acc-dana", "jira: acc-bob",
         "rules.yaml:7: people.dana.jira: Jira id 'acc-bob' is also used by 'bob'"),
        ("  remind_after: 1d12h", "  remind_after: 2 days",
         "rules.yaml:21: flag.remind_after: '2 days' is not a duration (write it like 2d, 36h, 90m, "
         "1w or 1d12h)"),
        ("  tolerance: 0", "  tolerance: -1",
         "rules.yaml:20: flag.tolerance: input should be greater than or equal to 0"),
        ("    decided_at: engineer", "    decided_at: enginer",
         "rules.yaml:16: decisions[0].decided_at: unknown level 'enginer' (levels: engineer, "
         "tech_lead, manager, director, or 'information'); did you mean 'engineer'?"),
        ("match: {labels: [deploy]}", "match: {labels: [deploy], fields: {customfield_1: {betwen: 3}}}",
         "rules.yaml:15: decisions[0].match.fields.customfield_1: unknown condition 'betwen' "
         "(conditions: equals, in, gte, gt, lte, lt)"),
        ("match: {labels: [deploy]}", "match: {label: [deploy]}",
         "rules.yaml:15: unknown key 'label' in decisions[0].match; did you mean 'labels'?"),
        ("{{ proceed_on }}.", "{{ proceed_on }.",
         "rules.yaml:23: comment.intent_template: template syntax error: unexpected '}'"),
        ("levels: [engineer, tech_lead, manager, director]",
         "levels: [engineer, tech_lead, manager, director, manager]",
         "rules.yaml:2: level 'manager' is listed twice"),
        ("  statuses: [\"Awaiting Approval\", 10051]\n  approver_field: customfield_10050\n", "  {}\n",
         "rules.yaml:10: waiting_for_approval: name the statuses that mean 'waiting for approval', "
         "or an approver_field, or both"),
        ("  tolerance: 0", "  tolerance: 0\n   bad: indent",
         "rules.yaml:21: YAML: mapping values are not allowed here"),
    ],
)
def test_each_problem_is_reported_with_its_line(old, new, expected):
    assert problems(edit(old, new)) == [expected]


def test_undefined_names_in_templates_fail_at_load_time():
    text = edit("{{ proceed_on }}.", "{{ procede_on }}.")
    [message] = problems(text)
    assert message.startswith("rules.yaml:23: comment.intent_template: 'procede_on' is undefined")


def test_multi_line_template_error_points_at_its_own_line():
    text = GOOD + "  template: |\n    h3. Hello\n    {% if decider %}\n    {{ decider.mention }\n"
    [message] = problems(text)
    assert message.startswith("rules.yaml:27: comment.template: template syntax error")


def test_all_problems_come_at_once_in_line_order():
    text = (GOOD.replace("tolerance: 0", "tolerence: 0")
            .replace("level: engineer, team", "level: enginer, team")
            .replace("remind_after: 1d12h", "remind_after: soon"))
    assert [p.split(": ", 1)[0] for p in problems(text)] == [
        "rules.yaml:4", "rules.yaml:20", "rules.yaml:21",
    ]


def test_missing_section_and_non_mapping_file():
    assert problems(GOOD.replace("waiting_for_approval:\n  statuses", "other:\n  statuses")) == [
        "rules.yaml:1: missing required key 'waiting_for_approval'",
        "rules.yaml:10: unknown key 'other' (expected one of: version, levels, people, teams, "
        "waiting_for_approval, decisions, flag, comment, dry_run)",
    ]
    assert problems("- just\n- a list\n") == [
        "rules.yaml:1: the rules file must be a YAML mapping (version, levels, people, …)"
    ]


def test_warnings_do_not_block_loading():
    text = edit("  - name: Everything else\n    decided_at: information\n",
                "  - name: Everything else\n    decided_at: information\n"
                "  - name: Too late\n    match: {labels: [x]}\n    decided_at: manager\n")
    text = text.replace("level: tech_lead, reports_to: carol}", "level: tech_lead}")
    assert problems(text) == []
    assert warnings(text) == [
        "rules.yaml:5: people.alice is not at the top level and reports to nobody: a decision "
        "above their level cannot be routed from them",
        "rules.yaml:19: decision 'Too late' can never match: 'Everything else' above it matches "
        "every ticket",
    ]


def test_rules_check_command(tmp_path):
    good = tmp_path / "rules.yaml"
    good.write_text(GOOD)
    result = CliRunner().invoke(main, ["rules", "check", str(good)])
    assert result.exit_code == 0
    assert "ok (4 people, 4 levels, 2 decision rules)" in result.output
    bad = tmp_path / "bad.yaml"
    bad.write_text(edit("  tolerance: 0", "  tolerence: 0"))
    result = CliRunner().invoke(main, ["rules", "check", str(bad)])
    assert result.exit_code == 1
    assert f"{bad}:20: unknown key 'tolerence' in flag; did you mean 'tolerance'?" in result.output
    missing = CliRunner().invoke(main, ["rules", "check", str(tmp_path / "nope.yaml")])
    assert missing.exit_code == 1 and missing.output.strip() == f"Error: {tmp_path / 'nope.yaml'}: no such file"


def test_load_rules_raises_with_every_problem():
    with pytest.raises(RulesError) as caught:
        load_rules_text(edit("version: 1", "version: 3").replace("tolerance: 0", "tolerance: x"),
                        "r.yaml")
    assert [p.line for p in caught.value.problems] == [1, 20]


def test_rules_check_against_the_ledger_lists_missing_people(make_app, database_url, tmp_path):
    from tests.conftest import fixture_body, post_webhook, run_worker

    app = make_app()
    post_webhook(app, fixture_body("issue_updated__cloud_unmapped_approver"))
    run_worker(app)
    env = {"DATABASE_URL": database_url}
    result = CliRunner().invoke(main, ["rules", "check", str(EXAMPLE_RULES), "--against-ledger"], env=env)
    assert result.exit_code == 0, result.output
    assert (f"not in {EXAMPLE_RULES}: 712020:0a1b2c3d-4e5f-6789-abcd-ef0123456789 "
            "(1 approval wait(s) in the ledger)") in result.output
    fixed = tmp_path / "rules.yaml"
    fixed.write_text(EXAMPLE_RULES.read_text().replace(
        "people:\n", "people:\n  sam: {jira: \"712020:0a1b2c3d-4e5f-6789-abcd-ef0123456789\", "
                     "name: Sam, level: manager, reports_to: dana}\n", 1))
    result = CliRunner().invoke(main, ["rules", "check", str(fixed), "--against-ledger"], env=env)
    assert "everyone the ledger has seen is in the file" in result.output
