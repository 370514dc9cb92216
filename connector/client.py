"""The one place that talks to Jira, through the ``jira`` library's authenticated session.

Retries, deliberately: the library's session already retries 429 and 503 (honouring
``Retry-After``) and connection errors, ``max_retries`` times. We keep that for reads,
except the first contact (serverInfo, ``connect``): a wrong or unreachable ``JIRA_URL``
would otherwise wait out 20 s, 40 s, 80 s of backoff (capped) before saying anything.
That probe is made once, without the library's retries and with a short connect timeout,
and a failure names the URL and the cause (refused, DNS, timeout, TLS).
For the comment POST we switch it off: a POST whose answer was lost may have been
processed, and only the caller (which looks for its marker first) can retry it safely.
A 429, though, says Jira took nothing: that POST is repeated here, after the
``Retry-After`` Jira asked for (or a jittered backoff), ``max_retries`` times.
Everything else that fails is raised as TransientJiraError (the job retries it with
backoff) or PermanentJiraError (recorded as failed, never retried).
"""

from __future__ import annotations

import json
import random
import re
import time
from collections.abc import Iterator, Sequence
from typing import Any, Literal

import requests
from jira import JIRA
from jira.exceptions import JIRAError

from connector.errors import (
    JiraError,
    PermanentJiraError,
    TransientJiraError,
    translate,
    unreachable,
)

Deployment = Literal["cloud", "server"]
PROPERTY_KEY = "leaderleader"
#: seconds to open a connection: a Jira that is there answers a SYN in well under a second
CONNECT_TIMEOUT = 5.0
#: keys in one ``key in (…)`` search: one page of Jira's search
KEYS_PER_SEARCH = 100


def anchor_for(marker: str) -> str:
    """The marker as a wiki anchor name (letters, digits and dashes)."""
    return re.sub(r"[^A-Za-z0-9]+", "-", marker).strip("-")


class JiraConnector:
    def __init__(self, url: str, *, user: str | None = None, api_token: str | None = None,
                 pat: str | None = None, deployment: Deployment | None = None,
                 max_retries: int = 3, max_retry_delay: float = 30.0,
                 timeout: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self._auth: dict[str, Any] = {}
        if pat:
            self._auth["token_auth"] = pat
        elif user and api_token:
            self._auth["basic_auth"] = (user, api_token)
        self._deployment = deployment
        self._max_retries = max_retries
        self._max_retry_delay = max_retry_delay
        self._timeout = timeout
        self._client: JIRA | None = None
        self._server_info: dict[str, Any] | None = None
        self._usernames: dict[str, str | None] = {}  # Data Center user key -> username
        self.calls = 0

    # -- connection ---------------------------------------------------------------
    @property
    def session(self) -> requests.Session:
        if self._client is None:
            try:
                self._client = JIRA(server=self.url, get_server_info=False,
                                    max_retries=self._max_retries,
                                    timeout=(min(CONNECT_TIMEOUT, self._timeout), self._timeout),
                                    **self._auth)
            except JIRAError as error:
                raise translate(error, "connecting") from None
            session = self._client._session
            session.max_retry_delay = self._max_retry_delay  # type: ignore[assignment]
            session.hooks["response"].append(self._count)
        return self._client._session

    def _count(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        self.calls += 1

    def connect(self) -> dict[str, Any]:
        """Ask serverInfo (once per connector), without retries: no answer is said at once.

        Raises TransientJiraError naming the URL and the cause (refused, DNS, timeout, TLS);
        an answer that is an HTTP error is translated as for any other call.
        """
        if self._server_info is not None:
            return self._server_info
        session = self.session
        saved = session.max_retries  # type: ignore[attr-defined]
        session.max_retries = 0  # type: ignore[attr-defined]
        try:
            response = session.request("GET", f"{self.url}/rest/api/2/serverInfo")
        except requests.RequestException as error:
            raise unreachable(error, self.url, min(CONNECT_TIMEOUT, self._timeout), self._timeout) from None
        except JIRAError as error:
            raise translate(error, f"reading serverInfo from {self.url}") from None
        finally:
            session.max_retries = saved  # type: ignore[attr-defined]
        try:
            info = response.json() if response.content else {}
        except ValueError:
            raise TransientJiraError(
                f"{self.url} (JIRA_URL) answered serverInfo with something that is not JSON: "
                "is it the base URL of a Jira site?") from None
        self._server_info = info if isinstance(info, dict) else {}
        return self._server_info

    def _request(self, method: str, path: str, doing: str, **kwargs: Any) -> Any:
        try:
            response = self.session.request(method, f"{self.url}{path}", **kwargs)
        except (JIRAError, requests.RequestException) as error:
            raise translate(error, doing) from None
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            raise TransientJiraError(f"{doing}: Jira answered something that is not JSON") from None

    @property
    def deployment(self) -> Deployment:
        """Cloud or Server/Data Center, from serverInfo unless configured (DC reports Server)."""
        return self._detect_deployment(strict=False)

    def _detect_deployment(self, *, strict: bool) -> Deployment:
        """``strict``: a Jira that gives no answer at all is an error, not a reason to guess."""
        if self._deployment is None:
            try:
                info = self.connect()
            except JiraError as error:
                if strict and getattr(error, "status", None) is None:
                    raise  # unreachable: guessing on would only wait out the same retries again
                info = {}
            kind = str(info.get("deploymentType") or "").lower()
            if kind in ("cloud", "server", "datacenter"):
                self._deployment = "cloud" if kind == "cloud" else "server"
            else:  # no answer: the credentials tell (Cloud takes email + API token, DC a PAT)
                self._deployment = "server" if "token_auth" in self._auth else "cloud"
        return self._deployment

    # -- comments -----------------------------------------------------------------
    def find_marked_comment(self, key: str, marker: str) -> str | None:
        """The id of an earlier comment of ours carrying ``marker``, if Jira has one.

        Found by its comment property, or by the invisible ``{anchor}`` our comments end
        with (for sites or proxies that drop comment properties).
        """
        # Only at the very end, as we write it: a reply quoting our comment is not ours.
        anchor = f"{{anchor:{anchor_for(marker)}}}"
        start = 0
        while True:
            page = self._request(
                "GET", f"/rest/api/2/issue/{key}/comment", f"reading comments of {key}",
                params={"expand": "properties", "startAt": start, "maxResults": 100},
            ) or {}
            comments = page.get("comments") or []
            for comment in comments:
                if str(comment.get("body") or "").rstrip().endswith(anchor):
                    return str(comment.get("id"))
                for prop in comment.get("properties") or []:
                    value = prop.get("value") if isinstance(prop, dict) else None
                    if prop.get("key") == PROPERTY_KEY and isinstance(value, dict) and (
                        value.get("marker") == marker
                    ):
                        return str(comment.get("id"))
            start += len(comments)
            if not comments or start >= int(page.get("total") or 0):
                return None

    def post_comment(self, key: str, body: str, marker: str) -> str:
        """Post wiki markup tagged with our marker; no automatic retry (see module doc).

        The marker goes in a comment property and, as an invisible ``{anchor}``, at the
        end of the body. A Jira that refuses the property (400) gets the body alone.
        """
        session = self.session
        saved = session.max_retries  # type: ignore[attr-defined]
        session.max_retries = 0  # type: ignore[attr-defined]
        text = f"{body}\n{{anchor:{anchor_for(marker)}}}"
        payload = {"body": text, "properties": [{"key": PROPERTY_KEY, "value": {"marker": marker}}]}
        doing = f"posting a comment on {key}"
        try:
            try:
                created = self._post_unless_limited(key, payload, doing)
            except PermanentJiraError as error:
                if error.status != 400:
                    raise
                created = self._post_unless_limited(key, {"body": text}, doing)
        finally:
            session.max_retries = saved  # type: ignore[attr-defined]
        if "id" not in created:
            raise TransientJiraError(f"posting a comment on {key}: Jira's answer had no id")
        return str(created["id"])

    def _post_unless_limited(self, key: str, payload: dict[str, Any], doing: str) -> Any:
        """POST a comment, waiting out rate limits (429: nothing was stored) in between."""
        for attempt in range(self._max_retries + 1):
            try:
                return self._request("POST", f"/rest/api/2/issue/{key}/comment", doing,
                                     data=json.dumps(payload)) or {}
            except TransientJiraError as error:
                if error.status != 429 or attempt == self._max_retries:
                    raise
                backoff = error.retry_after
                if backoff is None:
                    backoff = 2 ** attempt * random.uniform(0.5, 1.5)
                time.sleep(min(backoff, self._max_retry_delay))
        raise AssertionError("unreachable")  # pragma: no cover

    # -- users, statuses, fields -------------------------------------------------------
    def find_user(self, jira_id: str) -> dict[str, Any] | None:
        """The Jira user with this id, None if Jira has none.

        Cloud: by accountId. Server/Data Center: by username, else by user key.
        """
        tries = ([{"accountId": jira_id}] if self.deployment == "cloud"
                 else [{"username": jira_id}, {"key": jira_id}])
        for params in tries:
            try:
                user = self._request("GET", "/rest/api/2/user", f"looking up user {jira_id}",
                                     params=params)
            except PermanentJiraError as error:
                if error.status in (400, 404):
                    continue
                raise
            if isinstance(user, dict):
                return user
        return None

    def username_for_key(self, key: str) -> str | None:
        """A Data Center user key (``JIRAUSER10100``) as its username; asked once per key."""
        if key not in self._usernames:
            try:
                user = self._request("GET", "/rest/api/2/user", f"looking up user key {key}",
                                     params={"key": key})
            except PermanentJiraError as error:
                if error.status not in (400, 404):
                    raise
                user = None
            name = user.get("name") if isinstance(user, dict) else None
            self._usernames[key] = name if isinstance(name, str) and name else None
        return self._usernames[key]

    # -- issues and history ---------------------------------------------------------
    def _complete_changelog(self, issue: dict[str, Any]) -> dict[str, Any]:
        """``expand=changelog`` returns only the latest entries: page the rest when cut."""
        changelog = issue.get("changelog") or {}
        histories = list(changelog.get("histories") or [])
        total = int(changelog.get("total") or len(histories))
        if total <= len(histories):
            return issue
        key = issue.get("key")
        collected: list[dict[str, Any]] = []
        start = 0
        while start < total:
            try:
                page = self._request(
                    "GET", f"/rest/api/2/issue/{key}/changelog", f"reading the history of {key}",
                    params={"startAt": start, "maxResults": 100},
                ) or {}
            except PermanentJiraError as error:
                if error.status != 404:
                    raise
                return issue  # no changelog resource (older Data Center): keep what came

            values = page.get("values") or page.get("histories") or []
            if not values:
                break
            collected.extend(values)
            start += len(values)
            if page.get("isLast") is True:
                break
        seen = {h.get("id") for h in collected}
        merged = collected + [h for h in histories if h.get("id") not in seen]
        merged.sort(key=lambda h: str(h.get("created") or ""))
        issue = dict(issue)
        issue["changelog"] = {**changelog, "histories": merged, "total": len(merged),
                              "maxResults": len(merged), "startAt": 0}
        return issue

    def fetch_issue(self, key: str) -> dict[str, Any]:
        """The raw issue with its complete changelog."""
        issue = self._request("GET", f"/rest/api/2/issue/{key}", f"reading {key}",
                              params={"expand": "changelog"})
        if not isinstance(issue, dict):
            raise PermanentJiraError(f"reading {key}: Jira returned no issue", status=None)
        return self._complete_changelog(issue)

    def search_issues(self, jql: str, *, page_size: int = 100, fields: str = "*all",
                      changelog: bool = True, complete: bool = True,
                      lenient: bool = False) -> Iterator[dict[str, Any]]:
        """Issues matching ``jql`` with their changelogs, page by page.

        Cloud: ``search/jql`` with ``nextPageToken`` (the old search answers 410 there).
        Server/Data Center: ``search`` with ``startAt``/``total``. ``complete=False``
        keeps the latest changelog entries Jira embeds instead of paging the rest;
        ``changelog=False`` asks for the fields alone;
        ``lenient`` asks Data Center to warn about unknown values (keys) instead of failing.
        """
        params: dict[str, Any] = {"jql": jql, "maxResults": page_size, "fields": fields}
        if changelog:
            params["expand"] = "changelog"
        finish = self._complete_changelog if changelog and complete else (lambda issue: issue)
        if self._detect_deployment(strict=True) == "cloud":
            token: str | None = None
            while True:
                page = self._request("GET", "/rest/api/2/search/jql", "searching",
                                     params={**params, **({"nextPageToken": token} if token else {})}) or {}
                for issue in page.get("issues") or []:
                    yield finish(issue)
                token = page.get("nextPageToken")
                if not token or page.get("isLast") is True or not page.get("issues"):
                    return
        if lenient:
            params["validateQuery"] = "warn"
        start = 0
        while True:
            page = self._request("GET", "/rest/api/2/search", "searching",
                                 params={**params, "startAt": start}) or {}
            issues = page.get("issues") or []
            for issue in issues:
                yield finish(issue)
            start += len(issues)
            if not issues or start >= int(page.get("total") or 0):
                return

    # -- users, fields and statuses (drafting a rules file) ---------------------------
    def find_users(self, text: str, *, limit: int = 20) -> list[dict[str, Any]]:
        """Users matching an email address or a name.

        Cloud: ``user/search?query=`` (matches display name and email address, where the
        user lets it be seen). Server/Data Center: ``user/search?username=`` (matches
        username, name and email address).
        """
        name = "query" if self._detect_deployment(strict=True) == "cloud" else "username"
        found = self._request("GET", "/rest/api/2/user/search", f"searching users for {text!r}",
                              params={name: text, "maxResults": limit})
        return [u for u in found if isinstance(u, dict)] if isinstance(found, list) else []

    def fields(self) -> list[dict[str, Any]]:
        """Every field Jira knows, system and custom, with its schema (``GET /field``)."""
        found = self._request("GET", "/rest/api/2/field", "listing fields")
        return [f for f in found if isinstance(f, dict)] if isinstance(found, list) else []

    def statuses(self) -> list[dict[str, Any]]:
        """Every workflow status (``GET /status``)."""
        found = self._request("GET", "/rest/api/2/status", "listing statuses")
        return [s for s in found if isinstance(s, dict)] if isinstance(found, list) else []

    # -- looking before acting --------------------------------------------------------
    def issue_state(self, key: str, fields: Sequence[str]) -> dict[str, Any]:
        """The issue with only ``fields`` (one GET, no changelog): where is it now?"""
        issue = self._request("GET", f"/rest/api/2/issue/{key}", f"reading {key}",
                              params={"fields": ",".join(fields)})
        if not isinstance(issue, dict):
            raise PermanentJiraError(f"reading {key}: Jira returned no issue", status=None)
        return issue

    def issues_by_keys(self, keys: Sequence[str], fields: Sequence[str], *,
                       complete: bool = False) -> list[dict[str, Any]]:
        """Up to ``KEYS_PER_SEARCH`` issues in one search call (``key in (…)``), with the
        latest changelog entries Jira embeds (``complete``: the whole changelog, paged
        per issue only where Jira cut it).

        Keys Jira does not know (deleted, moved, not visible to us) are left out. Data
        Center is asked to only warn about them; a Jira that refuses the whole query for
        one such key (400) gets the batch halved until the unknown keys are isolated.
        """
        if len(keys) > KEYS_PER_SEARCH:
            raise ValueError(f"at most {KEYS_PER_SEARCH} keys per search")
        if not keys:
            return []
        jql = "key in (" + ", ".join(f'"{k}"' for k in keys) + ")"
        try:
            return list(self.search_issues(jql, page_size=KEYS_PER_SEARCH, fields=",".join(fields),
                                           complete=complete, lenient=True))
        except PermanentJiraError as error:
            if error.status != 400:
                raise
            if len(keys) == 1:
                return []
        half = len(keys) // 2
        return (self.issues_by_keys(keys[:half], fields, complete=complete)
                + self.issues_by_keys(keys[half:], fields, complete=complete))
