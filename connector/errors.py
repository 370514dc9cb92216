"""Jira's failures, sorted by what the caller should do about them."""

from __future__ import annotations


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
