"""What the page says first: the things to do, derived from the report alone (no Flask)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from rules.loader import load_rules
from service.settings import EXAMPLE_RULES
from tests.reports.loop_report import LONG_ID, SPEND, figures, loop_report, today_report
from webhooks.page import (
    Directory,
    delegation_summary,
    delegation_weeks,
    duration,
    evidence_lines,
    loop_cards,
    outcome_rows,
    suggestion_text,
    week_label,
    what_to_do,
)

RULES = load_rules(EXAMPLE_RULES)
PEOPLE = Directory.from_rules(RULES)


def empty_report(**summary: Any) -> dict[str, Any]:
    report = copy.deepcopy(today_report())
    report.update(by_approver=[], by_level=[], by_team=[], by_rule=[], longest_waiting=[],
                  trend=[], unmapped=[])
    report["summary"] = {**figures(0, 0, 0, 0, 0, None, None, 0.0, 0.0), "intents": 0,
                         **summary}
    return report


def test_a_flagged_heavy_approver_leads_by_name() -> None:
    lead = what_to_do(today_report(), PEOPLE)
    first = lead.actions[0]
    assert first.kind == "approver"
    assert first.text == ("11 of 23 decisions waited on Dana K (director); 9 of them could "
                          "have been decided lower.")
    assert first.evidence == "by-approver"
    # the longest open wait above the right level, and who could decide it, by name
    waiting = next(a for a in lead.actions if a.kind == "waiting")
    assert waiting.text == ("PAY-41 has waited 38 hours on Dana K (director); Bob Li "
                            "(engineer) could decide it (1 more waiting above the right level).")
    assert waiting.evidence == "longest"
    assert len(lead.actions) <= 3 and lead.note is None


def test_the_approver_with_most_flagged_waits_not_the_most_hours() -> None:
    report = today_report()
    # carol holds fewer hours than dana but more flagged waits now
    report["by_approver"][2].update(flagged=12, episodes=12)
    assert what_to_do(report, PEOPLE).actions[0].text.startswith(
        "12 of 23 decisions waited on Carol S (manager); all 12 could")


def test_a_suggestion_is_said_in_plain_words_with_its_evidence_one_click_away() -> None:
    report = loop_report()
    lead = what_to_do(report, Directory.from_rules(RULES, report["unmapped"]))
    kinds = [a.kind for a in lead.actions]
    assert kinds == ["approver", "suggestion", "waiting"]
    suggestion = lead.actions[1]
    assert suggestion.text == f"'{SPEND}' could be decided by tech leads."
    assert suggestion.evidence == "suggestion-1" and suggestion.link == "see the evidence"
    # what does not fit in three comes after, not lost
    assert [a.kind for a in lead.also] == ["competence", "unmapped"]
    assert lead.also[0].text == ("2 decisions found nobody at the right level with the "
                                 "competence they need (deploy): train or certify someone, "
                                 "rather than approve.")
    assert lead.also[1].text == ("Add 2 people to the rules file (Sam Contractor, "
                                 "ghost.holder): decisions that involve them cannot be judged.")


def test_a_suggestion_of_its_own_words_keeps_them() -> None:
    said = {"summary": "Bob Li could decide 'Routine production deploy' alone."}
    assert suggestion_text(said, PEOPLE) == said["summary"]
    assert suggestion_text({"rule": "X", "to": "information"}, PEOPLE) == (
        "'X' could be decided by whoever holds the information.")
    assert evidence_lines({"evidence": {"approved": "40 of 40"}}) == ("approved: 40 of 40",)
    assert evidence_lines({"evidence": "one\n\ntwo"}) == ("one", "two")


def test_nothing_to_do_is_said_plainly() -> None:
    report = empty_report()
    report["summary"].update(figures(8, 0, 0, 8, 0, 3.0, 6.0, 24.0, 0.0))
    report["by_approver"] = [{"approver": "alice", "level": "tech_lead",
                              **figures(8, 0, 0, 8, 0, 3.0, 6.0, 24.0, 0.0)}]
    lead = what_to_do(report, PEOPLE)
    assert lead.actions == () and lead.also == ()
    assert lead.note == ("Nothing to act on: none of the 8 decisions in this window waited "
                         "above the right level, and everyone involved is in the rules file.")
    assert what_to_do(empty_report(), PEOPLE).note == (
        "No decision waited for approval in this window: nothing to act on.")
    # a suggestion drawn from a longer history still leads an empty window
    report = {**empty_report(), "suggestions": loop_report()["suggestions"]}
    lead = what_to_do(report, PEOPLE)
    assert [a.kind for a in lead.actions] == ["suggestion"]
    assert lead.note == "No decision waited for approval in this window."


def test_thin_data_invents_nothing_and_says_so() -> None:
    report = empty_report()
    report["summary"].update(figures(2, 1, 1, 1, 0, 5.0, 5.0, 5.0, 3.0))
    report["by_approver"] = [{"approver": "dana", "level": "director",
                              **figures(1, 1, 1, 0, 0, None, None, 0.0, 3.0)},
                             {"approver": "alice", "level": "tech_lead",
                              **figures(1, 0, 0, 1, 0, 5.0, 5.0, 5.0, 0.0)}]
    lead = what_to_do(report, PEOPLE)
    assert [a.text for a in lead.actions] == [
        "1 of 2 decisions waited on Dana K (director); it could have been decided lower."]
    assert lead.note == ("Only 2 decisions in this window: too few to be a pattern. Look at a "
                         "longer window before changing the rules.")
    # no open wait was listed, no suggestion, no gap: none is made up
    assert loop_cards(report) == () and delegation_weeks(report) == ()
    assert outcome_rows(report) == []


def test_names_not_handles() -> None:
    assert PEOPLE.name("dana") == "Dana K"
    assert PEOPLE.name("dana.k") == "Dana K"  # the Jira id of a mapped person
    assert PEOPLE.with_level("alice") == "Alice Ng (tech lead)"
    people = Directory.from_rules(None, today_report()["unmapped"])
    assert people.name(LONG_ID) == "Sam Contractor"  # the name Jira sent
    assert people.name("ghost.holder") == "ghost.holder"  # no name: the id
    assert people.name(None) == "nobody"


@pytest.mark.parametrize(("hours", "said"), [
    (0.25, "15 minutes"), (1, "1 hour"), (17.0, "17 hours"), (47.9, "47.9 hours"),
    (48, "2 days"), (588, "24.5 days"), (None, "–")])
def test_durations_in_words(hours: float | None, said: str) -> None:
    assert duration(hours) == said


def test_the_loop_in_words() -> None:
    report = loop_report()
    cards = {card.id: card.value for card in loop_cards(report)}
    assert cards == {"loop-intents": "9", "loop-acknowledged": "6", "loop-objected": "1",
                     "loop-proceeded": "2", "loop-median_ack_hours": "1.5 hours",
                     "loop-outcomes_to_learn": "1"}
    weeks = delegation_weeks(report)
    assert [(w.label, w.share) for w in weeks[:2]] == [("5 Oct", 0.0), ("12 Oct", 25.0)]
    assert weeks[-1].share is None  # no decision that week: no share, not 0 %
    assert delegation_summary(weeks) == (
        "Week of 16 Nov: 1 of 2 decisions (50%) taken at or below the level that holds the "
        "information, against 0 of 3 (0%) in the week of 5 Oct.")
    assert delegation_summary(weeks[:1]) == (
        "Week of 5 Oct: 0 of 3 decisions (0%) taken at or below the level that holds the "
        "information.")
    assert week_label("2026-W47") == "16 Nov"
    # outcomes per rule and team, never per person
    report["loop"]["outcomes_to_learn"] = [{"rule": SPEND, "team": "payments",
                                            "approver": "carol", "outcomes_to_learn": 1}]
    assert outcome_rows(report) == [{"rule": SPEND, "team": "payments",
                                     "outcomes_to_learn": 1}]
