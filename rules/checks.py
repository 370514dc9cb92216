"""The meaning of a well-shaped rules file: references, levels, cycles, durations, templates.

Each check reads a ``RulesDocument`` (the parsed file and the line of each part) and
records ``(line, message)`` in ``Findings`` as an error or a warning; the loader sorts
and prints them all. Messages name the valid choices and offer a did-you-mean.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

from rules.comment import template_problem
from rules.decision_checks import decision_rules
from rules.document import Findings, RulesDocument, level_problem, parse_duration, suggest
from rules.model import (
    DEFAULT_INTENT_TEMPLATE,
    INFORMATION,
    CommentPolicy,
    FlagPolicy,
    Person,
    Rules,
    Team,
    WaitingForApproval,
)


def _check_levels(doc: RulesDocument, findings: Findings) -> None:
    seen: set[str] = set()
    for index, level in enumerate(doc.parsed.levels):
        if level == INFORMATION:
            findings.error(("levels", index), f"'{INFORMATION}' is reserved for decided_at; "
                                         "name the level differently")
        if level in seen:
            findings.error(("levels", index), f"level '{level}' is listed twice")
        seen.add(level)


def _check_people(doc: RulesDocument, findings: Findings) -> None:
    people = doc.parsed.people
    owners: dict[str, str] = {}
    for handle, person in people.items():
        base = ("people", handle)
        problem = level_problem(doc, person.level)
        if problem:
            findings.error(base + ("level",), f"people.{handle}.level: {problem}")
        if (person.reports_to is not None and person.reports_to not in people
                and not doc.broken("people", person.reports_to)):
            findings.error(base + ("reports_to",), f"people.{handle}.reports_to: nobody called "
                      f"'{person.reports_to}' in people{suggest(person.reports_to, people)}")
        if (person.team is not None and person.team not in doc.parsed.teams
                and not doc.broken("teams", person.team)):
            findings.error(base + ("team",), f"people.{handle}.team: no team called '{person.team}' "
                      f"in teams{suggest(person.team, doc.parsed.teams)}")
        if person.jira in owners:
            findings.error(base + ("jira",), f"people.{handle}.jira: Jira id '{person.jira}' is also "
                      f"used by '{owners[person.jira]}'")
        owners.setdefault(person.jira, handle)
    _check_reporting(doc, findings)


def _check_reporting(doc: RulesDocument, findings: Findings) -> None:
    people = doc.parsed.people
    levels = doc.parsed.levels
    reported: set[str] = set()
    for handle, person in people.items():
        chain = [handle]
        current = person.reports_to
        while current in people and current not in chain:
            chain.append(current)
            current = people[current].reports_to
        if current is not None and current == handle:
            path = " -> ".join(chain + [handle])
            if handle not in reported:
                findings.error(("people", handle, "reports_to"),
                          f"people.{handle}.reports_to: reports_to goes round in a circle: {path}")
                reported.update(chain)
            continue
        if person.level not in levels:
            continue
        boss = people.get(person.reports_to) if person.reports_to else None
        if (person.reports_to is None and not doc.broken("people", handle, "reports_to")
                and levels.index(person.level) < len(levels) - 1):
            findings.warn(("people", handle), f"people.{handle} is not at the top level and reports to "
                     "nobody: a decision above their level cannot be routed from them")
        elif boss is not None and boss.level in levels and (
            levels.index(boss.level) < levels.index(person.level)
        ):
            findings.warn(("people", handle, "reports_to"), f"people.{handle} reports to "
                     f"'{person.reports_to}', who is at a lower level ({boss.level})")


def _check_teams(doc: RulesDocument, findings: Findings) -> None:
    for name, team in doc.parsed.teams.items():
        if team.lead is None and not doc.broken("teams", name, "lead"):
            findings.warn(("teams", name), f"teams.{name} has no lead: it cannot hold information")
        elif team.lead is not None and team.lead not in doc.parsed.people and not doc.broken(
            "people", team.lead
        ):
            findings.error(("teams", name, "lead"), f"teams.{name}.lead: nobody called '{team.lead}' "
                      f"in people{suggest(team.lead, doc.parsed.people)}")


def _outcome_window(doc: RulesDocument, findings: Findings) -> timedelta:
    raw = doc.parsed.outcome_window
    window = parse_duration(raw) if raw is not None else timedelta(days=14)
    if raw is not None and not window:
        findings.error(("outcome_window",), f"outcome_window: '{raw}' is not a duration "
                       "(write it like 14d, 2w or 36h)")
        return timedelta(days=14)
    return window or timedelta(days=14)


def _flag(doc: RulesDocument, findings: Findings) -> FlagPolicy:
    remind = None
    raw = doc.parsed.flag.remind_after
    if raw is not None:
        remind = parse_duration(raw)
        if remind == timedelta(0) or raw.strip() == "0":
            remind = None
            findings.error(("flag", "remind_after"), f"flag.remind_after: '{raw}' is no time at all; "
                      "leave remind_after out for no reminder")
        elif remind is None:
            findings.error(("flag", "remind_after"), f"flag.remind_after: '{raw}' is not a duration "
                      "(write it like 2d, 36h, 90m, 1w or 1d12h)")
    return FlagPolicy(tolerance=doc.parsed.flag.tolerance, remind_after=remind)


def _comment(doc: RulesDocument, findings: Findings) -> CommentPolicy:
    parsed = doc.parsed.comment
    intent = parsed.intent_template or DEFAULT_INTENT_TEMPLATE
    checks: tuple[tuple[str, str | None, Literal["comment", "intent"]], ...] = (
        ("intent_template", parsed.intent_template, "intent"),
        ("template", parsed.template, "comment"),
    )
    for key, text, kind in checks:
        if text is None:
            continue
        problem = template_problem(text, kind)
        if problem is not None:
            offset, message = problem
            line = doc.line(("comment", key), value=True)
            # a block scalar (|) starts on the line after its indicator
            line += offset if "\n" in text else 0
            findings.errors.append((line, f"comment.{key}: {message}"))
    return CommentPolicy(template=parsed.template, intent_template=intent)


def build_rules(doc: RulesDocument, findings: Findings, *, source: str, digest: str) -> Rules:
    parsed = doc.parsed
    if parsed.version != 1 and not doc.broken("version"):
        findings.error(("version",), f"version: unsupported version {parsed.version} "
                  "(this leaderleader reads version 1)")
    _check_levels(doc, findings)
    _check_people(doc, findings)
    _check_teams(doc, findings)
    waiting = parsed.waiting_for_approval
    if not waiting.statuses and not waiting.approver_field and not doc.broken(
        "waiting_for_approval"
    ):
        findings.error(("waiting_for_approval",), "waiting_for_approval: name the statuses that mean "
                  "'waiting for approval', or an approver_field, or both", value=False)
    decisions = decision_rules(doc, findings)
    flag = _flag(doc, findings)
    comment = _comment(doc, findings)
    return Rules(
        version=parsed.version,
        levels=tuple(parsed.levels),
        people={
            handle: Person(handle=handle, jira=p.jira, name=p.name or handle, level=p.level,
                           team=p.team, reports_to=p.reports_to,
                           competences=tuple(dict.fromkeys(c.strip() for c in p.competences
                                                           if c.strip())))
            for handle, p in parsed.people.items()
        },
        teams={
            name: Team(name=name, lead=t.lead, components=tuple(t.components),
                       projects=tuple(t.projects))
            for name, t in parsed.teams.items()
        },
        waiting=WaitingForApproval(statuses=tuple(waiting.statuses),
                                   approver_field=waiting.approver_field),
        decisions=decisions,
        flag=flag,
        comment=comment,
        dry_run=parsed.dry_run,
        outcome_window=_outcome_window(doc, findings),
        source=source,
        digest=digest,
    )
