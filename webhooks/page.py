"""What the report page says, in plain words: first the things to do, then the loop.

Pure: a report dict (as ``ledger.report.bottleneck_report`` builds it, with or without
the loop's keys of SPEC §9) and a ``Directory`` of people's names in; sentences, numbers
and anchors to the evidence out. Nothing here is made up: every sentence restates a
figure of the report, and a key the report does not have yet is simply not shown.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from rules.model import INFORMATION, Rules

#: fewer decisions than this in the window: say the figures are too few to be a pattern
THIN = 5
#: the lead names at most this many things to do; the rest go under "also"
LEAD = 3


@dataclass(frozen=True)
class Directory:
    """People's names for the handles and Jira ids the report shows."""

    names: Mapping[str, str] = field(default_factory=dict)  # handle or Jira id -> name
    levels: Mapping[str, str] = field(default_factory=dict)  # handle or Jira id -> level

    @classmethod
    def from_rules(cls, rules: Rules | None, unmapped: Iterable[Mapping[str, Any]] = ()
                   ) -> Directory:
        """Names from the rules file; people not in it by the display name Jira sent, if any."""
        names: dict[str, str] = {}
        levels: dict[str, str] = {}
        for row in unmapped:
            if row.get("name") and row.get("jira_id"):
                names[str(row["jira_id"])] = str(row["name"])
        for person in rules.people.values() if rules else ():
            for key in (person.jira, person.handle):
                names[key] = person.name or person.handle
                levels[key] = person.level
        return cls(names=names, levels=levels)

    def name(self, who: str | None) -> str:
        """The person's name; an unknown handle or Jira id as it is; nobody as "nobody"."""
        if not who:
            return "nobody"
        return self.names.get(who, who)

    def with_level(self, who: str | None, level: str | None = None) -> str:
        """"Alice Ng (tech lead)"; the level from the row, else from the rules file."""
        level = level or self.levels.get(who or "")
        return f"{self.name(who)} ({words(level)})" if who and level else self.name(who)


def words(level: str | None) -> str:
    """A level as people say it: ``tech_lead`` -> "tech lead"."""
    if level is None:
        return "not in the rules file"
    if level == INFORMATION:
        return "whoever holds the information"
    return level.replace("_", " ")


def people_at(level: str) -> str:
    """"engineers", "tech leads"; the information level as who holds it."""
    if level == INFORMATION:
        return "whoever holds the information"
    said = words(level)
    return said if said.endswith("s") else said + "s"


def duration(hours: float | None) -> str:
    """Hours as a reader says them: "40 minutes", "17 hours", "3 days"."""
    if hours is None:
        return "–"
    if hours < 1:
        minutes = max(1, round(hours * 60))
        return f"{minutes} minute{'s' if minutes != 1 else ''}"
    if hours < 48:
        whole = round(hours, 1)
        text = f"{whole:g}"
        return f"{text} hour{'s' if text != '1' else ''}"
    days = round(hours / 24, 1)
    return f"{days:g} days"


def decisions(count: int) -> str:
    return f"{count} decision{'s' if count != 1 else ''}"


def week_label(week: str | None, week_start: str | None = None) -> str:
    """"2026-W47" (or its Monday) as "16 Nov", the week's Monday."""
    try:
        if week_start:
            monday = date.fromisoformat(week_start)
        else:
            year, number = str(week).split("-W")
            monday = date.fromisocalendar(int(year), int(number), 1)
    except ValueError:
        return str(week or "")
    return f"{monday.day} {monday:%b}"


@dataclass(frozen=True)
class Action:
    """One thing to do: a sentence, and where on the page its evidence is."""

    kind: str  # approver, suggestion, waiting, competence, unmapped
    text: str
    evidence: str  # the id of the section (or <details>) that shows the evidence
    link: str  # the link's words


@dataclass(frozen=True)
class Lead:
    """The top of the page: at most ``LEAD`` things to do, the rest, and a plain note."""

    actions: tuple[Action, ...]
    also: tuple[Action, ...] = ()
    note: str | None = None


def _approver_action(report: Mapping[str, Any], people: Directory) -> Action | None:
    """The approver most decisions waited on above the level their rule sets."""
    total = int(report["summary"]["episodes"])
    rows = [row for row in report.get("by_approver", ()) if row.get("flagged")]
    if not rows or not total:
        return None
    row = max(rows, key=lambda r: (r["flagged"], r["episodes"]))
    count, flagged = int(row["episodes"]), int(row["flagged"])
    who = people.with_level(row["approver"], row.get("level"))
    if flagged == count:
        lower = ("it could have been decided lower" if count == 1
                 else f"all {count} could have been decided lower")
    else:
        lower = f"{flagged} of them could have been decided lower"
    return Action("approver", f"{count} of {decisions(total)} waited on {who}; {lower}.",
                  "by-approver", "see who decisions waited on")


def suggestion_text(suggestion: Mapping[str, Any], people: Directory) -> str:
    """One proposed rules-file edit as a sentence."""
    for key in ("summary", "title", "text", "message"):
        if isinstance(suggestion.get(key), str) and suggestion[key].strip():
            return str(suggestion[key]).strip()
    rule = suggestion.get("rule")
    level = next((suggestion[k] for k in ("proposed_decided_at", "to", "proposed", "decided_at")
                  if isinstance(suggestion.get(k), str)), None)
    if rule and level:
        return f"'{rule}' could be decided by {people_at(level)}."
    who = suggestion.get("person") or suggestion.get("approver")
    if rule and who:
        return f"'{rule}': {people.name(who)} could decide it alone."
    if rule:
        return f"'{rule}' could be decided lower."
    return "A change to the rules file."


def evidence_lines(suggestion: Mapping[str, Any]) -> tuple[str, ...]:
    """The evidence behind a suggestion, one line each (text, list or field: value)."""
    found = suggestion.get("evidence")
    if isinstance(found, str):
        return tuple(line for line in found.splitlines() if line.strip())
    if isinstance(found, Mapping):
        return tuple(f"{str(k).replace('_', ' ')}: {v}" for k, v in found.items())
    if isinstance(found, Sequence):
        return tuple(str(item) for item in found)
    return ()


def suggestion_diff(suggestion: Mapping[str, Any]) -> str | None:
    for key in ("diff", "hunk", "patch"):
        if isinstance(suggestion.get(key), str) and suggestion[key].strip():
            return str(suggestion[key])
    return None


def _waiting_action(report: Mapping[str, Any], people: Directory) -> Action | None:
    """The longest wait open now above the right level, and who could decide it."""
    high = [row for row in report.get("longest_waiting", ()) if row.get("flagged")]
    if not high:
        return None
    row = high[0]
    text = (f"{row['key']} has waited {duration(row['waiting_hours'])} on "
            f"{people.with_level(row['approver'], row.get('level'))}")
    if row.get("suggested_decider"):
        text += f"; {people.with_level(row['suggested_decider'])} could decide it"
    if len(high) > 1:
        text += f" ({len(high) - 1} more waiting above the right level)"
    return Action("waiting", text + ".", "longest", "see what is waiting now")


def gap_count(row: Mapping[str, Any]) -> int:
    for key in ("waits", "episodes", "decisions", "count"):
        if isinstance(row.get(key), int):
            return int(row[key])
    return 1


def _competence_action(report: Mapping[str, Any]) -> Action | None:
    gaps = [row for row in report.get("competence_gaps") or () if isinstance(row, Mapping)]
    if not gaps:
        return None
    needed = sorted({str(row.get("competence") or row.get("require") or "")
                     for row in gaps} - {""})
    count = sum(gap_count(row) for row in gaps)
    what = f" ({', '.join(needed)})" if needed else ""
    return Action("competence",
                  f"{decisions(count)} found nobody at the right level with the competence "
                  f"they need{what}: train or certify someone, rather than approve.",
                  "competence-gaps", "see the competence gaps")


def _unmapped_action(report: Mapping[str, Any], people: Directory) -> Action | None:
    rows = report.get("unmapped") or ()
    if not rows:
        return None
    shown = ", ".join(people.name(row["jira_id"]) for row in rows[:3])
    more = f" and {len(rows) - 3} more" if len(rows) > 3 else ""
    count = f"{len(rows)} {'person' if len(rows) == 1 else 'people'}"
    return Action("unmapped",
                  f"Add {count} to the rules file ({shown}{more}): decisions that involve "
                  "them cannot be judged.", "unmapped", "see who is missing")


def what_to_do(report: Mapping[str, Any], people: Directory) -> Lead:
    """The two or three things a director should do about this report, most pressing first."""
    found: list[Action | None] = [_approver_action(report, people)]
    for index, suggestion in enumerate(report.get("suggestions") or ()):
        if isinstance(suggestion, Mapping):
            found.append(Action("suggestion", suggestion_text(suggestion, people),
                                f"suggestion-{index + 1}", "see the evidence"))
    found += [_waiting_action(report, people), _competence_action(report),
              _unmapped_action(report, people)]
    actions = tuple(action for action in found if action is not None)
    total = int(report["summary"]["episodes"])
    note = None
    if not actions:
        note = ("No decision waited for approval in this window: nothing to act on."
                if total == 0 else
                f"Nothing to act on: none of the {decisions(total)} in this window waited "
                "above the right level, and everyone involved is in the rules file.")
    elif total == 0:
        note = "No decision waited for approval in this window."
    elif total < THIN:
        note = (f"Only {decisions(total)} in this window: too few to be a pattern. Look at "
                "a longer window before changing the rules.")
    return Lead(actions=actions[:LEAD], also=actions[LEAD:], note=note)


@dataclass(frozen=True)
class Card:
    """A figure, what it counts in a few words, and a line that explains it."""

    value: str
    label: str
    explain: str
    alert: bool = False
    id: str = ""


def loop_cards(report: Mapping[str, Any]) -> tuple[Card, ...]:
    """The loop's figures (SPEC §9), each only when the report has it."""
    loop = report.get("loop")
    if not isinstance(loop, Mapping):
        return ()
    cards = []
    specs = (
        ("intents", "“I intend to …” said",
         "People closest to the work said what they would do instead of asking."),
        ("acknowledged", "“very well”",
         "The approver answered an intent with “very well” (or approved after it)."),
        ("objected", "objections", "The approver answered an intent with “I object” or “hold”."),
        ("proceeded", "went ahead",
         "The proceed-on date passed with no answer, and the decision went ahead."),
    )
    for key, label, explain in specs:
        if isinstance(loop.get(key), int):
            cards.append(Card(f"{loop[key]:,}", label, explain, id=f"loop-{key}"))
    if "median_ack_hours" in loop:
        cards.append(Card(duration(loop["median_ack_hours"]), "to “very well”",
                          "Median time from an intent to its acknowledgement: half were "
                          "answered faster.", id="loop-median_ack_hours"))
    outcomes = loop.get("outcomes_to_learn")
    if isinstance(outcomes, int):
        cards.append(Card(f"{outcomes:,}", "outcomes to learn from",
                          "Decisions taken by intent that were reopened or rolled back "
                          "within the outcome window: material for a review, not blame.",
                          alert=False, id="loop-outcomes_to_learn"))
    return tuple(cards)


def outcome_rows(report: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """Outcomes to learn from per rule or team (never per person), when the report has them."""
    loop = report.get("loop")
    found = loop.get("outcomes_to_learn") if isinstance(loop, Mapping) else None
    if not isinstance(found, Sequence) or isinstance(found, str):
        return []
    return [{k: v for k, v in row.items() if k not in ("approver", "person", "decider")}
            for row in found if isinstance(row, Mapping)]


@dataclass(frozen=True)
class Week:
    label: str
    decisions: int
    lower: int  # at or below the information level
    share: float | None  # percent


def delegation_weeks(report: Mapping[str, Any]) -> tuple[Week, ...]:
    """Per week: decisions taken and the share taken at or below the information level."""
    weeks = []
    for row in report.get("delegation") or ():
        taken, lower = int(row.get("decisions") or 0), int(row.get("at_or_below_information") or 0)
        weeks.append(Week(week_label(row.get("week"), row.get("week_start")), taken, lower,
                          100 * lower / taken if taken else None))
    return tuple(weeks)


def delegation_summary(weeks: Sequence[Week]) -> str | None:
    """The first and the latest week with decisions, compared in one sentence."""
    taken = [week for week in weeks if week.decisions]
    if not taken:
        return None
    last = taken[-1]
    text = (f"Week of {last.label}: {last.lower} of {decisions(last.decisions)} "
            f"({percent(last.share)}) taken at or below the level that holds the information")
    if len(taken) == 1:
        return text + "."
    first = taken[0]
    return text + (f", against {first.lower} of {first.decisions} ({percent(first.share)}) "
                   f"in the week of {first.label}.")


def percent(value: float | None) -> str:
    return "–" if value is None or math.isnan(value) else f"{value:.0f}%"
