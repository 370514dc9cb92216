"""The little JQL the fake Jira understands: ``key in``, ``status in``, ``project =``/``in``.

Enough for the searches leaderleader sends (backfill, reconciliation, ``rules init``).
"""

from __future__ import annotations

import re
from typing import Any


def jql_list(jql: str, field: str) -> list[str] | None:
    match = re.search(rf"\b{field}\s+in\s*\(([^)]*)\)", jql, re.IGNORECASE)
    if match is None:
        return None
    return [v.strip().strip('"').strip("'") for v in match.group(1).split(",") if v.strip()]

def matching_keys(issues: dict[str, dict[str, Any]], jql: str) -> tuple[list[str], list[str]]:
    """The keys the JQL selects, in key order, and the asked-for keys Jira does not have.

    Linear in the issues (a ``key in`` clause: in the keys named), so a search over
    many issues measures the client, not this fake.
    """
    unknown: list[str] = []
    wanted = jql_list(jql, "key")
    if wanted is not None:
        unknown = [k for k in wanted if k not in issues]
        keys = [k for k in dict.fromkeys(wanted) if k in issues]
    else:
        keys = list(issues)
    keys.sort(key=lambda k: (k.rsplit("-", 1)[0], int(k.rsplit("-", 1)[1])))
    project = re.search(r"project\s*=\s*\"?(\w+)", jql, re.IGNORECASE)
    if project:
        keys = [k for k in keys if k.startswith(project.group(1).upper() + "-")]
    statuses = jql_list(jql, "status")
    if statuses is not None:
        lowered = {v.lower() for v in statuses}

        def in_status(key: str) -> bool:
            status = issues[key]["fields"].get("status") or {}
            return (str(status.get("name") or "").lower() in lowered
                    or str(status.get("id") or "").lower() in lowered)

        keys = [k for k in keys if in_status(k)]
    projects = jql_list(jql, "project")
    if projects is not None:
        upper = {p.upper() for p in projects}
        keys = [k for k in keys if k.rsplit("-", 1)[0] in upper]
    return keys, unknown
