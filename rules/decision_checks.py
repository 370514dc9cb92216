"""The decision rules of a rules file: what they match, the levels they name, and why.

Each rule's conditions are checked for known keys and possible ranges, a rule shadowed by
an earlier one is a warning, and a rule that lets a level decide below someone who holds
the information must say why (its ``purpose``).
"""

from __future__ import annotations

from typing import Any

from rules.document import Findings, RulesDocument, level_problem, suggest
from rules.model import INFORMATION, DecisionRule, FieldCondition, Match

_CONDITION_KEYS = ("equals", "in", "gte", "gt", "lte", "lt")


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
                      f"{', '.join(_CONDITION_KEYS)}){suggest(str(key), _CONDITION_KEYS)}",
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


def decision_rules(doc: RulesDocument, findings: Findings) -> tuple[DecisionRule, ...]:
    rules: list[DecisionRule] = []
    sound: list[DecisionRule] = []  # rules without a reported problem: they can shadow others
    names: dict[str, int] = {}
    for index, decision in enumerate(doc.parsed.decisions):
        path = ("decisions", index)
        if decision.decided_at != INFORMATION:
            problem = level_problem(doc, decision.decided_at, INFORMATION)
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
                      f"'{rule.require}'{suggest(rule.require, held)}", value=True)
