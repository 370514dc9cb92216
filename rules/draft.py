"""Drafting a rules file: from what Jira shows (``rules init``) and from an HR export
(``rules import-people``). Pure: plain values in, YAML text out.

A draft is meant to be read and finished by a person. It leaves every level as the
placeholder ``TODO``, which ``rules check`` rejects (``unknown level 'TODO'``) until it is
filled in: nobody's level is ever guessed.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

#: the level a draft gives everyone until a person fills it in
PLACEHOLDER = "TODO"
DEFAULT_LEVELS = ("engineer", "tech_lead", "manager", "director", "vp")
#: plain words YAML would read as something other than text
_YAML_WORDS = {"y", "n", "yes", "no", "true", "false", "on", "off", "null", "~"}

_APPROVAL_STATUS = re.compile(r"approv|sign[\s_-]*off|authori[sz]", re.IGNORECASE)
_APPROVER_FIELD = re.compile(r"approv|sign[\s_-]*off|authori[sz]er", re.IGNORECASE)
#: user pickers (single and multi) and Jira Service Management's Approvals field
_USER_FIELD_TYPES = ("userpicker", "multiuserpicker", "sd-approvals")


def looks_like_approval(status_name: str) -> bool:
    """'Awaiting Approval', 'Pending sign-off', 'Needs authorisation'…"""
    return bool(_APPROVAL_STATUS.search(status_name))


def is_approver_field(field: Mapping[str, Any]) -> bool:
    """A custom user-picker (or JSM Approvals) field whose name looks like an approver field."""
    schema = field.get("schema")
    schema = schema if isinstance(schema, dict) else {}
    custom = str(schema.get("custom") or "")
    user_typed = (schema.get("type") == "user" or schema.get("items") == "user"
                  or any(custom.endswith(":" + kind) for kind in _USER_FIELD_TYPES))
    name = str(field.get("name") or "")
    return bool(field.get("custom")) and user_typed and bool(_APPROVER_FIELD.search(name))


def slug(text: str) -> str:
    """Lower-case ASCII letters, digits and underscores: 'Zoë Ångström' -> 'zoe_angstrom'."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "_", ascii_text.lower()).strip("_")


def _safe_key(word: str) -> str:
    if not word:
        word = "person"
    if word[0].isdigit():
        word = "p_" + word
    return word + "_" if word in _YAML_WORDS else word


def make_handles(people: Sequence[tuple[str, str, str]]) -> dict[str, str]:
    """Handles for ``(key, name, email)``: the first name when nobody else shares it, else
    the full name, else numbered; from the email's local part (or the key) without a name."""

    def full(key: str, name: str, email: str) -> str:
        return _safe_key(slug(name) or slug(email.partition("@")[0]) or slug(key))

    def first(key: str, name: str, email: str) -> str:
        words = slug(name).split("_")
        return _safe_key(words[0]) if words[0] else full(key, name, email)

    firsts: dict[str, int] = {}
    for person in people:
        firsts[first(*person)] = firsts.get(first(*person), 0) + 1
    handles: dict[str, str] = {}
    taken: set[str] = set()
    for key, name, email in people:
        handle = first(key, name, email)
        if firsts[handle] > 1:
            handle = full(key, name, email)
        base, n = handle, 2
        while handle in taken:
            handle, n = f"{base}_{n}", n + 1
        taken.add(handle)
        handles[key] = handle
    return handles


def text(value: str) -> str:
    """A YAML scalar for ``value``: bare when it is a plain word, else double-quoted."""
    if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.-]*", value) and value.lower() not in _YAML_WORDS:
        return value
    return json.dumps(value, ensure_ascii=False)


@dataclass(frozen=True)
class DraftPerson:
    """Someone seen in Jira, as the draft names them; the level is for a manager to fill in."""

    handle: str
    jira: str
    name: str
    level: str = PLACEHOLDER
    reports_to: str | None = None
    note: str = ""  # a trailing comment: where this person was seen, their title, …


def people_lines(people: Iterable[DraftPerson], indent: str = "  ") -> list[str]:
    """One flow mapping per person, aligned, each with its note as a comment."""
    rows = []
    for p in people:
        parts = [f"jira: {json.dumps(p.jira, ensure_ascii=False)}",
                 f"name: {json.dumps(p.name, ensure_ascii=False)}", f"level: {text(p.level)}"]
        if p.reports_to:
            parts.append(f"reports_to: {p.reports_to}")
        rows.append((f"{indent}{p.handle}: {{{', '.join(parts)}}}", p.note))
    width = max((len(r[0]) for r in rows), default=0)
    return [f"{line:<{width}}   # {note}" if note else line for line, note in rows]


def people_section(people: Sequence[DraftPerson], header: Sequence[str] = ()) -> str:
    """A ``people:`` section to paste into a rules file."""
    lines = [f"# {h}" if h else "#" for h in header]
    lines.append("people:" if people else "people: {}")
    lines.extend(people_lines(people))
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class SeenUser:
    jira: str
    name: str
    email: str = ""
    roles: Mapping[str, int] = field(default_factory=dict)  # assignee/reporter/approver/commenter


@dataclass(frozen=True)
class Survey:
    """What ``rules init`` learned from Jira about the tickets a JQL matches."""

    jql: str
    deployment: str  # "cloud" or "server"
    tickets: int
    users: Sequence[SeenUser]
    approval_statuses: Sequence[tuple[str, str]]  # (id, name)
    other_statuses: Sequence[str]
    approver_fields: Sequence[tuple[str, str]]  # (id, name)
    projects: Mapping[str, int]  # key -> tickets
    components: Mapping[str, int]  # name -> tickets


def _team_lines(survey: Survey) -> list[str]:
    taken: set[str] = set()

    def name_for(word: str) -> str:
        base = _safe_key(slug(word) or "team")
        name, n = base, 2
        while name in taken:
            name, n = f"{base}_{n}", n + 1
        taken.add(name)
        return name

    rows = []  # components first: the first team that matches a ticket owns it
    for component, count in sorted(survey.components.items(), key=lambda c: (-c[1], c[0])):
        rows.append((f"  {name_for(component)}: {{components: [{text(component)}]}}",
                     f"component on {count} ticket(s)"))
    for project, count in sorted(survey.projects.items(), key=lambda p: (-p[1], p[0])):
        rows.append((f"  {name_for(project)}: {{projects: [{text(project)}]}}",
                     f"project, {count} ticket(s)"))
    width = max((len(r[0]) for r in rows), default=0)
    return [f"{line:<{width}}   # {note}" for line, note in rows]


def draft_rules(survey: Survey, *, today: str) -> str:
    """The commented draft rules file for a survey."""
    seen = sorted(survey.users, key=lambda u: (-sum(u.roles.values()), u.name.lower(), u.jira))
    handles = make_handles([(u.jira, u.name, u.email) for u in seen])
    people = [
        DraftPerson(handle=handles[u.jira], jira=u.jira, name=u.name or handles[u.jira],
                    note=", ".join(f"{role} {n}" for role, n in sorted(u.roles.items())))
        for u in seen
    ]
    kind = "Cloud accountIds" if survey.deployment == "cloud" else "Server/Data Center usernames"
    out = [
        "# leaderleader rules: a DRAFT written by `leaderleader rules init` on " + today,
        f"# from {survey.tickets} ticket(s) matching: {survey.jql}",
        "#",
        "# Before using it:",
        f"#   1. give everyone a level: replace each `level: {PLACEHOLDER}` with one of the levels",
        "#      below (`leaderleader rules check` rejects the file until every level is filled);",
        "#   2. add reports_to (who each person reports to) and a lead for each team;",
        "#   3. check waiting_for_approval, then write your decision rules;",
        "#   4. leaderleader rules check THIS-FILE",
        "version: 1",
        "",
        "# Org levels, lowest first: rename them to match your organisation.",
        f"levels: [{', '.join(DEFAULT_LEVELS)}]",
        "",
        "# Everyone seen on those tickets as assignee, reporter, approver or commenter",
        f"# (jira: {kind}). Add reports_to: <handle> to each; remove who should not be named.",
    ]
    out.append("people:" if people else "people: {}")
    out.extend(people_lines(people))
    out += ["", "# Candidate teams: the components and projects of those tickets. Keep the ones",
            "# that are teams, give each a lead: <handle> (the first team matching a ticket owns it)."]
    team_lines = _team_lines(survey)
    out.append("teams:" if team_lines else "teams: {}")
    out.extend(team_lines)
    out += ["", "# How a ticket waiting for approval is recognised."]
    out.append("waiting_for_approval:")
    if survey.approval_statuses:
        names = ", ".join(json.dumps(name, ensure_ascii=False) for _, name in survey.approval_statuses)
        out.append(f"  statuses: [{names}]   # statuses whose names look like approval")
    else:
        out.append("  # none of Jira's statuses looks like approval: name yours (names or ids)")
        out.append("  statuses: []")
    if survey.other_statuses:
        out.append("  # Jira's other statuses: " + ", ".join(survey.other_statuses[:30])
                   + (" …" if len(survey.other_statuses) > 30 else ""))
    if survey.approver_fields:
        (first_id, first_name), *others = survey.approver_fields
        out.append(f"  approver_field: {first_id}   # {first_name!r}, a user picker")
        for field_id, name in others:
            out.append(f"  # also looks like an approver field: {field_id} ({name!r})")
    else:
        out.append("  # approver_field: customfield_NNNNN   # no user picker looks like an approver field")
    out += [
        "",
        "# Decision rights, first match wins. Add your own rules above the last one, e.g.",
        "#   - name: Routine production deploy",
        "#     match: {issue_types: [Task], labels: [deploy]}",
        "#     decided_at: engineer",
        "decisions:",
        "  - name: Everything else",
        "    decided_at: information   # the level of whoever holds the information",
        "",
        "flag:",
        "  tolerance: 0      # levels the approver may sit above the decision level",
        "  remind_after: 2d  # one reminder if still waiting",
        "",
        "# A pilot starts in dry-run: comments are rendered and recorded, never sent.",
        "# Review them with `leaderleader comments`, then set this to false.",
        "dry_run: true",
    ]
    return "\n".join(out) + "\n"
