"""The plain data the rules engine works on: the rules file, a ticket, a verdict.

Everything here is a frozen dataclass with no behaviour beyond lookups, so the
engine stays a pure function and every other package can share these types
without importing Flask, Redis, SQLAlchemy or the Jira client.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any


def utc_now() -> datetime:
    """Now, as the naive UTC time every ledger row, event and report uses."""
    return datetime.now(UTC).replace(tzinfo=None)


#: ``decided_at`` value meaning "the level of whoever holds the information".
INFORMATION = "information"


@dataclass(frozen=True)
class Person:
    """Someone named in the rules file, keyed by a handle used inside the file."""

    handle: str
    jira: str  # Cloud accountId or Server/Data Center username
    name: str
    level: str
    team: str | None = None
    reports_to: str | None = None
    competences: tuple[str, ...] = ()  # e.g. ("deploy", "vendor-spend"); see DecisionRule.require


@dataclass(frozen=True)
class Team:
    name: str
    lead: str | None = None
    components: tuple[str, ...] = ()
    projects: tuple[str, ...] = ()


@dataclass(frozen=True)
class WaitingForApproval:
    """How a ticket blocked on approval is recognised."""

    statuses: tuple[str, ...] = ()  # status names (case-insensitive) or status ids
    approver_field: str | None = None  # e.g. customfield_10050, single or multi user picker


@dataclass(frozen=True)
class FieldCondition:
    """A condition on one field's value: equals, in, or a numeric range."""

    field: str
    equals: Any = None
    in_: tuple[Any, ...] | None = None
    gte: float | None = None
    lt: float | None = None
    lte: float | None = None
    gt: float | None = None


@dataclass(frozen=True)
class Match:
    """What a decision rule applies to; an empty tuple means "any"."""

    issue_types: tuple[str, ...] = ()
    labels: tuple[str, ...] = ()
    components: tuple[str, ...] = ()
    projects: tuple[str, ...] = ()
    priorities: tuple[str, ...] = ()
    fields: tuple[FieldCondition, ...] = ()


@dataclass(frozen=True)
class DecisionRule:
    name: str
    decided_at: str  # a level, or INFORMATION
    match: Match = field(default_factory=Match)
    line: int = 0  # where the rule starts in the rules file, for explanations
    purpose: str | None = None  # why this level may decide: the guiding principle
    require: str | None = None  # a competence the suggested decider must hold


@dataclass(frozen=True)
class FlagPolicy:
    tolerance: int = 0
    remind_after: timedelta | None = None


DEFAULT_INTENT_TEMPLATE = (
    "I intend to <action> because <reason>. "
    "I will proceed on {{ proceed_on }} unless someone objects."
)


#: how long an intent gives others to object when the rules set no ``remind_after``
DEFAULT_GRACE = timedelta(days=2)


def proceed_on_date(base: datetime, remind_after: timedelta | None) -> date:
    """The date an intent proposes to go ahead: ``remind_after`` (else 2 days) after ``base``,
    moved on to a weekday."""
    day = (base + (remind_after or DEFAULT_GRACE)).date()
    while day.weekday() >= 5:
        day += timedelta(days=1)
    return day


@dataclass(frozen=True)
class CommentPolicy:
    template: str | None = None  # optional sandboxed Jinja2 template for the whole comment
    intent_template: str = DEFAULT_INTENT_TEMPLATE


@dataclass(frozen=True)
class Rules:
    version: int
    levels: tuple[str, ...]  # lowest first
    people: Mapping[str, Person]
    teams: Mapping[str, Team] = field(default_factory=dict)
    waiting: WaitingForApproval = field(default_factory=WaitingForApproval)
    decisions: tuple[DecisionRule, ...] = ()
    flag: FlagPolicy = field(default_factory=FlagPolicy)
    comment: CommentPolicy = field(default_factory=CommentPolicy)
    dry_run: bool = False
    #: how long after a decision taken by intent a reopen or a revert counts as its outcome
    outcome_window: timedelta = timedelta(days=14)
    source: str = "<rules>"  # file name, for messages
    digest: str = ""  # sha256 of the file's bytes: which version of the rules is running

    def rank(self, level: str) -> int:
        """Position of a level, lowest first (0)."""
        return self.levels.index(level)

    def person_by_jira(self, jira_id: str | None) -> Person | None:
        if not jira_id:
            return None
        for person in self.people.values():
            if person.jira == jira_id:
                return person
        return None


@dataclass(frozen=True)
class Ticket:
    """A ticket as the engine sees it: plain values already pulled out of Jira's JSON.

    User values are Jira ids (Cloud accountId, or Server/DC username). ``fields``
    holds custom field values by field id, normalised: a user becomes its id, a
    list of users a tuple of ids, an option its ``value``, numbers stay numbers.
    """

    key: str
    project: str = ""
    issue_type: str | None = None
    status: str | None = None
    status_id: str | None = None
    summary: str = ""
    labels: tuple[str, ...] = ()
    components: tuple[str, ...] = ()
    priority: str | None = None
    assignee: str | None = None
    reporter: str | None = None
    #: the assignee just before the ticket entered the approval status (tickets are
    #: often handed to the approver in the same transition)
    assignee_before_approval: str | None = None
    fields: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: the snapshot the ledger keeps with each wait."""
        data = asdict(self)
        data["fields"] = {k: list(v) if isinstance(v, tuple) else v for k, v in self.fields.items()}
        for name in ("labels", "components"):
            data[name] = list(data[name])
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Ticket:
        """The ticket a stored snapshot describes (lists back to tuples)."""
        fields = {k: tuple(v) if isinstance(v, list) else v
                  for k, v in (data.get("fields") or {}).items()}
        return cls(
            key=data["key"],
            project=data.get("project", ""),
            issue_type=data.get("issue_type"),
            status=data.get("status"),
            status_id=data.get("status_id"),
            summary=data.get("summary", ""),
            labels=tuple(data.get("labels", ())),
            components=tuple(data.get("components", ())),
            priority=data.get("priority"),
            assignee=data.get("assignee"),
            reporter=data.get("reporter"),
            assignee_before_approval=data.get("assignee_before_approval"),
            fields=fields,
        )


@dataclass(frozen=True)
class Verdict:
    """The engine's answer with the chain of reasoning that led to it.

    The comment, ``rules explain``, the ledger and the report all read this object,
    so they always tell the same story.
    """

    key: str
    waiting: bool  # is the ticket in an approval wait at all
    flagged: bool  # should we post a comment
    reasons: tuple[str, ...] = ()  # human sentences, in order
    rule: str | None = None  # name of the matched decision rule
    decision_level: str | None = None
    tolerance: int = 0
    approver: str | None = None  # handle, or the Jira id when unmapped
    approver_level: str | None = None
    approvers: tuple[str, ...] = ()  # every approver's Jira id
    holder: str | None = None  # information holder: handle, or Jira id when unmapped
    holder_level: str | None = None
    holder_team: str | None = None
    decider: str | None = None  # suggested decider's handle
    decider_level: str | None = None
    decider_path: tuple[str, ...] = ()  # handles walked up reports_to, holder first
    unmapped: tuple[str, ...] = ()  # Jira ids that matter here but are not in the file
    purpose: str | None = None  # the matched rule's purpose
    require: str | None = None  # the competence the matched rule requires
    #: nobody at the information level holds ``require``; ``competent`` is the nearest who does
    competence_gap: bool = False
    competent: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Verdict:
        """The verdict stored with a wait; keys it does not know (older versions) are dropped."""
        known = cls.__dataclass_fields__
        values: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v
                                  for k, v in data.items() if k in known}
        return cls(**values)
