"""What Jira shows about a set of tickets, for drafting a rules file (``rules init``).

Reads through ``JiraConnector`` only: the fields (to find approver pickers), the
statuses (to find approval ones), and the tickets a JQL matches (people, components,
projects). Drafting the file from the survey is pure, in ``rules.draft``.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from connector.client import JiraConnector
from connector.shapes import user_id
from rules.draft import SeenUser, Survey, is_approver_field, looks_like_approval


def _users(value: Any) -> list[dict[str, Any]]:
    """The users in a field's raw value: one user, a list of them, or JSM approval objects."""
    values = value if isinstance(value, list) else [value]
    found: list[dict[str, Any]] = []
    for item in values:
        if not isinstance(item, dict):
            continue
        if isinstance(item.get("approvers"), list):  # JSM: [{approver: {user}, …}, …]
            found.extend(a["approver"] for a in item["approvers"]
                         if isinstance(a, dict) and isinstance(a.get("approver"), dict))
        elif user_id(item):
            found.append(item)
    return found


class _People:
    def __init__(self) -> None:
        self.names: dict[str, str] = {}
        self.emails: dict[str, str] = {}
        self.roles: dict[str, Counter[str]] = {}

    def saw(self, user: Any, role: str) -> None:
        if not isinstance(user, dict) or user.get("accountType") == "app":
            return  # bots and integrations (leaderleader's own account among them)
        jira_id = user_id(user)
        if jira_id is None:
            return
        if isinstance(user.get("displayName"), str) and user["displayName"].strip():
            self.names.setdefault(jira_id, user["displayName"].strip())
        if isinstance(user.get("emailAddress"), str):
            self.emails.setdefault(jira_id, user["emailAddress"].strip())
        self.roles.setdefault(jira_id, Counter())[role] += 1

    def seen(self) -> list[SeenUser]:
        return [SeenUser(jira=j, name=self.names.get(j, ""), email=self.emails.get(j, ""),
                         roles=dict(roles)) for j, roles in self.roles.items()]


def survey(jira: JiraConnector, jql: str, *, max_tickets: int = 500) -> Survey:
    """Read Jira for a draft rules file: at most ``max_tickets`` tickets matching ``jql``."""
    approver_fields = [(str(f["id"]), str(f.get("name") or f["id"]))
                       for f in jira.fields() if is_approver_field(f) and f.get("id")]
    approval: dict[str, tuple[str, str]] = {}
    others: dict[str, str] = {}
    for status in jira.statuses():
        name = str(status.get("name") or "").strip()
        if not name:
            continue
        if looks_like_approval(name):
            approval.setdefault(name.casefold(), (str(status.get("id") or ""), name))
        else:
            others.setdefault(name.casefold(), name)
    people = _People()
    projects: Counter[str] = Counter()
    components: Counter[str] = Counter()
    tickets = 0
    for issue in jira.search_issues(jql, page_size=min(100, max_tickets)):
        if tickets >= max_tickets:
            break
        tickets += 1
        raw = issue.get("fields")
        fields: dict[str, Any] = raw if isinstance(raw, dict) else {}
        people.saw(fields.get("assignee"), "assignee")
        people.saw(fields.get("reporter"), "reporter")
        for field_id, _ in approver_fields:
            for user in _users(fields.get(field_id)):
                people.saw(user, "approver")
        comment = fields.get("comment")
        for item in (comment.get("comments") if isinstance(comment, dict) else None) or []:
            if isinstance(item, dict):
                people.saw(item.get("author"), "commenter")
        project = fields.get("project")
        key = project.get("key") if isinstance(project, dict) else None
        if isinstance(key, str) and key:
            projects[key] += 1
        for component in fields.get("components") or []:
            if isinstance(component, dict) and isinstance(component.get("name"), str):
                components[component["name"]] += 1
    return Survey(
        jql=jql, deployment=jira.deployment, tickets=tickets, users=people.seen(),
        approval_statuses=list(approval.values()), other_statuses=sorted(others.values()),
        approver_fields=approver_fields, projects=dict(projects), components=dict(components),
    )


def resolve_email(jira: JiraConnector, email: str) -> tuple[str | None, str]:
    """The Jira id of the one active user with this email, or None and why not.

    Cloud hides email addresses unless a user allows them: a search that finds exactly
    one active user for the address is taken as that user.
    """
    users = [u for u in jira.find_users(email) if u.get("active") is not False]
    exact = [u for u in users
             if str(u.get("emailAddress") or "").strip().lower() == email.strip().lower()]
    candidates = exact or ([] if any(u.get("emailAddress") for u in users) else users)
    if len(candidates) == 1 and user_id(candidates[0]):
        return user_id(candidates[0]), ""
    if not candidates:
        return None, "no Jira user has this email address"
    return None, f"{len(candidates)} Jira users match it; add this person by hand"
