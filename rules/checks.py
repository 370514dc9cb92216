"""The meaning of a well-shaped rules file: references, levels, cycles, durations, templates.

Each check reads a ``RulesDocument`` (the parsed file and the line of each part) and
records ``(line, message)`` in ``Findings`` as an error or a warning; the loader sorts
and prints them all. Messages name the valid choices and offer a did-you-mean.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterable
from datetime import timedelta
from typing import Any, Literal

from rules.comment import template_problem
from rules.model import (
    DEFAULT_INTENT_TEMPLATE,
    INFORMATION,
    CommentPolicy,
    DecisionRule,
    FieldCondition,
    FlagPolicy,
    Match,
    Person,
    Rules,
    Team,
    WaitingForApproval,
)
from rules.schema import RulesIn

_DURATION = re.compile(r"^(?:(\d+)w)?\s*(?:(\d+)d)?\s*(?:(\d+)h)?\s*(?:(\d+)m)?$")
_CONDITION_KEYS = ("equals", "in", "gte", "gt", "lte", "lt")


def parse_duration(text: str) -> timedelta | None:
    """``2d``, ``36h``, ``90m``, ``1w``, ``1d12h`` -> timedelta; None if malformed."""
    match = _DURATION.match(text.strip().lower())
    if not text.strip() or not match or not any(match.groups()):
        return None
    weeks, days, hours, minutes = (int(g) if g else 0 for g in match.groups())
    return timedelta(weeks=weeks, days=days, hours=hours, minutes=minutes)


def _suggest(word: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f"; did you mean '{close[0]}'?" if close else ""


class RulesDocument:
    """The rules file as parsed, with the line each part is written on."""

    def __init__(self, parsed: RulesIn, line: Callable[..., int],
                 dropped: set[tuple[Any, ...]] | None = None) -> None:
        self.parsed = parsed
        #: ``line(path, value=False)``: the line of a key (or of its value)
        self.line = line
        #: paths already reported as wrong and taken out: checked no further
        self.dropped = dropped or set()

    def broken(self, *path: Any) -> bool:
        """Was this part (or anything inside it) reported as wrong and taken out?"""
        return any(d[: len(path)] == path for d in self.dropped)


class Findings:
    """The errors and warnings found in a rules document, each as (line, message)."""

    def __init__(self, document: RulesDocument) -> None:
        self.line = document.line
        self.errors: list[tuple[int, str]] = []
        self.warnings: list[tuple[int, str]] = []

    def error(self, path: tuple[Any, ...], message: str, value: bool = True) -> None:
        self.errors.append((self.line(path, value=value), message))

    def warn(self, path: tuple[Any, ...], message: str, value: bool = False) -> None:
        self.warnings.append((self.line(path, value=value), message))


def _check_levels(doc: RulesDocument, findings: Findings) -> None:
    seen: set[str] = set()
    for index, level in enumerate(doc.parsed.levels):
        if level == INFORMATION:
            findings.error(("levels", index), f"'{INFORMATION}' is reserved for decided_at; "
                                         "name the level differently")
        if level in seen:
            findings.error(("levels", index), f"level '{level}' is listed twice")
        seen.add(level)


def _level_problem(doc: RulesDocument, level: str, *extra: str) -> str | None:
    levels = list(doc.parsed.levels)
    if level in levels or level in extra:
        return None
    choices = ", ".join(levels + [f"or '{e}'" for e in extra])
    return f"unknown level '{level}' (levels: {choices}){_suggest(level, levels + list(extra))}"


def _check_people(doc: RulesDocument, findings: Findings) -> None:
    people = doc.parsed.people
    owners: dict[str, str] = {}
    for handle, person in people.items():
        base = ("people", handle)
        problem = _level_problem(doc, person.level)
        if problem:
            findings.error(base + ("level",), f"people.{handle}.level: {problem}")
        if (person.reports_to is not None and person.reports_to not in people
                and not doc.broken("people", person.reports_to)):
            findings.error(base + ("reports_to",), f"people.{handle}.reports_to: nobody called "
                      f"'{person.reports_to}' in people{_suggest(person.reports_to, people)}")
        if (person.team is not None and person.team not in doc.parsed.teams
                and not doc.broken("teams", person.team)):
            findings.error(base + ("team",), f"people.{handle}.team: no team called '{person.team}' "
                      f"in teams{_suggest(person.team, doc.parsed.teams)}")
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
                      f"in people{_suggest(team.lead, doc.parsed.people)}")


def _conditions(doc: RulesDocument, findings: Findings, index: int, fields: dict[str, Any]) -> tuple[FieldCondition, ...]:
    out = []
    for field_id, spec in fields.items():
        path = ("decisions", index, "match", "fields", field_id)
        where = f"decisions[{index}].match.fields.{field_id}"
        if isinstance(spec, list):
            spec = {"in": spec}
        elif not isinstance(spec, dict):
            spec = {"equals": spec}
        if not any(spec.get(k) is not None for k in _CONDITION_KEYS):
            if not [k for k in spec if k not in _CONDITION_KEYS]:
                findings.error(path, f"{where}: nothing to compare with (give a value, a list, or "
                          f"conditions: {', '.join(_CONDITION_KEYS)})", value=False)
        for value in [spec.get("equals")] + list(spec.get("in") or []):
            if isinstance(value, bool):
                word = "yes" if value else "no"
                findings.warn(path, f"{where}: {_yes_no(value)} is a YAML yes/no value, which no Jira "
                         f"field holds; quote it (\"{word}\") to match the text")
                break
        unknown = [k for k in spec if k not in _CONDITION_KEYS]
        for key in unknown:
            findings.error(path + (key,), f"{where}: unknown condition '{key}' (conditions: "
                      f"{', '.join(_CONDITION_KEYS)}){_suggest(str(key), _CONDITION_KEYS)}",
                      value=False)
        bounds: dict[str, float] = {}
        for key in ("gte", "gt", "lte", "lt"):
            if key in spec:
                value = spec[key]
                if isinstance(value, bool) or not isinstance(value, (int, float)):
                    findings.error(path + (key,), f"{where}.{key}: must be a number, not {value!r}")
                else:
                    bounds[key] = float(value)
        empty = _empty_range(bounds)
        if empty:
            findings.warn(path, f"{where}: no number is {empty}: this rule can never match")
        members = spec.get("in")
        if members is not None and not isinstance(members, list):
            findings.error(path + ("in",), f"{where}.in: must be a list")
            members = None
        out.append(FieldCondition(
            field=field_id,
            equals=spec.get("equals"),
            in_=tuple(members) if members is not None else None,
            **bounds,
        ))
    return tuple(out)


def _yes_no(value: bool) -> str:
    return "true" if value else "false"


def _empty_range(bounds: dict[str, float]) -> str | None:
    """'gte 100 and lt 10' when no number lies within the bounds, else None."""
    lows = [(k, v) for k, v in bounds.items() if k in ("gte", "gt")]
    highs = [(k, v) for k, v in bounds.items() if k in ("lte", "lt")]
    for low_key, low in lows:
        for high_key, high in highs:
            if low > high or (low == high and (low_key == "gt" or high_key == "lt")):
                return f"{low_key} {low:g} and {high_key} {high:g}"
    return None


def _covers(earlier: Match, later: Match) -> bool:
    """Does every ticket the later match accepts also match the earlier one?"""
    for name in ("issue_types", "labels", "components", "projects", "priorities"):
        wide = {v.strip().lower() for v in getattr(earlier, name)}
        narrow = {v.strip().lower() for v in getattr(later, name)}
        if wide and not (narrow and narrow <= wide):
            return False
    return all(condition in later.fields for condition in earlier.fields)


def _decisions(doc: RulesDocument, findings: Findings) -> tuple[DecisionRule, ...]:
    rules: list[DecisionRule] = []
    sound: list[DecisionRule] = []  # rules without a reported problem: they can shadow others
    names: dict[str, int] = {}
    for index, decision in enumerate(doc.parsed.decisions):
        path = ("decisions", index)
        if decision.decided_at != INFORMATION:
            problem = _level_problem(doc, decision.decided_at, INFORMATION)
            if problem:
                findings.error(path + ("decided_at",), f"decisions[{index}].decided_at: {problem}")
        if decision.name in names:
            findings.warn(path + ("name",), f"two decision rules are called '{decision.name}'")
        names[decision.name] = index
        m = decision.match
        rule = DecisionRule(
            name=decision.name,
            decided_at=decision.decided_at,
            match=Match(
                issue_types=tuple(m.issue_types), labels=tuple(m.labels),
                components=tuple(m.components), projects=tuple(m.projects),
                priorities=tuple(m.priorities), fields=_conditions(doc, findings, index, m.fields),
            ),
            line=doc.line(path),
            purpose=(decision.purpose or "").strip() or None,
            require=(decision.require or "").strip() or None,
        )
        _check_purpose(doc, findings, index, rule)
        _check_require(doc, findings, index, rule)
        rules.append(rule)
        if doc.broken(*path):
            continue
        earlier = next((r for r in sound if _covers(r.match, rule.match)), None)
        if earlier is not None:
            every = "every ticket" if earlier.match == Match() else "every ticket it would"
            findings.warn(path, f"decision '{decision.name}' can never match: "
                     f"'{earlier.name}' above it matches {every}")
        sound.append(rule)
    if not rules:
        findings.warn(("decisions",) if doc.parsed.decisions is not None else (),
                 "no decision rules: nothing will ever be flagged")
    return tuple(rules)


def information_holders(doc: RulesDocument) -> list[str]:
    """The people closest to the work, who hold the information: everyone with a ``team``
    (everyone in ``people`` when nobody has one), by handle."""
    people = doc.parsed.people
    return [h for h, p in people.items() if p.team is not None] or list(people)


def lowered_below(doc: RulesDocument, level: str) -> list[str]:
    """Information holders a fixed ``decided_at: level`` puts the decision below, by handle.

    A rule *lowers a decision below information* when its fixed level is below the level
    of at least one person who may hold the information (``information_holders``): for
    that person's tickets someone lower than them may decide.
    """
    levels = list(doc.parsed.levels)
    if level not in levels:
        return []
    people = doc.parsed.people
    return [h for h in information_holders(doc)
            if people[h].level in levels and levels.index(people[h].level) > levels.index(level)]


def _check_purpose(doc: RulesDocument, findings: Findings, index: int, rule: DecisionRule) -> None:
    if rule.purpose or rule.decided_at == INFORMATION or doc.broken("decisions", index):
        return
    below = lowered_below(doc, rule.decided_at)
    if below:
        names = ", ".join(below[:3]) + (" …" if len(below) > 3 else "")
        findings.warn(("decisions", index), f"decision '{rule.name}' lets {rule.decided_at} decide "
                      f"below the level of whoever holds the information (e.g. {names}) but gives "
                      "no purpose: say why this level may decide (purpose: ...)")


def _check_require(doc: RulesDocument, findings: Findings, index: int, rule: DecisionRule) -> None:
    if rule.require is None or doc.broken("decisions", index):
        return
    held = {c for p in doc.parsed.people.values() for c in p.competences}
    if rule.require not in held:
        findings.warn(("decisions", index, "require"),
                      f"decisions[{index}].require: nobody in people holds the competence "
                      f"'{rule.require}'{_suggest(rule.require, held)}", value=True)


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
    decisions = _decisions(doc, findings)
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
