"""The parts one process needs, built from Settings: ledger, queue, rules, Jira.

The web app holds one ``Runtime`` in ``app.extensions``; a worker or the scheduler
activates one for the jobs it runs (``Runtime.activate``), and an rq job's entry point
reads it with ``current_runtime()`` and passes what it needs down as arguments.
Nothing is opened at import time.
"""

from __future__ import annotations

import logging
import os
import random
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path

import redis
from redis import Redis
from rq import Queue, Retry
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from connector.client import JiraConnector
from ledger.db import make_engine, make_sessionmaker, upgrade
from rules.loader import RulesError, load_rules
from rules.model import Rules
from service.embedded import running_embedded_url
from service.settings import ConfigError, Settings, check_production

log = logging.getLogger("leaderleader.runtime")

_active: ContextVar[Runtime] = ContextVar("leaderleader_runtime")


def current_runtime() -> Runtime:
    """The Runtime activated for the jobs this process runs (``Runtime.activate``)."""
    try:
        return _active.get()
    except LookupError:
        raise RuntimeError("no leaderleader runtime is active: run jobs inside "
                           "Runtime.activate() (the worker and the scheduler do)") from None


def jira_connector(settings: Settings) -> JiraConnector:
    """The Jira connector for these settings (it connects lazily, on its first call)."""
    if not settings.jira_url:
        raise RuntimeError("JIRA_URL is not set")
    return JiraConnector(
        settings.jira_url,
        user=settings.jira_user,
        api_token=settings.jira_api_token,
        pat=settings.jira_pat,
        deployment=settings.jira_deployment,  # type: ignore[arg-type]
    )


def redis_url(settings: Settings) -> str:
    """The queue's Redis: ``REDIS_URL``, else the embedded server a ``serve`` runs in the home.

    Only ``serve``, ``demo`` and the tests start an embedded Redis (``service.embedded``);
    any other process without ``REDIS_URL`` shares the one of a ``serve`` running on the
    same home, or refuses to start, never starting a private one that would strand the
    deliveries queued on it.
    """
    if settings.redis_url:
        return settings.redis_url
    if settings.production:
        raise ConfigError("production mode needs REDIS_URL (the embedded Redis is only for "
                          "leaderleader serve, demo and the tests)")
    shared = running_embedded_url(settings.home)
    if shared is None:
        raise ConfigError(
            f"REDIS_URL is not set and no leaderleader serve is running with "
            f"LEADERLEADER_HOME={settings.home}: set REDIS_URL, or start leaderleader serve "
            "first (only serve and demo start an embedded Redis)"
        )
    return shared


def redis_connection(settings: Settings) -> redis.Redis:
    return redis.Redis.from_url(redis_url(settings))


def require_rules(settings: Settings) -> Rules:
    """The rules of ``settings.rules_file``; a process that evaluates rules refuses to start without."""
    try:
        return load_rules(settings.rules_file)
    except RulesError as error:
        problems = [str(p) for p in error.problems]
        more = (f" (and {len(problems) - 1} more: see leaderleader rules check)"
                if len(problems) > 1 else "")
        raise ConfigError(f"RULES_FILE: {problems[0]}{more}") from None
    except OSError as error:
        raise ConfigError(f"RULES_FILE: cannot read {settings.rules_file} ({error.strerror})") from None


def preflight(settings: Settings) -> None:
    """What a web process checks before it serves: authentication, queue, rules (ConfigError)."""
    check_production(settings)
    redis_url(settings)
    require_rules(settings)


class RulesSource:
    """The rules file, re-read when it changes; a bad edit keeps the last good rules."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._stamp: tuple[float, int] | None = None
        self._rules: Rules | None = None
        self.errors: list[str] = []

    def _current_stamp(self) -> tuple[float, int] | None:
        try:
            stat = os.stat(self.path)
        except OSError:
            return None
        return (stat.st_mtime, stat.st_size)

    def get(self) -> Rules | None:
        """The rules to use now (None only if no valid version was ever loaded)."""
        stamp = self._current_stamp()
        if stamp is not None and stamp == self._stamp:
            return self._rules
        with self._lock:
            if stamp is not None and stamp == self._stamp:
                return self._rules
            self._stamp = stamp
            try:
                rules = load_rules(self.path)
            except RulesError as error:
                self.errors = [str(p) for p in error.problems]
                log.error("rules.reload.failed", extra={"errors": self.errors})
            except OSError as error:
                self.errors = [f"{self.path}: cannot read the rules file ({error.strerror})"]
                log.error("rules.reload.failed", extra={"errors": self.errors})
            else:
                if self._rules is not None and self._rules.digest != rules.digest:
                    log.info("rules.reloaded", extra={"digest": rules.digest})
                self._rules = rules
                self.errors = []
            return self._rules

    def require(self) -> Rules:
        rules = self.get()
        if rules is None:
            raise RuntimeError("no valid rules loaded: " + "; ".join(self.errors))
        return rules


@dataclass
class Runtime:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    redis: redis.Redis
    queue: Queue
    rules: RulesSource
    _jira: JiraConnector | None = field(default=None, repr=False)

    @classmethod
    def build(
        cls, settings: Settings, *, migrate: bool = True, connection: Redis | None = None
    ) -> Runtime:
        # the queue first: a process refused its Redis leaves no database behind
        connection = connection if connection is not None else redis_connection(settings)
        engine = make_engine(settings.effective_database_url)
        if migrate:
            upgrade(engine)
        return cls(
            settings=settings,
            engine=engine,
            sessions=make_sessionmaker(engine),
            redis=connection,
            queue=Queue(settings.queue_name, connection=connection),
            rules=RulesSource(settings.rules_file),
        )

    @contextmanager
    def activate(self) -> Iterator[Runtime]:
        """Make this the runtime that jobs run in this context find with ``current_runtime``."""
        token = _active.set(self)
        try:
            yield self
        finally:
            _active.reset(token)

    def retry(self) -> Retry:
        """rq's retries at the configured intervals, each jittered by ±20% per job.

        The jitter spreads the retries of many jobs that failed together (a Jira outage)
        instead of sending them back all at once.
        """
        intervals = [round(i * random.uniform(0.8, 1.2)) for i in self.settings.retry_intervals]
        return Retry(max=len(intervals), interval=intervals)

    def dry_run(self) -> bool:
        rules = self.rules.get()
        return self.settings.dry_run(rules.dry_run if rules else False)

    def jira(self) -> JiraConnector:
        """The Jira connector (connects lazily, on its first call)."""
        if self._jira is None:
            self._jira = jira_connector(self.settings)
        return self._jira

    def mention_style(self) -> str:
        """How to mention people: from Jira when configured, else guessed from the rules' ids."""
        if self.settings.jira_url:
            return self.jira().deployment
        return self.settings.jira_deployment or "auto"
