"""Event -> comment latency with one worker: from the webhook POST to the comment on Jira.

A real worker process (``leaderleader worker``) on a real Redis, the fake Jira on
loopback, flagged deliveries sent at a steady pace. The baseline is the fake Jira's own
comment round trip through the same connector, measured beside it.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import replace
from pathlib import Path

from bench.common import ROOT, embedded_redis_url, services, write_result
from connector.client import JiraConnector
from service.runtime import Runtime
from service.settings import Settings
from tests.fakejira import FakeJira
from webhooks.app import create_app
from webhooks.auth import sign

TEMPLATE = ROOT / "tests" / "fixtures" / "jira" / "issue_updated__cloud_deploy_handed_to_director.json"
SECRET = "bench-secret-value"


def _percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p * (len(ordered) - 1))))]


def run(events: int = 100, per_second: float = 10.0) -> dict:
    home = Path(tempfile.mkdtemp(prefix="ll-bench-"))
    redis_url, connection = embedded_redis_url(home)
    database_url = os.environ.get("DATABASE_URL") or f"sqlite:///{home / 'latency.db'}"
    queue = f"bench-{uuid.uuid4().hex[:6]}"
    base = json.loads(TEMPLATE.read_text())
    with FakeJira(deployment="Cloud") as fake:
        settings = replace(Settings.from_env(), home=home, redis_url=redis_url,
                           database_url=database_url, queue_name=queue, jira_url=fake.url,
                           jira_user="bot@acme.example", jira_api_token="bench-token",
                           webhook_secret=SECRET)
        app = create_app(runtime=Runtime.build(settings, connection=connection))
        env = {**os.environ, "REDIS_URL": redis_url, "DATABASE_URL": database_url,
               "JIRA_URL": fake.url, "JIRA_USER": "bot@acme.example", "JIRA_API_TOKEN": "bench-token",
               "LEADERLEADER_QUEUE": queue, "LEADERLEADER_HOME": str(home), "PYTHONPATH": str(ROOT)}
        worker = subprocess.Popen([sys.executable, "-m", "leaderleader", "worker"], cwd=ROOT, env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        sent: dict[str, float] = {}
        try:
            client = app.test_client()
            for n in range(events):
                payload = json.loads(json.dumps(base))
                key = f"LAT-{n + 1}"
                payload["issue"]["key"], payload["issue"]["id"] = key, str(90000 + n)
                fake.add_issue(key, payload["issue"]["fields"], issue_id=str(90000 + n))
                body = json.dumps(payload).encode()
                sent[key] = time.time()
                client.post("/webhooks/jira", data=body, content_type="application/json",
                            headers={"X-Hub-Signature": sign(SECRET, body),
                                     "X-Atlassian-Webhook-Identifier": f"lat-{queue}-{n}"})
                time.sleep(max(0.0, 1.0 / per_second - (time.time() - sent[key])))
            deadline = time.time() + 60
            while time.time() < deadline and sum(bool(fake.comments(k)) for k in sent) < events:
                time.sleep(0.1)
        finally:
            worker.terminate()
            worker.wait(timeout=20)
        latencies = [fake.posted_at[fake.comments(k)[0]["id"]] - t
                     for k, t in sent.items() if fake.comments(k)]
        direct = JiraConnector(fake.url, user="bot@acme.example", api_token="bench-token")
        round_trips = []
        for n in range(20):
            started = time.perf_counter()
            direct.post_comment("LAT-1", "baseline", f"baseline-{n}")
            round_trips.append(time.perf_counter() - started)
    connection.flushdb()
    return write_result("latency", {
        "events": events,
        "commented": len(latencies),
        "pace_per_s": per_second,
        "p50_s": round(statistics.median(latencies), 3),
        "p95_s": round(_percentile(latencies, 0.95), 3),
        "target_p95_s": 2.0,
        "jira_round_trip_p50_s": round(statistics.median(round_trips), 4),
        **services(),
    })
