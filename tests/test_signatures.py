"""``X-Hub-Signature`` edge cases, through the real endpoint, on Atlassian's own test vector.

The app's secret is the one of Atlassian's test vector, so the vector's signature over
``Hello World!`` is valid here: that body then passes authentication and is refused by
the payload parser instead (400, not JSON), which tells a good signature from a bad one.

Hex digits are case-insensitive, so an upper-case digest is accepted (as is an
upper-case method name): the digest is the same number, and refusing it would only
refuse a proxy that normalised the header.
"""

from __future__ import annotations

import hmac
import json

import pytest

from tests.conftest import SECRET, post_webhook
from webhooks import auth
from webhooks.auth import sign, signature_problem

BODY = b"Hello World!"
HEX = "a4771c39fbe90f317c7824e83ddef3caae9cb3d976c214ace1f2937e133263c9"
VECTOR = "sha256=" + HEX


def _post(app, header: str | bytes | None, body: bytes = BODY):
    headers = {} if header is None else {"X-Hub-Signature": header}
    return post_webhook(app, body, secret=None, headers=headers)


def test_the_test_vector_is_our_secret():
    assert SECRET == "It's a Secret to Everybody"
    assert sign(SECRET, BODY) == VECTOR


def test_the_valid_signature_passes_and_reaches_the_parser(app):
    response = _post(app, VECTOR)
    assert response.status_code == 400
    assert response.get_json()["error"] == "the body is not valid JSON"
    body = json.dumps({"webhookEvent": "worklog_created", "timestamp": 1795169702511}).encode()
    assert _post(app, sign(SECRET, body), body).status_code == 200  # ignored, but accepted


@pytest.mark.parametrize("header", [
    pytest.param("sha256=" + HEX[:-1], id="truncated by one digit"),
    pytest.param("sha256=" + HEX[:32], id="truncated to half"),
    pytest.param("sha256=" + HEX + "0", id="extended by one digit"),
    pytest.param("sha256=" + HEX + HEX, id="doubled"),
    pytest.param("", id="empty"),
    pytest.param("sha256=", id="method only"),
    pytest.param("=" + HEX, id="digest only after ="),
    pytest.param("sha256" + HEX, id="missing ="),
    pytest.param(HEX, id="bare digest"),
    pytest.param("sha1=" + HEX, id="wrong method sha1"),
    pytest.param("sha512=" + HEX, id="wrong method sha512"),
    pytest.param("md5=" + HEX, id="wrong method md5"),
    pytest.param("sha256=sha256=" + HEX, id="prefix twice"),
    pytest.param("sha256=" + HEX[:-1] + "g", id="not hex"),
    pytest.param("sha256=" + HEX[:-1] + "\u00e9", id="non-ASCII last digit"),
    pytest.param("sha256=" + "\u00e9" * 64, id="non-ASCII digest"),
    pytest.param("sh\u00e456=" + HEX, id="non-ASCII method"),
    pytest.param(("sha256=" + HEX[:-2]).encode() + b"\xc3\xa9", id="UTF-8 bytes in the header"),
])
def test_a_wrong_signature_is_refused(app, header):
    response = _post(app, header)
    assert response.status_code == 401, response.get_data(as_text=True)
    assert response.get_json() == {"error": "webhook authentication failed", "status": 401}


def test_a_missing_signature_is_refused(app):
    assert _post(app, None).status_code == 401


@pytest.mark.parametrize("header", [
    pytest.param("sha256=" + HEX.upper(), id="upper-case digest"),
    pytest.param("SHA256=" + HEX, id="upper-case method"),
    pytest.param("Sha256=" + HEX[:32].upper() + HEX[32:], id="mixed case"),
    pytest.param(" sha256=" + HEX + " ", id="surrounding spaces"),
])
def test_the_same_digest_written_differently_is_accepted(app, header):
    response = _post(app, header)
    assert response.status_code == 400  # past authentication, refused by the parser
    assert response.get_json()["error"] == "the body is not valid JSON"


def test_the_signature_covers_the_raw_body_byte_for_byte(app):
    body = json.dumps({"webhookEvent": "worklog_created"}).encode()
    assert _post(app, sign(SECRET, body), body).status_code == 200
    assert _post(app, sign(SECRET, body), body.replace(b": ", b":")).status_code == 401
    assert _post(app, sign(SECRET + " ", body), body).status_code == 401


def test_the_digest_is_compared_in_constant_time(monkeypatch):
    """The compare goes through hmac.compare_digest, with the full expected digest."""
    seen: list[tuple[object, object]] = []
    original = hmac.compare_digest

    def spy(a, b):
        seen.append((a, b))
        return original(a, b)

    monkeypatch.setattr(auth.hmac, "compare_digest", spy)
    assert signature_problem(SECRET, BODY, VECTOR) is None
    assert signature_problem(SECRET, BODY, "sha256=" + HEX[:-1] + "0") == "signature does not match"
    assert len(seen) == 2
    assert all(HEX in (a, b) or HEX.encode() in (a, b) for a, b in seen)
