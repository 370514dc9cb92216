"""The rules file: every problem reported with its exact line, all at once."""

from __future__ import annotations

import textwrap
from datetime import timedelta

import pytest

from rules.loader import RulesError, check_rules_text, load_rules, load_rules_text
from service.settings import EXAMPLE_RULES

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
         "rules.yaml:21: YAML indentation: 'bad' is indented 3 spaces, deeper than 'tolerance' "
         "on line 20 (2 spaces), which already has its value: indent it like its siblings, "
         "or give line 20 no value"),
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
        "waiting_for_approval, decisions, flag, comment, dry_run, outcome_window)",
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


def test_load_rules_raises_with_every_problem():
    with pytest.raises(RulesError) as caught:
        load_rules_text(edit("version: 1", "version: 3").replace("tolerance: 0", "tolerance: x"),
                        "r.yaml")
    assert [p.line for p in caught.value.problems] == [1, 20]


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("  tolerance: 0", "  tolerance: true",
         "rules.yaml:20: flag.tolerance: must be a whole number, not true"),
        ("version: 1", "version: yes", "rules.yaml:1: version: must be a whole number, not true"),
        ("  remind_after: 1d12h", "  remind_after: 0d",
         "rules.yaml:21: flag.remind_after: '0d' is no time at all; leave remind_after out for no "
         "reminder"),
        ("  remind_after: 1d12h", "  remind_after: 0",
         "rules.yaml:21: flag.remind_after: '0' is no time at all; leave remind_after out for no "
         "reminder"),
        ("  statuses: [\"Awaiting Approval\", 10051]", "  statuses: Awaiting Approval",
         "rules.yaml:11: waiting_for_approval.statuses: must be a list, like [a, b], not "
         "'Awaiting Approval'"),
        ("jira: acc-bob,", "jira: ,", "rules.yaml:4: people.bob.jira: has no value (expected text)"),
        ("levels: [engineer, tech_lead, manager, director]", "levels: []",
         "rules.yaml:2: levels: must not be empty"),
    ],
)
def test_wrong_types_get_one_plain_message(old, new, expected):
    assert problems(edit(old, new)) == [expected]


def test_a_person_without_a_value_is_one_problem_not_a_cascade():
    text = edit("  dana:  {jira: acc-dana, name: Dana, level: director}", "  dana:")
    assert problems(text) == [
        "rules.yaml:7: people.dana: has no value (expected a mapping of key: value)"
    ]
    assert warnings(text) == []  # carol does report to someone: dana, who is broken


def test_a_missing_required_key_does_not_hide_the_other_problems():
    text = (edit("alice: {jira: acc-alice, name: Alice, level: tech_lead,",
                 "alice: {jira: acc-alice, name: Alice,")
            .replace("decided_at: engineer", "decided_at: enginer"))
    assert problems(text) == [
        "rules.yaml:5: missing required key 'level' in people.alice",
        "rules.yaml:16: decisions[0].decided_at: unknown level 'enginer' (levels: engineer, "
        "tech_lead, manager, director, or 'information'); did you mean 'engineer'?",
    ]


def test_reports_to_naming_nobody_is_an_error_without_a_second_warning():
    text = edit("reports_to: dana}", "reports_to: dan}")
    assert problems(text) == [
        "rules.yaml:6: people.carol.reports_to: nobody called 'dan' in people; did you mean 'dana'?"
    ]
    assert warnings(text) == []


def test_a_broken_match_does_not_make_its_rule_match_everything():
    text = edit("    match: {labels: [deploy]}", "    match:")
    assert problems(text) == [
        "rules.yaml:15: decisions[0].match: has no value (expected a mapping of key: value)"
    ]
    assert warnings(text) == []


def test_empty_sections_are_empty():
    text = edit("teams:\n  payments: {lead: alice, components: [billing], projects: [PAY]}\n",
                "teams:\n")
    assert problems(text) == [
        "rules.yaml:4: people.bob.team: no team called 'payments' in teams"
    ]


def test_keys_that_are_not_text_are_located():
    text = edit("people:\n", "people:\n  null: {jira: acc-x, level: engineer}\n")
    assert problems(text) == [
        "rules.yaml:4: people: the key null is not text; quote it if you mean the text ('null')"
    ]


def test_duplicate_keys_name_their_section_and_first_line():
    text = edit("  dana:  {jira: acc-dana, name: Dana, level: director}",
                "  dana:  {jira: acc-dana, name: Dana, level: director}\n"
                "  carol: {jira: acc-c2, name: C2, level: manager, reports_to: dana}")
    assert problems(text) == ["rules.yaml:8: people: 'carol' is defined twice (first on line 6)"]
    assert problems(GOOD + "dry_run: true\ndry_run: false\n") == [
        "rules.yaml:25: 'dry_run' is defined twice (first on line 24)"
    ]


def test_yaml_errors_say_where_the_construct_began_and_about_tabs():
    assert problems(edit("levels: [engineer, tech_lead, manager, director]",
                         "levels: [engineer, tech_lead, manager, director")) == [
        "rules.yaml:3: YAML: expected ',' or ']', but got ':' (while parsing a flow sequence "
        "that starts on line 2)"
    ]
    assert problems(edit("  tolerance: 0", "\ttolerance: 0")) == [
        "rules.yaml:20: YAML indentation: a tab character; YAML indents with spaces only"
    ]


EXAMPLE_TEXT = EXAMPLE_RULES.read_text()


def _line(needle: str) -> int:
    """The line of the example rules file where ``needle`` starts."""
    return EXAMPLE_TEXT[:EXAMPLE_TEXT.index(needle)].count("\n") + 1


@pytest.mark.parametrize(("old", "new", "expected"), [
    # a key one space deeper than its sibling, which already has a value
    ("  approver_field: customfield_10050", "   approver_field: customfield_10050",
     "rules.yaml:{approver}: YAML indentation: 'approver_field' is indented 3 spaces, deeper "
     "than 'statuses' on line {statuses} (2 spaces), which already has its value: indent it "
     "like its siblings, or give line {statuses} no value"),
    # a key coming back out to a column no level starts at (PyYAML blames the next line)
    ("    decided_at: manager\n  - name: Vendor contracts",
     "   decided_at: manager\n  - name: Vendor contracts",
     "rules.yaml:{manager}: YAML indentation: 'decided_at' is indented 3 spaces, which lines "
     "up with no level above it (those start at 0, 2 spaces): line it up with its siblings"),
    # a list item one space off
    ("  - name: Spend under 5k", "   - name: Spend under 5k",
     "rules.yaml:{spend}: YAML indentation: 'name' is indented 3 spaces, which lines up with "
     "no level above it (those start at 0, 2 spaces): line it up with its siblings"),
    # a forgotten colon (PyYAML blames the line after it)
    ("  tolerance: 0 ", "  tolerance 0 ",
     "rules.yaml:{tolerance}: YAML indentation: 'tolerance 0' is not 'key: value' like the "
     "lines beside it: is a ':' (followed by a space) missing?"),
])
def test_yaml_indentation_mistakes_are_said_plainly_on_the_right_line(old, new, expected):
    assert old in EXAMPLE_TEXT
    result = check_rules_text(EXAMPLE_TEXT.replace(old, new, 1), "rules.yaml")
    lines = {"approver": _line("  approver_field:"), "statuses": _line("  statuses:"),
             "manager": _line("    decided_at: manager\n  - name: Vendor contracts"),
             "spend": _line("  - name: Spend under 5k"), "tolerance": _line("  tolerance: 0 ")}
    assert [str(p) for p in result.errors] == [expected.format(**lines)]


def test_the_intent_template_cannot_use_the_intent_itself():
    [message] = problems(edit("I intend to ship on {{ proceed_on }}.", "{{ intent }}"))
    assert message == (
        "rules.yaml:23: comment.intent_template: 'intent' is undefined (an intent template can "
        "use: approver, competence_gap, competent, decider, decision_level, holder, "
        "proceed_on, purpose, reasons, reminder, require, rule, ticket, tolerance)"
    )


def test_an_undefined_name_deep_in_a_block_template_points_at_its_line():
    text = GOOD + "  template: |\n    h3. Hello\n    {{ ticket.key }}\n    {{ decidr.mention }}\n"
    [message] = problems(text)
    assert message.startswith("rules.yaml:27: comment.template: 'decidr' is undefined")


@pytest.mark.parametrize("spec", ["", "null", "{}"])
def test_a_field_condition_needs_something_to_compare(spec):
    text = edit("match: {labels: [deploy]}", "match: {fields: {customfield_1: " + spec + "}}")
    assert problems(text) == [
        "rules.yaml:15: decisions[0].match.fields.customfield_1: nothing to compare with (give a "
        "value, a list, or conditions: equals, in, gte, gt, lte, lt)"
    ]


def test_decision_rules_that_can_never_match_are_warned_about():
    text = edit(
        "  - name: Everything else\n",
        "  - name: Deploys of billing\n    match: {labels: [Deploy], components: [billing]}\n"
        "    decided_at: manager\n"
        "  - name: Empty range\n    match: {fields: {customfield_1: {gte: 100, lt: 10}}}\n"
        "    decided_at: manager\n"
        "  - name: Approved\n    match: {fields: {customfield_2: yes}}\n    decided_at: manager\n"
        "  - name: Everything else\n",
    )
    assert problems(text) == []
    assert warnings(text) == [
        "rules.yaml:17: decision 'Deploys of billing' can never match: 'Deploys' above it matches "
        "every ticket it would",
        "rules.yaml:21: decisions[2].match.fields.customfield_1: no number is gte 100 and lt 10: "
        "this rule can never match",
        "rules.yaml:24: decisions[3].match.fields.customfield_2: true is a YAML yes/no value, "
        "which no Jira field holds; quote it (\"yes\") to match the text",
    ]
