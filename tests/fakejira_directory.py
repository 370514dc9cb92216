"""The fake Jira's directory: its users, fields and workflow statuses, and their routes.

Kept apart from the issues, comments and searches of ``tests.fakejira`` (which mixes it
in): a site's directory is what ``rules init``, ``rules import-people`` and the checks
against Jira read.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, Response, jsonify, request

#: a site's fields as ``GET /rest/api/2/field`` lists them (system and custom)
DEFAULT_FIELDS: tuple[dict[str, Any], ...] = (
    {"id": "summary", "key": "summary", "name": "Summary", "custom": False,
     "schema": {"type": "string", "system": "summary"}},
    {"id": "assignee", "key": "assignee", "name": "Assignee", "custom": False,
     "schema": {"type": "user", "system": "assignee"}},
    {"id": "customfield_10050", "key": "customfield_10050", "name": "Approver", "custom": True,
     "clauseNames": ["cf[10050]", "Approver"],
     "schema": {"type": "user", "custom": "com.atlassian.jira.plugin.system.customfieldtypes:userpicker",
                "customId": 10050}},
    {"id": "customfield_10051", "key": "customfield_10051", "name": "Reviewers", "custom": True,
     "clauseNames": ["cf[10051]", "Reviewers"],
     "schema": {"type": "array", "items": "user",
                "custom": "com.atlassian.jira.plugin.system.customfieldtypes:multiuserpicker",
                "customId": 10051}},
    {"id": "customfield_10052", "key": "customfield_10052", "name": "Approval notes", "custom": True,
     "clauseNames": ["cf[10052]"],
     "schema": {"type": "string", "custom": "com.atlassian.jira.plugin.system.customfieldtypes:textarea",
                "customId": 10052}},
    {"id": "customfield_10010", "key": "customfield_10010", "name": "Approvals", "custom": True,
     "clauseNames": ["cf[10010]", "Approvals"],
     "schema": {"type": "sd-approvals",
                "custom": "com.atlassian.servicedesk.approvals-plugin:sd-approvals",
                "customId": 10010}},
    {"id": "customfield_10060", "key": "customfield_10060", "name": "Cost", "custom": True,
     "clauseNames": ["cf[10060]", "Cost"],
     "schema": {"type": "number", "custom": "com.atlassian.jira.plugin.system.customfieldtypes:float",
                "customId": 10060}},
)
DEFAULT_STATUSES = (("1", "To Do", "new"), ("3", "In Progress", "indeterminate"),
                    ("10100", "Awaiting Approval", "indeterminate"),
                    ("10101", "Code Review", "indeterminate"), ("10001", "Done", "done"))


def jira_error(status: int, message: str, headers: dict[str, str] | None = None,
           body: str | None = None) -> Response:
    if body is not None:
        response = Response(body, content_type="text/html;charset=UTF-8")
    else:
        response = jsonify(errorMessages=[message], errors={})
    response.status_code = status
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


class JiraDirectory:
    """Users, fields and statuses as Jira lists them (mixed into ``FakeJira``)."""

    deployment: str
    url: str
    users: list[dict[str, Any]]
    fields: list[dict[str, Any]]
    statuses: list[dict[str, Any]]

    def add_known_user(self, display_name: str, *, account_id: str | None = None,
                       name: str | None = None, key: str | None = None) -> dict[str, Any]:
        """A user Jira knows, without an email: Cloud by accountId, Server/DC by username and key."""
        jira_id = (account_id or name) if self.deployment == "Cloud" else name
        return self.add_user(str(jira_id), display_name, "", email_visible=False, key=key)

    def _find_user(self, args: Any) -> dict[str, Any] | None:
        lookups = (("accountId", "accountId"), ("username", "name"), ("key", "key"))
        for param, attribute in lookups:
            wanted = args.get(param)
            if wanted:
                return next((u["user"] for u in self.users
                             if u["user"].get(attribute) == wanted), None)
        return None

    def _add_metadata_routes(self, app: Flask) -> None:
        fake = self

        @app.get("/rest/api/2/user")
        def get_user() -> Any:
            if not any(request.args.get(p) for p in ("accountId", "username", "key")):
                return jira_error(400, "The username query parameter was not provided")
            if fake.deployment == "Cloud" and not request.args.get("accountId"):
                return jira_error(400, "The accountId query parameter needs to be provided")
            user = fake._find_user(request.args)
            if user is None:
                return jira_error(404, "The user named '{0}' does not exist")
            return jsonify(user)

        @app.get("/rest/api/2/status")
        def list_statuses() -> Any:
            return jsonify(fake.statuses)

        @app.get("/rest/api/2/field")
        def list_fields() -> Any:
            return jsonify(fake.fields)

    def add_user(self, jira_id: str, display_name: str, email: str, *, active: bool = True,
                 email_visible: bool = True, key: str | None = None) -> dict[str, Any]:
        """A user as this deployment shows it: Cloud by accountId, Server by username (and key)."""
        user: dict[str, Any] = {"displayName": display_name, "active": active}
        if self.deployment == "Cloud":
            user.update(accountId=jira_id, accountType="atlassian")
        else:
            user.update(name=jira_id, key=key or jira_id)
        if email_visible:
            user["emailAddress"] = email
        self.users.append({"user": user, "email": email})
        return dict(user)

    def _directory_routes(self, app: Flask) -> None:
        fake = self

        def starts(value: str, text: str) -> bool:
            """Jira matches the prefix of an attribute or of one of its words."""
            value, text = value.lower(), text.lower()
            return value.startswith(text) or any(w.startswith(text) for w in value.split())

        @app.get("/rest/api/<int:version>/user/search")
        def user_search(version: int) -> Any:
            limit = min(int(request.args.get("maxResults", 50)), 1000)
            if fake.deployment == "Cloud":
                if request.args.get("username"):
                    return jira_error(400, "The query parameter 'username' is not supported in GDPR "
                                       "strict mode.")
                text = request.args.get("query", "")
                if not text:
                    return jira_error(400, "One of 'query' or 'accountId' query parameters must be "
                                       "provided.")
                found = [u["user"] for u in fake.users
                         if starts(u["user"]["displayName"], text) or starts(u["email"], text)]
            else:
                text = request.args.get("username", "")
                if not text:
                    return jira_error(400, "The username query parameter was not provided")
                found = [u["user"] for u in fake.users
                         if starts(u["user"]["name"], text) or starts(u["user"]["displayName"], text)
                         or starts(u["email"], text)]
            for user in found:
                ident = (f"accountId={user['accountId']}" if "accountId" in user
                         else f"username={user['name']}")
                user.setdefault("self", f"{fake.url}/rest/api/{version}/user?{ident}")
            return jsonify(found[:limit])

        @app.get("/rest/api/<int:version>/field")
        def fields(version: int) -> Any:
            return jsonify(fake.fields)

        @app.get("/rest/api/<int:version>/status")
        def statuses(version: int) -> Any:
            return jsonify([{"self": f"{fake.url}/rest/api/{version}/status/{s['id']}",
                             "description": "", **s} for s in fake.statuses])
