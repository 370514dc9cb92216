"""Jira's failures, sorted by what the caller should do about them.

Every failed call becomes a TransientJiraError (retry later: 429, 5xx, timeouts, no
answer at all) or a PermanentJiraError (record it with Jira's reason: 400, 403, 404…),
each with one line a person can read: Jira's own message, an HTML error page reduced to
its text, or why a URL could not be reached.
"""

from __future__ import annotations

import html
import json
import re
import ssl
from typing import Any
from urllib.parse import urlsplit

import requests
from jira.exceptions import JIRAError
from urllib3.exceptions import NameResolutionError

_TRANSIENT = {408, 409, 425, 429, 500, 502, 503, 504}


class JiraError(Exception):
    """Something went wrong talking to Jira. Messages never carry credentials."""


class TransientJiraError(JiraError):
    """Worth retrying later: 429, 5xx, timeouts, connection failures."""

    def __init__(self, message: str, *, status: int | None = None,
                 retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


class PermanentJiraError(JiraError):
    """Retrying will not help (400, 401, 403, 404, …): record it as failed, with the reason."""

    def __init__(self, message: str, *, status: int | None = None, reason: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason or message


def retry_after(response: Any) -> float | None:
    try:
        return float(response.headers.get("Retry-After"))
    except (AttributeError, TypeError, ValueError):
        return None


def _one_line(text: str) -> str:
    """An HTML error page (a proxy's, Tomcat's) or multi-line text as one short line."""
    if "<" in text and ">" in text:
        text = re.sub(r"(?is)<(script|style)\b.*?</\1>", " ", text)
        text = html.unescape(re.sub(r"<[^>]*>", " ", text))
    return " ".join(text.split())[:300]


def _reason(text: str | None) -> str:
    """Jira's own error message, short and on one line (its bodies are JSON with errorMessages)."""
    try:
        data = json.loads(text or "")
        messages = list(data.get("errorMessages") or []) + [
            f"{k}: {v}" for k, v in (data.get("errors") or {}).items()
        ]
        if messages:
            return _one_line("; ".join(str(m) for m in messages))
    except (ValueError, AttributeError):
        pass
    return _one_line(text or "")


def translate(error: Exception, doing: str) -> JiraError:
    """A failed call as what the caller should do about it: retry later, or record and stop."""
    if isinstance(error, JIRAError):
        status = error.status_code
        response = getattr(error, "response", None)
        reason = _reason(getattr(error, "text", None))
        message = f"{doing}: Jira answered {status}" + (f" ({reason})" if reason else "")
        if status is None or status in _TRANSIENT or status >= 500:
            return TransientJiraError(message, status=status,
                                      retry_after=retry_after(response))
        return PermanentJiraError(message, status=status, reason=reason or str(status))
    if isinstance(error, (requests.ConnectionError, requests.Timeout)):
        return TransientJiraError(f"{doing}: {type(error).__name__} reaching Jira")
    return TransientJiraError(f"{doing}: {type(error).__name__}")


def unreachable(error: requests.RequestException, url: str, connect_timeout: float,
                timeout: float) -> TransientJiraError:
    """Why no answer came from ``url``, in the words a person can act on."""
    host = urlsplit(url).hostname or url
    chain: list[BaseException] = []
    cause: BaseException | None = error
    while cause is not None and len(chain) < 10:
        chain.append(cause)
        reason = getattr(cause, "reason", None)
        cause = reason if isinstance(reason, BaseException) else (
            cause.__cause__ or cause.__context__)
    text = " ".join(str(c) for c in chain)
    if isinstance(error, requests.exceptions.SSLError):
        tls = next((c for c in chain if isinstance(c, ssl.SSLError)), None)
        why = f"TLS failed ({getattr(tls, 'reason', None) or type(error).__name__})"
    elif isinstance(error, requests.exceptions.ConnectTimeout):
        why = f"timed out after {connect_timeout:g} s opening a connection"
    elif isinstance(error, requests.Timeout):
        why = f"connected, but no answer within {timeout:g} s"
    elif any(isinstance(c, NameResolutionError) for c in chain) or re.search(
            r"Name or service not known|nodename nor servname|getaddrinfo failed|"
            r"Temporary failure in name resolution|No address associated", text):
        why = f"DNS cannot resolve {host}"
    elif any(isinstance(c, ConnectionRefusedError) for c in chain) or "refused" in text:
        why = "connection refused"
    elif re.search(r"RemoteDisconnected|Connection aborted|reset by peer", text):
        why = "the server closed the connection without answering"
    else:
        why = type(error).__name__
    return TransientJiraError(f"cannot reach Jira at {url} (JIRA_URL): {why}")
