"""The baseline for the intake benchmark: a bare Flask endpoint that only parses the JSON."""

from flask import Flask, request

app = Flask(__name__)


@app.post("/webhooks/jira")
def receive():  # type: ignore[no-untyped-def]
    request.get_json(force=True)
    return {"status": "ok"}, 202
