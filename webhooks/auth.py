"""Webhook authentication: an HMAC signature over the raw body, or a shared token."""

from __future__ import annotations

import hashlib
import hmac

#: The digest methods Jira may name in ``X-Hub-Signature: <method>=<hex>``.
#: Atlassian signs with sha256 today and warns the method may change: parse the prefix.
_METHODS = {"sha256": hashlib.sha256}


def signature_problem(secret: str, body: bytes, header: str | None) -> str | None:
    """Why the signature is not acceptable, or None when it is (compared in constant time)."""
    if not header:
        return "missing X-Hub-Signature"
    method, sep, given = header.strip().partition("=")
    if not sep or not given:
        return "malformed X-Hub-Signature"
    digest = _METHODS.get(method.strip().lower())
    if digest is None:
        return f"unsupported signature method {method[:16]!r}"
    given = given.strip().lower()  # hex digits: upper case is the same digest
    if not given.isascii():  # compare_digest refuses non-ASCII text (a TypeError)
        return "malformed X-Hub-Signature"
    expected = hmac.new(secret.encode(), body, digest).hexdigest()
    if not hmac.compare_digest(expected.encode(), given.encode()):
        return "signature does not match"
    return None


def token_problem(token: str, given: str | None) -> str | None:
    """Why the shared token is not acceptable, or None when it is."""
    if not given:
        return "missing token"
    if not hmac.compare_digest(token.encode(), given.encode()):
        return "token does not match"
    return None


def sign(secret: str, body: bytes) -> str:
    """The header value Jira would send for this body (used by the demo and the tests)."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
