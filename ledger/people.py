"""Jira users the ledger has seen: their display names, and Data Center keys to usernames.

Every delivery (and backfill's answers from Jira) carries user objects with a display
name; keeping them lets the report, ``rules explain``, ``simulate`` and ``rules check``
show a person missing from the rules file by name instead of an opaque id.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from ledger.db import fit
from ledger.models import JiraUser

#: One seen user: ``jira_id`` (accountId or username), ``key``, ``display_name``, ``email``.
SeenUser = Mapping[str, str | None]


def remember_users(session: Session, users: Iterable[SeenUser], at: datetime) -> None:
    """Insert users not seen before; refresh name, email and key of those that changed."""
    remember_users_at(session, ((user, at) for user in users))


def remember_users_at(session: Session, seen: Iterable[tuple[SeenUser, datetime]]) -> None:
    """``remember_users`` for users seen at different times (a batch of deliveries): each
    user as the latest delivery that names them shows them, written in one statement order.

    A worker's batch writes all its users first, in this one order, and touches them no
    more: two batches then take the users' rows in the same order, before any ticket's,
    and cannot deadlock over them (every delivery names the same few people).
    """
    wanted: dict[str, tuple[SeenUser, datetime]] = {}
    for user, at in seen:
        jira_id = user.get("jira_id")
        if jira_id and (jira_id not in wanted or at >= wanted[jira_id][1]):
            wanted[jira_id] = (user, at)
    if not wanted:
        return
    # Write first, all new users in one statement, in one order: a concurrent batch
    # inserting the same ones waits for this one's commit, never the other way round; and
    # on SQLite the batch takes the write lock before it reads (no stale read to upgrade).
    table = JiraUser.__table__
    rows = [{"jira_id": fit(table.c.jira_id.type, jira_id), "user_key": fit(table.c.user_key.type, user.get("key")),
             "display_name": fit(table.c.display_name.type, user.get("display_name")),
             "email": fit(table.c.email.type, user.get("email")), "seen_at": at}
            for jira_id, (user, at) in sorted(wanted.items())]
    upsert: Any = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    session.execute(upsert(table).values(rows).on_conflict_do_nothing(index_elements=["jira_id"]))
    known = {row.jira_id: row for row in session.scalars(
        select(JiraUser).where(JiraUser.jira_id.in_(list(wanted))))}
    # those that changed, in the same order, and only when something changed
    for jira_id, (user, at) in sorted(wanted.items()):
        row = known.get(str(jira_id))
        if row is None:
            continue
        if row.seen_at is not None and row.seen_at > at:
            continue  # a late delivery: the newer name stands
        changed = [(attribute, value) for attribute, value in (
            ("user_key", user.get("key")), ("display_name", user.get("display_name")),
            ("email", user.get("email"))) if value and getattr(row, attribute) != value]
        for attribute, value in changed:
            setattr(row, attribute, value)
        if changed:
            row.seen_at = at


def display_names(session: Session, jira_ids: Collection[str]) -> dict[str, str]:
    """Jira id -> display name, for the ids the ledger has a name for."""
    if not jira_ids:
        return {}
    rows = session.execute(select(JiraUser.jira_id, JiraUser.user_key, JiraUser.display_name)
                           .where(or_(JiraUser.jira_id.in_(list(jira_ids)),
                                      JiraUser.user_key.in_(list(jira_ids)))))
    names: dict[str, str] = {}
    for jira_id, key, name in rows:
        if name:
            names.setdefault(jira_id, name)
            if key:
                names.setdefault(key, name)
    return {i: names[i] for i in jira_ids if i in names}


def username_for_key(session: Session, value: str | None) -> str | None:
    """A Data Center user key (``JIRAUSER10100``) as the username it belongs to.

    Values that are no known key (usernames, Cloud accountIds) come back unchanged.
    """
    if not value:
        return value
    found = session.scalar(select(JiraUser.jira_id).where(JiraUser.user_key == value,
                                                         JiraUser.jira_id != value).limit(1))
    return found or value
