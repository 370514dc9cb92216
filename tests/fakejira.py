"""A fake Jira *server*: a small Flask app speaking enough of Jira's REST API.

The real ``jira`` client talks to it over real HTTP. It keeps issues, changelogs and
comments (with properties), checks authentication the way Cloud (basic: email + API
token) or Server/Data Center (bearer PAT) do, pages like Jira pages, and can be told
to fail: ``fail_next`` answers 429/5xx/4xx, optionally *after* doing the work (a lost
answer). ``requests`` logs every call so tests can count them.
"""

from __future__ import annotations

import base64
import itertools
import re
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from flask import Flask, Response, jsonify, request
from werkzeug.serving import make_server

from tests.fakejira_directory import (
    DEFAULT_FIELDS,
    DEFAULT_STATUSES,
    JiraDirectory,
)
from tests.fakejira_directory import jira_error as _error
from tests.fakejira_jql import jql_list, matching_keys

SEARCH_PAGE_LIMIT = 100
CHANGELOG_IN_ISSUE = 20  # expand=changelog returns only the latest entries


@dataclass
class Fault:
    method: str
    path: re.Pattern[str]
    status: int
    times: int
    headers: dict[str, str] = field(default_factory=dict)
    after_processing: bool = False
    delay: float = 0.0
    body: str | None = None  # a non-JSON body (a proxy's or Tomcat's HTML page)


@dataclass
class Hold:
    """Holds matching requests at the door until ``release()`` (one per ``hold_next`` call).

    ``arrived`` is set when a held request is waiting, so a test can act while Jira
    "thinks"; the request then goes on as normal (a held POST stores its comment after).
    """

    method: str
    path: re.Pattern[str]
    times: int = 1
    arrived: threading.Event = field(default_factory=threading.Event)
    released: threading.Event = field(default_factory=threading.Event)

    def release(self) -> None:
        self.released.set()


class FakeJira(JiraDirectory):
    def __init__(self, deployment: Literal["Cloud", "Server"] = "Cloud", *,
                 user: str = "bot@acme.example", token: str | None = None) -> None:
        self.deployment = deployment
        self.user = user
        self.token = token  # None: any credentials of the right kind are accepted
        #: stand-ins for other Jiras and proxies: drop comment properties silently, refuse
        #: them with a 400, or leave deploymentType out of serverInfo
        self.drop_properties = False
        self.reject_properties = False
        self.report_deployment = True
        #: the site's status names and ids, lower-cased (None: any status exists)
        self.known_statuses: set[str] | None = None
        self.issues: dict[str, dict[str, Any]] = {}
        self._comments: dict[str, list[dict[str, Any]]] = {}
        self._ids = itertools.count(10001)
        self._faults: list[Fault] = []
        self._holds: list[Hold] = []
        self._lock = threading.Lock()
        self.requests: list[tuple[str, str]] = []
        self.jqls: list[str] = []  # the JQL of every search, as sent
        self._searches: dict[str, list[str]] = {}  # a Cloud search's keys, for its later pages
        self.posted_at: dict[str, float] = {}  # comment id -> when it was stored (epoch s)
        self.url = ""
        self._server: Any = None
        self._thread: threading.Thread | None = None
        #: the directory: users (see add_user), fields and workflow statuses, as Jira lists them
        self.users: list[dict[str, Any]] = []
        self.fields: list[dict[str, Any]] = [dict(f) for f in DEFAULT_FIELDS]
        self.statuses: list[dict[str, Any]] = [
            {"id": i, "name": n, "statusCategory": {"key": k}} for i, n, k in DEFAULT_STATUSES]
        self.app = self._build()

    # -- test controls --------------------------------------------------------------
    def add_issue(self, key: str, fields: dict[str, Any], histories: list[dict[str, Any]] | None = None,
                  issue_id: str | None = None) -> None:
        self.issues[key] = {"id": issue_id or str(next(self._ids)), "key": key,
                            "fields": dict(fields), "histories": list(histories or [])}
        self._comments.setdefault(key, [])

    def comments(self, key: str) -> list[dict[str, Any]]:
        return list(self._comments.get(key, []))

    def fail_next(self, method: str, path_regex: str, status: int, times: int = 1,
                  headers: dict[str, str] | None = None, after_processing: bool = False,
                  delay: float = 0.0, body: str | None = None) -> None:
        """Answer the next matching calls with ``status`` (0: the normal answer) after ``delay``."""
        self._faults.append(Fault(method.upper(), re.compile(path_regex), status, times,
                                  dict(headers or {}), after_processing, delay, body))

    def reset_log(self) -> None:
        self.requests.clear()

    def count(self, method: str, path_regex: str) -> int:
        pattern = re.compile(path_regex)
        return sum(1 for m, p in self.requests if m == method and pattern.search(p))

    def start(self) -> str:
        self._server = make_server("127.0.0.1", 0, self.app, threaded=True)
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self.url

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def __enter__(self) -> FakeJira:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- users, statuses and fields (``rules check --against-jira``, DC user keys) ----------
    # -- test controls: holding requests, seeding comments --------------------------------
    def hold_next(self, method: str, path_regex: str, times: int = 1) -> Hold:
        """Hold the next ``times`` matching requests (after authentication) until released."""
        hold = Hold(method.upper(), re.compile(path_regex), times)
        with self._lock:
            self._holds.append(hold)
        return hold

    def _hold(self) -> Hold | None:
        with self._lock:
            for hold in self._holds:
                if hold.times > 0 and hold.method == request.method and hold.path.search(request.path):
                    hold.times -= 1
                    return hold
        return None

    def seed_comment(self, key: str, body: str, *, author: str = "someone.else",
                     properties: list[dict[str, Any]] | None = None) -> str:
        """A comment already on the ticket (someone's, or ours from an earlier run); its id."""
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000+0000")
        comment = {"id": str(next(self._ids)), "body": body, "author": self._user(author),
                   "created": now, "updated": now, "properties": list(properties or [])}
        with self._lock:
            self._comments.setdefault(key, []).append(comment)
        return str(comment["id"])

    def clear_comments(self, key: str) -> None:
        with self._lock:
            self._comments[key] = []

    def calls(self) -> list[tuple[str, str]]:
        """Every request since the last ``reset_log``, as (method, path)."""
        return list(self.requests)

    # -- the HTTP API -----------------------------------------------------------------
    def _fault(self) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.times > 0 and fault.method == request.method and fault.path.search(request.path):
                    fault.times -= 1
                    return fault
        return None

    def _authorised(self) -> bool:
        header = request.headers.get("Authorization", "")
        if self.deployment == "Cloud":
            if not header.startswith("Basic "):
                return False
            user, _, token = base64.b64decode(header[6:]).decode().partition(":")
            return user == self.user and (self.token is None or token == self.token)
        return header.startswith("Bearer ") and (self.token is None or header[7:] == self.token)

    def _user(self, account: str) -> dict[str, Any]:
        if self.deployment == "Cloud":
            return {"accountId": account, "displayName": account, "accountType": "app"}
        return {"name": account, "key": account, "displayName": account}

    def _issue_json(self, key: str, expand: str) -> dict[str, Any]:
        issue = self.issues[key]
        data = {"id": issue["id"], "key": key, "self": f"{self.url}/rest/api/2/issue/{issue['id']}",
                "fields": issue["fields"]}
        if "changelog" in expand:
            histories = issue["histories"]
            # Cloud cuts the embedded changelog to the latest entries; Data Center does not.
            latest = histories[-CHANGELOG_IN_ISSUE:] if self.deployment == "Cloud" else histories
            data["changelog"] = {"startAt": 0, "maxResults": len(latest), "total": len(histories),
                                 "histories": latest}
        return data

    def _search(self, cloud: bool) -> Response:
        args = request.args if request.method == "GET" else (request.get_json(silent=True) or {})
        jql = str(args.get("jql") or "")
        self.jqls.append(jql)
        limit = min(int(args.get("maxResults") or 50), SEARCH_PAGE_LIMIT)
        token = str(args.get("nextPageToken") or "") if cloud else ""
        if token:  # a later page of a Cloud search: the keys its first page found
            snapshot, _, start_at = token.partition(":")
            if snapshot not in self._searches:
                return _error(400, "The nextPageToken is invalid or has expired.")
            keys, start = self._searches[snapshot], int(start_at or 0)
        else:
            keys, unknown = matching_keys(self.issues, jql)
            wrong = [v for v in jql_list(jql, "status") or []
                     if self.known_statuses is not None and v.lower() not in self.known_statuses]
            if wrong:
                return _error(400, f"The value '{wrong[0]}' does not exist for the field 'status'.")
            if unknown and str(args.get("validateQuery") or "").lower() != "warn":
                return _error(400, f"An issue with key '{unknown[0]}' does not exist for field 'key'.")
            start = 0 if cloud else int(args.get("startAt") or 0)
            snapshot = str(next(self._ids))
            if cloud:
                self._searches[snapshot] = keys
        expand = str(args.get("expand") or "")
        page = [self._issue_json(k, expand) for k in keys[start:start + limit] if k in self.issues]
        body: dict[str, Any] = {"issues": page}
        if cloud:
            if start + limit < len(keys):
                body["nextPageToken"] = f"{snapshot}:{start + limit}"
            body["isLast"] = start + limit >= len(keys)
        else:
            body.update(startAt=start, maxResults=limit, total=len(keys))
        return jsonify(body)

    # -- JQL: ``project =``, ``key in (…)``, ``status in (…)``, ``project in (…)`` -----------
    def _build(self) -> Flask:
        app = Flask("fakejira")
        fake = self

        @app.before_request
        def _gate() -> Response | None:
            fake.requests.append((request.method, request.path))
            fault = fake._fault()
            if fault is not None and fault.delay and not fault.after_processing:
                time.sleep(fault.delay)
            if fault is not None and fault.status and not fault.after_processing:
                return _error(fault.status, f"injected {fault.status}", fault.headers, fault.body)
            request.environ["fakejira.fault"] = fault
            if request.path.endswith("/serverInfo"):
                return None
            if not fake._authorised():
                return _error(401, "You are not authenticated. Authentication required to perform this operation.")
            return None

        @app.before_request
        def _held() -> None:
            hold = fake._hold()
            if hold is not None:
                hold.arrived.set()
                hold.released.wait(timeout=120)

        @app.after_request
        def _lost_answer(response: Response) -> Response:
            fault = request.environ.get("fakejira.fault")
            if fault is not None and fault.after_processing and fault.delay:
                time.sleep(fault.delay)
            if fault is not None and fault.status:
                return _error(fault.status, f"injected {fault.status} after processing", fault.headers)
            return response

        @app.get("/rest/api/2/serverInfo")
        def server_info() -> Any:
            info = dict(baseUrl=fake.url, version="1001.0.0" if fake.deployment == "Cloud" else "9.12.0",
                        versionNumbers=[1001, 0, 0] if fake.deployment == "Cloud" else [9, 12, 0],
                        deploymentType=fake.deployment, buildNumber=100200, serverTitle="Fake Jira")
            if not fake.report_deployment:
                info.pop("deploymentType")
            return jsonify(info)

        fake._add_metadata_routes(app)

        @app.get("/rest/api/2/myself")
        def myself() -> Any:
            return jsonify(fake._user(fake.user))

        @app.get("/rest/api/<int:version>/issue/<key>")
        def get_issue(version: int, key: str) -> Any:
            if key not in fake.issues:
                return _error(404, "Issue does not exist or you do not have permission to see it.")
            return jsonify(fake._issue_json(key, request.args.get("expand", "")))

        @app.get("/rest/api/<int:version>/issue/<key>/changelog")
        def changelog(version: int, key: str) -> Any:
            if key not in fake.issues:
                return _error(404, "Issue does not exist or you do not have permission to see it.")
            if fake.deployment != "Cloud":
                return _error(404, "null for uri")  # Data Center has no changelog resource
            histories = fake.issues[key]["histories"]
            start = int(request.args.get("startAt", 0))
            limit = min(int(request.args.get("maxResults", 100)), 100)
            values = histories[start:start + limit]
            return jsonify(startAt=start, maxResults=limit, total=len(histories),
                           isLast=start + limit >= len(histories), values=values)

        @app.get("/rest/api/<int:version>/issue/<key>/comment")
        def list_comments(version: int, key: str) -> Any:
            if key not in fake.issues:
                return _error(404, "Issue does not exist or you do not have permission to see it.")
            every = fake._comments[key]
            start = int(request.args.get("startAt", 0))
            limit = min(int(request.args.get("maxResults", 50)), 100)
            expand = "properties" in request.args.get("expand", "")
            page = [{k: v for k, v in c.items() if expand or k != "properties"}
                    for c in every[start:start + limit]]
            return jsonify(startAt=start, maxResults=limit, total=len(every), comments=page)

        @app.post("/rest/api/<int:version>/issue/<key>/comment")
        def add_comment(version: int, key: str) -> Any:
            if key not in fake.issues:
                return _error(404, "Issue does not exist or you do not have permission to see it.")
            data = request.get_json(silent=True)
            if not isinstance(data, dict) or not isinstance(data.get("body"), str):
                return _error(400, "Comment body can not be empty!")
            if fake.reject_properties and "properties" in data:
                return _error(400, "Unrecognized field \"properties\"")
            if fake.drop_properties:
                data.pop("properties", None)
            now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000+0000")
            comment = {"id": str(next(fake._ids)), "body": data["body"], "author": fake._user(fake.user),
                       "created": now, "updated": now, "properties": list(data.get("properties") or [])}
            fake.posted_at[comment["id"]] = time.time()
            with fake._lock:
                fake._comments[key].append(comment)
            return jsonify({k: v for k, v in comment.items() if k != "properties"}), 201

        @app.put("/rest/api/2/comment/<comment_id>/properties/<prop>")
        def put_property(comment_id: str, prop: str) -> Any:
            for comments in fake._comments.values():
                for comment in comments:
                    if comment["id"] == comment_id:
                        comment["properties"] = [p for p in comment["properties"] if p["key"] != prop]
                        comment["properties"].append({"key": prop, "value": request.get_json()})
                        return "", 200
            return _error(404, "Comment not found")

        @app.route("/rest/api/<int:version>/search", methods=["GET", "POST"])
        def old_search(version: int) -> Any:
            if fake.deployment == "Cloud":
                return _error(410, "The requested API has been removed. Please migrate to the /rest/api/3/search/jql API.")
            return fake._search(cloud=False)

        @app.route("/rest/api/<int:version>/search/jql", methods=["GET", "POST"])
        def search_jql(version: int) -> Any:
            if fake.deployment != "Cloud":
                return _error(404, "null for uri")
            return fake._search(cloud=True)

        fake._directory_routes(app)
        return app

    # -- the directory: users, fields, statuses ------------------------------------------
