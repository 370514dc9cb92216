"""The intake benchmark's floors: the least an endpoint can do, measured beside ours.

* ``durable``: check the signature, put the body in a Redis list, answer 202. No
  endpoint that keeps deliveries can do less, so its ratio to the bare endpoint is the
  most any durable intake could reach on the machine.
* ``contract``: what the intake contract asks on top (SPEC §4), done as plainly as it can
  be: the payload validated by the same parser (a 4xx for a malformed delivery) and the
  delivery de-duplicated and queued by the same Redis script, through a connection of its
  own; no log line, no metrics, no error answers beyond the signature's.

Whatever our endpoint costs beyond ``contract`` is its own overhead (Flask blueprints,
the runtime, logging, the error paths it keeps ready).
"""

import hashlib
import hmac
import os
import threading

import redis
from flask import Flask, request

from connector.events import parse_event
from connector.payload import decode_body
from jobs.inbox import _ACCEPT, _ACCEPT_SHA, SEEN_TTL_SECONDS

_redis = redis.Redis.from_url(os.environ["REDIS_URL"])
_SECRET = os.environ["JIRA_WEBHOOK_SECRET"].encode()


def _signed(body: bytes) -> bool:
    expected = "sha256=" + hmac.new(_SECRET, body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(request.headers.get("X-Hub-Signature", ""), expected)


durable = Flask("durable")


@durable.post("/webhooks/jira")
def receive_durably():  # type: ignore[no-untyped-def]
    body = request.get_data()
    if not _signed(body):
        return {"error": "webhook authentication failed"}, 401
    _redis.rpush("bench:floor:inbox", body)
    return {"status": "queued"}, 202


contract = Flask("contract")
_redis.script_load(_ACCEPT)
_connections = threading.local()  # each thread its own (gthread workers)


@contract.post("/webhooks/jira")
def receive_by_contract():  # type: ignore[no-untyped-def]
    body = request.get_data()
    if not _signed(body):
        return {"error": "webhook authentication failed"}, 401
    parse_event(decode_body(body))
    delivery = request.headers.get("X-Atlassian-Webhook-Identifier", "")
    connection = getattr(_connections, "one", None)
    if connection is None:
        connection = _connections.one = _redis.connection_pool.make_connection()
    connection.send_command("EVALSHA", _ACCEPT_SHA, 3, f"bench:floor:seen:{delivery}",
                            "bench:floor:inbox", "bench:floor:counters", SEEN_TTL_SECONDS, body)
    if not connection.read_response():
        return {"status": "duplicate", "delivery": delivery}, 200
    return {"status": "queued", "delivery": delivery}, 202
