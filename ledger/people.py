"""Jira users the ledger has seen: their display names, and Data Center keys to usernames.

Every delivery (and backfill's answers from Jira) carries user objects with a display
name; keeping them lets the report, ``rules explain``, ``simulate`` and ``rules check``
show a person missing from the rules file by name instead of an opaque id.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ledger.db import insert_new_many
from ledger.models import JiraUser

#: One seen user: ``jira_id`` (accountId or username), ``key``, ``display_name``, ``email``.
SeenUser = Mapping[str, str | None]


#: ``session.info`` key of a drain batch's users (``load_users``)
USERS = "leaderleader.users"


@dataclass
class KnownUsers:
    """The users a drain batch names, read in one query: by Jira id, and the values whose
    lookup as a Data Center key (``username_for_key``) these rows answer completely."""

    rows: dict[str, JiraUser] = field(default_factory=dict)
    keys: set[str] = field(default_factory=set)


def load_users(session: Session, first_seen: Mapping[str, tuple[SeenUser, datetime]],
               keys: Collection[str]) -> None:
    """Record the users a batch names that the ledger lacks, then read them all, once.

    ``first_seen``: each user as the batch's first delivery naming it shows it, and when.
    Inserted in one order (by Jira id) and without conflict errors, so concurrent batches
    neither deadlock nor fail on a user both have just seen. ``remember_users`` and
    ``username_for_key`` then answer from these rows instead of a query each.
    """
    insert_new_many(session, JiraUser, [
        {"jira_id": jira_id, "user_key": user.get("key"), "display_name": user.get("display_name"),
         "email": user.get("email"), "seen_at": at}
        for jira_id, (user, at) in sorted(first_seen.items())])
    wanted = or_(JiraUser.jira_id.in_(list(first_seen)), JiraUser.user_key.in_(list(keys)))
    known = KnownUsers(keys=set(keys))
    if first_seen or keys:
        known.rows = {row.jira_id: row for row in session.scalars(select(JiraUser).where(wanted))}
    session.info[USERS] = known


def remember_users(session: Session, users: Iterable[SeenUser], at: datetime) -> None:
    """Insert users not seen before; refresh name, email and key of those that changed."""
    wanted = {u["jira_id"]: u for u in users if u.get("jira_id")}
    if not wanted:
        return
    batch: KnownUsers | None = session.info.get(USERS)
    if batch is not None and all(jira_id in batch.rows for jira_id in wanted):
        known = batch.rows
    else:
        known = {row.jira_id: row for row in session.scalars(
            select(JiraUser).where(JiraUser.jira_id.in_(list(wanted))))}
    # in one order everywhere (concurrent batches lock the same rows in the same order,
    # so they cannot deadlock), and written only when something changed
    for jira_id, user in sorted(wanted.items()):
        row = known.get(str(jira_id))
        if row is None:
            try:
                with session.begin_nested():
                    session.add(JiraUser(jira_id=jira_id, user_key=user.get("key"),
                                         display_name=user.get("display_name"),
                                         email=user.get("email"), seen_at=at))
            except IntegrityError:  # another worker recorded the same user just now
                pass
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
    batch: KnownUsers | None = session.info.get(USERS)
    if batch is not None and value in batch.keys:
        return next((row.jira_id for row in batch.rows.values()
                     if row.user_key == value and row.jira_id != value), value)
    found = session.scalar(select(JiraUser.jira_id).where(JiraUser.user_key == value,
                                                         JiraUser.jira_id != value).limit(1))
    return found or value
