"""Evaluation: is this ticket waiting on someone above the level that holds the information?

``evaluate`` is pure and total: plain data in, a Verdict out, never an exception for
an odd ticket. Every step appends a sentence to the reasons, so the comment,
``rules explain``, the ledger and the report all tell the same story.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from rules.model import INFORMATION, DecisionRule, FieldCondition, Person, Rules, Ticket, Verdict
from rules.waiting import approval_decided, field_approvers, ticket_waits


def _any(wanted: Iterable[str], have: Iterable[str]) -> bool:
    lowered = {h.strip().lower() for h in have if h}
    return any(w.strip().lower() in lowered for w in wanted)


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    try:
        return float(str(value))
    except (TypeError, ValueError):
        return None


def condition_holds(condition: FieldCondition, value: Any) -> bool:
    values = value if isinstance(value, (list, tuple)) else (value,)
    if condition.equals is not None and not any(_same(v, condition.equals) for v in values):
        return False
    if condition.in_ is not None and not any(_same(v, m) for v in values for m in condition.in_):
        return False
    bounds = (condition.gte, condition.gt, condition.lte, condition.lt)
    if any(b is not None for b in bounds):
        number = _number(value)
        if number is None:
            return False
        if condition.gte is not None and not number >= condition.gte:
            return False
        if condition.gt is not None and not number > condition.gt:
            return False
        if condition.lte is not None and not number <= condition.lte:
            return False
        if condition.lt is not None and not number < condition.lt:
            return False
    return True


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, str) and isinstance(b, str):
        return a.strip().lower() == b.strip().lower()
    na, nb = _number(a), _number(b)
    if na is not None and nb is not None:
        return na == nb
    return bool(a == b)


def rule_matches(rule: DecisionRule, ticket: Ticket) -> bool:
    m = rule.match
    if m.issue_types and not _any(m.issue_types, [ticket.issue_type or ""]):
        return False
    if m.labels and not _any(m.labels, ticket.labels):
        return False
    if m.components and not _any(m.components, ticket.components):
        return False
    if m.projects and not _any(m.projects, [ticket.project]):
        return False
    if m.priorities and not _any(m.priorities, [ticket.priority or ""]):
        return False
    return all(condition_holds(c, ticket.fields.get(c.field)) for c in m.fields)


def matching_rule(rules: Rules, ticket: Ticket) -> DecisionRule | None:
    """First match wins."""
    return next((r for r in rules.decisions if rule_matches(r, ticket)), None)


def team_for(rules: Rules, ticket: Ticket) -> str | None:
    for team in rules.teams.values():
        if _any(team.projects, [ticket.project]) or _any(team.components, ticket.components):
            return team.name
    return None


def _label(person: Person) -> str:
    return f"{person.name} ({person.level})"


def _decider(rules: Rules, holder: Person, level: str) -> tuple[Person | None, tuple[str, ...]]:
    """The holder if their level reaches ``level``, else the first one up ``reports_to`` who does."""
    path: list[str] = []
    current: Person | None = holder
    while current is not None and current.handle not in path:
        path.append(current.handle)
        if current.level in rules.levels and rules.rank(current.level) >= rules.rank(level):
            return current, tuple(path)
        current = rules.people.get(current.reports_to) if current.reports_to else None
    return None, tuple(path)


def _not_waiting(rules: Rules, ticket: Ticket) -> str:
    field = rules.waiting.approver_field
    decided = approval_decided(rules, ticket.fields)
    if decided is not None:
        return (f"The approval in {field} has its final decision ({decided}), so the ticket "
                "no longer waits for it.")
    if rules.waiting.statuses:
        return (f"The ticket is in status '{ticket.status}', which is not a "
                "waiting-for-approval status.")
    return f"Nobody is named in the approver field {field}, so the ticket waits for no approval."


def _approver_ids(rules: Rules, ticket: Ticket, reasons: list[str]) -> tuple[str, ...]:
    """Who the ticket waits on: the approver field's users, else its assignee."""
    named = field_approvers(rules, ticket.fields)
    if named:
        reasons.append("The ticket waits for approval from the approver field "
                       f"{rules.waiting.approver_field}.")
        return named
    if ticket.assignee:
        reasons.append(f"The ticket is in '{ticket.status}'; its assignee is the approver.")
        return (ticket.assignee,)
    empty = (f"the approver field {rules.waiting.approver_field} names nobody and "
             if rules.waiting.approver_field else "")
    reasons.append(f"The ticket is in '{ticket.status}', but {empty}it is unassigned: "
                   "nobody is named to approve it.")
    return ()


def _competent(rules: Rules, start: Person, path: tuple[str, ...], level: str, competence: str,
               approver: Person) -> tuple[Person | None, tuple[str, ...]]:
    """The first one up ``reports_to`` from ``start`` who holds ``competence``, never above the approver."""
    walked = list(path)
    current = rules.people.get(start.reports_to) if start.reports_to else None
    while current is not None and current.handle not in walked:
        if current.level not in rules.levels or (
                rules.rank(current.level) > rules.rank(approver.level)):
            break
        walked.append(current.handle)
        if competence in current.competences and rules.rank(current.level) >= rules.rank(level):
            return current, tuple(walked)
        current = rules.people.get(current.reports_to) if current.reports_to else None
    if competence in approver.competences and approver.handle not in walked:
        return approver, tuple(walked)
    return None, tuple(walked)


def evaluate(rules: Rules, ticket: Ticket) -> Verdict:
    """Decide whether the ticket waits above the level that holds the information, and why."""
    reasons: list[str] = []
    if not ticket_waits(rules, ticket):
        reasons.append(_not_waiting(rules, ticket))
        return Verdict(key=ticket.key, waiting=False, flagged=False, reasons=tuple(reasons),
                       tolerance=rules.flag.tolerance)
    approver_ids = _approver_ids(rules, ticket, reasons)
    base: dict[str, Any] = {"key": ticket.key, "waiting": True, "approvers": approver_ids,
                            "tolerance": rules.flag.tolerance}
    mapped = [p for p in (rules.person_by_jira(a) for a in approver_ids) if p is not None]
    unmapped = [a for a in approver_ids if rules.person_by_jira(a) is None]
    approver = max(mapped, key=lambda p: rules.rank(p.level), default=None)
    if approver is not None:
        reasons.append(f"It waits on {_label(approver)}"
                       + (", the highest-level of its approvers." if len(approver_ids) > 1 else "."))
        base.update(approver=approver.handle, approver_level=approver.level)
    elif unmapped:
        reasons.append(f"It waits on {', '.join(unmapped)}, not in the rules file's people: "
                       "their level is unknown, so leaderleader does not guess.")
        base.update(approver=unmapped[0])

    holder_id = ticket.assignee_before_approval or (
        ticket.assignee if ticket.assignee not in approver_ids else None) or ticket.reporter
    source = ("the assignee before it went into approval" if ticket.assignee_before_approval
              else "the assignee" if holder_id == ticket.assignee else "the reporter")
    holder = rules.person_by_jira(holder_id)
    team = team_for(rules, ticket)
    if holder is None and team is not None and rules.teams[team].lead in rules.people:
        lead = rules.people[rules.teams[team].lead]  # type: ignore[index]
        reasons.append(f"{holder_id or 'Nobody'} ({source}) is not in the rules file; team "
                       f"{team} owns this work, so its lead {_label(lead)} holds the information.")
        holder = lead
    elif holder is not None:
        reasons.append(f"The information sits with {_label(holder)}, {source}.")
    if holder is None:
        missing = tuple(unmapped + ([holder_id] if holder_id else []))
        reasons.append(f"The information holder ({source}: {holder_id or 'nobody'}) is not in "
                       "the rules file, so leaderleader does not guess.")
        return Verdict(**base, flagged=False, reasons=tuple(reasons), holder=holder_id,
                       unmapped=missing, holder_team=team)
    base.update(holder=holder.handle, holder_level=holder.level,
                holder_team=holder.team or team, unmapped=tuple(unmapped))

    rule = matching_rule(rules, ticket)
    if rule is None:
        reasons.append("No decision rule matches this ticket, so there is no level to compare with.")
        return Verdict(**base, flagged=False, reasons=tuple(reasons))
    level = holder.level if rule.decided_at == INFORMATION else rule.decided_at
    how = (f"the level of whoever holds the information: {level}"
           if rule.decided_at == INFORMATION else f"{level} level")
    reasons.append(f"Decision rule '{rule.name}' (line {rule.line}) lets it be decided at {how}.")
    base.update(rule=rule.name, decision_level=level)
    if approver is None:
        reasons.append("With no approver of known level there is nothing to compare: "
                       "nothing is flagged." if unmapped else
                       "With nobody named to approve it there is nothing to compare: "
                       "nothing is flagged.")
        return Verdict(**base, flagged=False, reasons=tuple(reasons))
    if level not in rules.levels or approver.level not in rules.levels:
        reasons.append("A level here is not in the rules' levels, so nothing is compared.")
        return Verdict(**base, flagged=False, reasons=tuple(reasons))
    gap = rules.rank(approver.level) - rules.rank(level)
    flagged = gap > rules.flag.tolerance
    if gap <= 0:
        reasons.append(f"{approver.level} is at or below {level}: the approver is at the right level.")
    elif not flagged:
        reasons.append(f"{approver.level} is {gap} level(s) above {level}, within the tolerance "
                       f"of {rules.flag.tolerance}.")
    else:
        reasons.append(f"{approver.level} is {gap} level(s) above {level}, more than the tolerance "
                       f"of {rules.flag.tolerance}: the decision waits too high.")
    if rule.purpose:
        reasons.append(f"Its purpose: {rule.purpose}")
    base.update(purpose=rule.purpose, require=rule.require)
    decider, path = _decider(rules, holder, level)
    if decider is not None and rules.rank(decider.level) > rules.rank(approver.level):
        decider = None  # never suggest someone above the approver
    if rule.require and decider is not None and rule.require not in decider.competences:
        competent, path = _competent(rules, decider, path, level, rule.require, approver)
        reasons.append(f"Rule '{rule.name}' requires the competence '{rule.require}', which "
                       f"{_label(decider)} does not hold: a competence gap (the fix is training "
                       "or certification, not approval). "
                       + (f"The nearest who holds it is {_label(competent)}."
                          if competent is not None else
                          f"Nobody up reports_to up to {approver.name} holds it."))
        base.update(competence_gap=True, competent=competent.handle if competent else None)
        if competent is None or competent.handle == approver.handle:
            base.update(decider_path=path)
            return Verdict(**base, flagged=flagged, reasons=tuple(reasons))
        decider = competent
    if decider is not None:
        if decider.handle == holder.handle:
            reasons.append(f"{_label(decider)} holds the information and may decide: "
                           "suggested decider.")
        else:
            first = (f"the first at {level} or above holding '{rule.require}'"
                     if base.get("competence_gap") else f"the first at {level} or above")
            reasons.append(f"Walking up reports_to from {holder.name} ({' -> '.join(path)}), "
                           f"{_label(decider)} is {first}: suggested decider.")
        base.update(decider=decider.handle, decider_level=decider.level, decider_path=path)
    else:
        reasons.append(f"Nobody up reports_to from {holder.name} ({' -> '.join(path)}) reaches "
                       f"{level} below the approver, so no one else is suggested.")
        base.update(decider_path=path)
        flagged = False
    return Verdict(**base, flagged=flagged, reasons=tuple(reasons))
