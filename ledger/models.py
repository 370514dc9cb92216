"""The ledger's tables: what happened to which ticket, and what we did about it.

Times are naive UTC everywhere (SQLite keeps no zone); convert at the edges.
Unique constraints make every write idempotent, so a job that runs twice, or two
workers racing on the same delivery, leave one row behind.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    event,
    false,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON, datetime: DateTime()}


class Delivery(Base):
    """One webhook delivery as Jira sent it; the delivery id makes retries no-ops."""

    __tablename__ = "deliveries"

    id: Mapped[int] = mapped_column(primary_key=True)
    delivery_id: Mapped[str] = mapped_column(String(128), unique=True)
    event: Mapped[str] = mapped_column(String(64))
    issue_key: Mapped[str | None] = mapped_column(String(64), index=True)
    payload_at: Mapped[datetime | None]
    received_at: Mapped[datetime]
    processed_at: Mapped[datetime | None]
    outcome: Mapped[str] = mapped_column(String(32), default="received")
    body: Mapped[str] = mapped_column(Text)
    #: the transition's natural key (changelog id, or issue + transition + time for a
    #: workflow post-function): the same transition under another delivery id is a repeat
    transition_key: Mapped[str | None] = mapped_column(
        String(200), unique=True, index=True)


class TicketRecord(Base):
    """The latest known state of a ticket; ``updated_at`` guards against stale deliveries."""

    __tablename__ = "tickets"
    __table_args__ = (
        # the report leaves out the open waits of deleted tickets: a few ids, read at once
        Index("ix_tickets_deleted", "id", postgresql_where=text("deleted IS TRUE"),
              sqlite_where=text("deleted IS 1")),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(64), unique=True)
    jira_id: Mapped[str | None] = mapped_column(String(64))
    project: Mapped[str] = mapped_column(String(64), index=True, default="")
    issue_type: Mapped[str | None] = mapped_column(String(128))
    summary: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str | None] = mapped_column(String(128))
    status_id: Mapped[str | None] = mapped_column(String(64))
    assignee: Mapped[str | None] = mapped_column(String(128))
    reporter: Mapped[str | None] = mapped_column(String(128))
    priority: Mapped[str | None] = mapped_column(String(64))
    labels: Mapped[list[Any]] = mapped_column(default=list)
    components: Mapped[list[Any]] = mapped_column(default=list)
    fields: Mapped[dict[str, Any]] = mapped_column(default=dict)
    updated_at: Mapped[datetime | None]
    #: Jira's ``updated`` when backfill last imported this ticket's whole history; a
    #: webhook moving ``updated_at`` on does not make backfill skip the older history.
    history_through: Mapped[datetime | None]
    deleted: Mapped[bool] = mapped_column(Boolean, default=False)
    #: Jira's ``statusCategory.key`` of the latest state (new / indeterminate / done)
    status_category: Mapped[str | None] = mapped_column(String(32))

    # A ticket's episodes, boundaries and intents, read as whole collections: a ticket has
    # few of each, and a drain job loads them for a whole batch of tickets in one query
    # each (``jobs.batch``) instead of asking the database one question at a time.
    waits: Mapped[list[ApprovalWait]] = relationship(back_populates="ticket")
    changes: Mapped[list[StatusChange]] = relationship()
    intents: Mapped[list[Intent]] = relationship(
        primaryjoin="TicketRecord.key == foreign(Intent.issue_key)")


class StatusChange(Base):
    """One transition of a ticket's approval state, in the payload's own time.

    Deliveries arrive out of order; waits are derived from these rows sorted by
    ``at``, never from arrival order.
    """

    __tablename__ = "status_changes"
    __table_args__ = (UniqueConstraint("ticket_id", "at", "to_status"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"), index=True)
    at: Mapped[datetime]
    from_status: Mapped[str | None] = mapped_column(String(128))
    to_status: Mapped[str | None] = mapped_column(String(128))
    enters_wait: Mapped[bool] = mapped_column(Boolean, default=False)
    leaves_wait: Mapped[bool] = mapped_column(Boolean, default=False)


class ApprovalWait(Base):
    """One episode of a ticket waiting for approval, with the verdict taken when it began."""

    __tablename__ = "approval_waits"
    __table_args__ = (
        UniqueConstraint("ticket_id", "started_at"),
        Index("ix_waits_started", "started_at"),
        Index("ix_waits_open", "ended_at"),
        Index("ix_waits_approver", "approver"),
        Index("ix_waits_project_started", "project", "started_at"),
        Index("ix_waits_team_started", "team", "started_at"),
        Index("ix_waits_open_started", "ended_at", "started_at"),
        # the report's second percentile pass, its intents and its competence gaps
        Index("ix_waits_wait", "wait_seconds"),
        Index("ix_waits_intent", "first_intent_at",
              postgresql_where=text("first_intent_at IS NOT NULL"),
              sqlite_where=text("first_intent_at IS NOT NULL")),
        Index("ix_waits_gap", "started_at", postgresql_where=text("competence_gap IS TRUE"),
              sqlite_where=text("competence_gap IS 1")),
        # PostgreSQL has one more, made by migration 0010: ix_waits_unmapped, the waits
        # whose list of unmapped people is not empty (an expression index SQLite lacks)
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"), index=True)
    issue_key: Mapped[str] = mapped_column(String(64))
    project: Mapped[str] = mapped_column(String(64), default="")
    team: Mapped[str | None] = mapped_column(String(128))
    status: Mapped[str | None] = mapped_column(String(128))
    started_at: Mapped[datetime]
    ended_at: Mapped[datetime | None]
    #: ``ended_at - started_at`` in seconds, stored when the wait ends (see ``_store_wait``)
    #: so the report sorts plain numbers instead of computing an interval per row.
    wait_seconds: Mapped[float | None] = mapped_column(Float)
    approver: Mapped[str | None] = mapped_column(String(128))
    approver_level: Mapped[str | None] = mapped_column(String(64))
    holder: Mapped[str | None] = mapped_column(String(128))
    holder_level: Mapped[str | None] = mapped_column(String(64))
    decider: Mapped[str | None] = mapped_column(String(128))
    decision_rule: Mapped[str | None] = mapped_column(String(256))
    decision_level: Mapped[str | None] = mapped_column(String(64))
    flagged: Mapped[bool] = mapped_column(Boolean, default=False)
    unmapped: Mapped[list[Any]] = mapped_column(default=list)
    verdict: Mapped[dict[str, Any]] = mapped_column(default=dict)
    ticket_snapshot: Mapped[dict[str, Any]] = mapped_column(default=dict)
    rules_digest: Mapped[str | None] = mapped_column(String(64))
    first_intent_at: Mapped[datetime | None]
    source: Mapped[str] = mapped_column(String(16), default="webhook")
    #: the end was inferred from evidence (the ticket seen elsewhere), not seen as a transition
    end_inferred: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    end_evidence: Mapped[str | None] = mapped_column(String(255))
    #: nobody at the information level holds the competence the rule requires
    competence_gap: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    competence: Mapped[str | None] = mapped_column(String(128))  # the rule's ``require``
    competent: Mapped[str | None] = mapped_column(String(128))  # nearest who holds it
    #: when the ticket was last handed to its approver during the wait (None: at the start)
    reached_at: Mapped[datetime | None]
    end_status: Mapped[str | None] = mapped_column(String(128))  # the status it left into
    #: the approver's answer to the wait's intent: "acknowledged" or "objected" (see ledger.loop)
    reply: Mapped[str | None] = mapped_column(String(16))
    replied_at: Mapped[datetime | None]
    #: a decision taken by intent that came back: "reopened" or "reverted"
    outcome: Mapped[str | None] = mapped_column(String(16))
    outcome_at: Mapped[datetime | None]

    ticket: Mapped[TicketRecord] = relationship(back_populates="waits")
    comments: Mapped[list[Comment]] = relationship(back_populates="wait")


@event.listens_for(ApprovalWait, "before_insert")
@event.listens_for(ApprovalWait, "before_update")
def _store_wait(_mapper: Any, _connection: Any, wait: ApprovalWait) -> None:
    """Keep ``wait_seconds`` in step with the episode's bounds on every ORM write."""
    if wait.ended_at is None:
        wait.wait_seconds = None
    else:
        wait.wait_seconds = (wait.ended_at - wait.started_at).total_seconds()


class Comment(Base):
    """A comment we post (or, in dry-run, would post) on a flagged wait.

    One row per (wait, kind): the unique constraint is half of exactly-once posting;
    the marker we tag the Jira comment with is the other half.
    """

    __tablename__ = "comments"
    __table_args__ = (UniqueConstraint("wait_id", "kind"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    wait_id: Mapped[int] = mapped_column(ForeignKey("approval_waits.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))  # "flag" or "reminder"
    state: Mapped[str] = mapped_column(String(16), default="pending")
    marker: Mapped[str] = mapped_column(String(128), unique=True)
    body: Mapped[str] = mapped_column(Text, default="")
    jira_comment_id: Mapped[str | None] = mapped_column(String(64))
    error: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime]
    posted_at: Mapped[datetime | None]

    wait: Mapped[ApprovalWait] = relationship(back_populates="comments")


class Intent(Base):
    """An "I intend to …" comment by someone close to the work."""

    __tablename__ = "intents"
    __table_args__ = (
        UniqueConstraint("issue_key", "jira_comment_id"),
        Index("ix_intents_declared", "declared_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    wait_id: Mapped[int | None] = mapped_column(ForeignKey("approval_waits.id"), index=True)
    issue_key: Mapped[str] = mapped_column(String(64), index=True)
    jira_comment_id: Mapped[str] = mapped_column(String(64))
    author: Mapped[str | None] = mapped_column(String(128))
    author_handle: Mapped[str | None] = mapped_column(String(128))
    author_level: Mapped[str | None] = mapped_column(String(64))
    #: written by one of the wait's own approvers ("I intend to approve"): not a
    #: decision taken closer to the work, so the report's intent figures leave it out
    by_approver: Mapped[bool] = mapped_column(Boolean, default=False)
    body: Mapped[str] = mapped_column(Text)
    declared_at: Mapped[datetime]

    wait: Mapped[ApprovalWait | None] = relationship()


class JiraUser(Base):
    """A Jira user seen in a delivery or a Jira answer: how to show them, and their DC key.

    ``jira_id`` is the id the rest of the ledger uses (Cloud accountId, else the
    Server/Data Center username); ``user_key`` is Data Center's key (``JIRAUSER10100``),
    which changelogs may carry instead of the username.
    """

    __tablename__ = "jira_users"

    id: Mapped[int] = mapped_column(primary_key=True)
    jira_id: Mapped[str] = mapped_column(String(128), unique=True)
    user_key: Mapped[str | None] = mapped_column(String(128), index=True)
    display_name: Mapped[str | None] = mapped_column(String(256))
    email: Mapped[str | None] = mapped_column(String(256))
    seen_at: Mapped[datetime]


#: The bottleneck report's counts of all history, kept up to date as waits are written
#: (PostgreSQL; see migration 0011 and ``ledger.tallies``): rows of signed amounts per
#: finest group and percentile bucket, which add up to what a scan of every wait would
#: count. Triggers append a row for each change; the scheduler folds them now and then.
wait_tallies = Table(
    "wait_tallies",
    Base.metadata,
    Column("approver", String(128)),
    Column("approver_level", String(64)),
    Column("team", String(128)),
    Column("decision_rule", String(256)),
    Column("bucket", Integer),
    Column("episodes", BigInteger, nullable=False),
    Column("flagged", BigInteger, nullable=False),
    Column("ended", BigInteger, nullable=False),
    Column("after_intent", BigInteger, nullable=False),
    Column("waits", BigInteger, nullable=False),
    Column("total", Float, nullable=False),
)

#: ``delegation``'s counts of all history (same mechanism): per ISO week of a decision
#: (an ended wait), approver level and decision level, with those taken by intent.
delegation_tallies = Table(
    "delegation_tallies",
    Base.metadata,
    Column("week", DateTime()),
    Column("approver_level", String(64)),
    Column("decision_level", String(64)),
    Column("decisions", BigInteger, nullable=False),
    Column("by_intent", BigInteger, nullable=False),
)
