"""Evidence-based delegation: what the ledger says the rules file could change.

Read over the episodes that *started* since ``since`` (``rules suggest --since``,
default 180 days). Thresholds (module constants, in the README):

* **Rubber stamp** (``rubber_stamp``), per decision rule and approver: at least
  ``MIN_WAITS`` ended episodes; at least ``MIN_APPROVED`` of them approved (ended into a
  status that is not a rejection, ``ledger.answers.is_rejection``); the median
  *approval time* (from when the ticket reached the approver, ``reached_at``, else
  the wait's start, to its end) at most ``MAX_APPROVAL``; the median wait at least
  ``MIN_WAIT``. Proposed: lower the rule's ``decided_at`` to the level that most often
  held the information in those episodes, when that is below the rule's level now.
* **Always flagged** (``always_flagged``), per rule: at least ``MIN_WAITS`` episodes,
  every one flagged; the rule's level is never where the approval happens. A comment
  with the evidence is proposed above the rule (no value changes: ask the approvers).
  Not proposed for a rule that already has a rubber-stamp suggestion.
* **Acts on intents** (``acts_on_intents``), per person who declared intents: at least
  ``MIN_WAITS`` episodes with their intent, none objected to, every one acknowledged or
  proceeded (``ledger.loop.answer_of``). A comment with the evidence above the person.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session

from ledger.answers import OBJECTED, is_rejection
from ledger.figures import Dialect, hours, percentile
from ledger.loop import answer_of
from ledger.models import ApprovalWait as W
from ledger.models import Intent
from rules.model import INFORMATION, Rules
from rules.suggestions import Suggestion

MIN_WAITS = 5
MIN_APPROVED = 0.95
MAX_APPROVAL = timedelta(minutes=15)
MIN_WAIT = timedelta(hours=8)


def _median(values: list[float]) -> float:
    return percentile(sorted(values), 0.5) or 0.0


def _rubber_stamps(rows: list[Any], rules: Rules) -> list[Suggestion]:
    groups: dict[tuple[str, str], list[Any]] = defaultdict(list)
    for row in rows:
        if row.ended_at is not None and row.decision_rule and row.approver and row.approver_level:
            groups[(row.decision_rule, row.approver)].append(row)
    rule_by_name = {r.name: r for r in rules.decisions}
    found = []
    for (name, approver), group in sorted(groups.items()):
        rule = rule_by_name.get(name)
        if rule is None or rule.decided_at == INFORMATION or len(group) < MIN_WAITS:
            continue
        approved = sum(1 for r in group if not is_rejection(r.end_status))
        approval = _median([(r.ended_at - (r.reached_at or r.started_at)).total_seconds()
                            for r in group])
        wait = _median([(r.ended_at - r.started_at).total_seconds() for r in group])
        holders = Counter(r.holder_level for r in group if r.holder_level in rules.levels)
        if (approved < MIN_APPROVED * len(group) or approval > MAX_APPROVAL.total_seconds()
                or wait < MIN_WAIT.total_seconds() or not holders):
            continue
        level = holders.most_common(1)[0][0]
        if rule.decided_at not in rules.levels or rules.rank(level) >= rules.rank(rule.decided_at):
            continue
        person = rules.people.get(approver)
        who = f"{person.name} ({approver})" if person else approver
        found.append(Suggestion(
            kind="rubber_stamp", rule=name, decided_at=level, current=rule.decided_at,
            summary=f"lower decided_at of '{name}' from {rule.decided_at} to {level}",
            evidence=(f"{who} approved {approved} of {len(group)} '{name}' waits,",
                      f"a median {hours(approval)} h after the ticket reached them, after a "
                      f"median wait of {hours(wait)} h;",
                      f"{level} held the information in {holders[level]} of them."),
            figures={"approver": approver, "waits": len(group), "approved": approved,
                     "median_approval_hours": hours(approval), "median_wait_hours": hours(wait)}))
    return found


def _always_flagged(rows: list[Any], rules: Rules, taken: set[str]) -> list[Suggestion]:
    groups: dict[str, list[Any]] = defaultdict(list)
    for row in rows:
        if row.decision_rule:
            groups[row.decision_rule].append(row)
    known = {r.name: r for r in rules.decisions}
    found = []
    for name, group in sorted(groups.items()):
        if name not in known or name in taken or len(group) < MIN_WAITS:
            continue
        if all(r.flagged for r in group):
            levels = Counter(r.approver_level for r in group if r.approver_level)
            top = ", ".join(f"{lv} ({n})" for lv, n in levels.most_common(3))
            found.append(Suggestion(
                kind="always_flagged", rule=name, current=known[name].decided_at,
                summary=f"every '{name}' wait was flagged: its approvers never sit at "
                        f"{known[name].decided_at}",
                evidence=(f"{len(group)} of {len(group)} waits flagged; approvers' levels: {top}.",
                          "Tell the approvers the rule stands, or change decided_at."),
                figures={"waits": len(group)}))
    return found


def _acting_on_intents(session: Session, since: datetime, now: datetime,
                       rules: Rules) -> list[Suggestion]:
    rows = session.execute(
        select(Intent.author_handle, W.id, W.reply, W.first_intent_at)
        .join(W, Intent.wait_id == W.id)
        .where(W.started_at >= since, Intent.author_handle.is_not(None),
               W.first_intent_at.is_not(None))
    ).all()
    per: dict[str, dict[int, str]] = defaultdict(dict)
    for row in rows:
        per[row.author_handle][row.id] = answer_of(row.reply, row.first_intent_at, now,
                                                   rules.flag.remind_after)
    found = []
    for handle, waits in sorted(per.items()):
        answers = Counter(waits.values())
        if handle not in rules.people or len(waits) < MIN_WAITS or answers[OBJECTED]:
            continue
        if answers["unanswered"]:
            continue
        person = rules.people[handle]
        found.append(Suggestion(
            kind="acts_on_intents", person=handle,
            summary=f"{person.name} acts on intents and nobody objects",
            evidence=(f"{len(waits)} waits with their intent: {answers['acknowledged']} "
                      f"acknowledged, {answers['proceeded']} proceeded, none objected to.",
                      "Consider decision rules that let them decide without approval."),
            figures={"intents": len(waits), "acknowledged": answers["acknowledged"],
                     "proceeded": answers["proceeded"]}))
    return found


def _candidates(session: Session, since: datetime) -> tuple[list[Any], list[Any]]:
    """(rule, approver) pairs and rules that may pass the thresholds, found by the database.

    A median is at most X only if at least half the values are (and at least Y only if at
    least half are), so groups failing that are dropped before any row is read: on a
    large ledger only the few groups that may be suggested come back to Python. One
    scan counts per (rule, approver), for both checks; a rule's counts are their sums.
    """
    dialect = Dialect(session)
    approval = dialect.seconds(func.coalesce(W.reached_at, W.started_at), W.ended_at)
    decided = (W.ended_at.is_not(None), W.approver.is_not(None), W.approver_level.is_not(None))
    query = (
        select(W.decision_rule, W.approver, func.count().label("episodes"),
               func.count().filter(W.flagged.is_not(True)).label("unflagged"),
               func.count().filter(*decided).label("ended"),
               func.count().filter(*decided, approval <= MAX_APPROVAL.total_seconds())
               .label("fast"),
               func.count().filter(*decided, dialect.wait() >= MIN_WAIT.total_seconds())
               .label("long"))
        .where(W.started_at >= since, W.decision_rule.is_not(None))
        .group_by(W.decision_rule, W.approver)
    )
    pairs = []
    per_rule: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for row in session.execute(query):
        if (row.approver is not None and row.ended >= MIN_WAITS
                and 2 * row.fast >= row.ended - 1 and 2 * row.long >= row.ended - 1):
            pairs.append(row)
        counts = per_rule[row.decision_rule]
        counts[0] += row.episodes
        counts[1] += row.unflagged
    rules = [rule for rule, (episodes, unflagged) in sorted(per_rule.items())
             if episodes >= MIN_WAITS and unflagged == 0]
    return pairs, rules


def suggestions(session: Session, rules: Rules, since: datetime, now: datetime) -> list[Suggestion]:
    """Everything the ledger since ``since`` suggests changing in ``rules``."""
    pairs, flagged_rules = _candidates(session, since)
    wanted = [and_(W.decision_rule == p.decision_rule, W.approver == p.approver) for p in pairs]
    wanted += [W.decision_rule == name for name in flagged_rules]
    rows: list[Any] = list(session.execute(
        select(W.decision_rule, W.approver, W.approver_level, W.holder_level, W.flagged,
               W.started_at, W.ended_at, W.reached_at, W.end_status)
        .where(W.started_at >= since, or_(*wanted))
    )) if wanted else []
    stamps = _rubber_stamps(rows, rules)
    flagged = _always_flagged(rows, rules, {s.rule for s in stamps if s.rule})
    return stamps + flagged + _acting_on_intents(session, since, now, rules)
