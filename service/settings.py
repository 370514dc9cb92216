"""Configuration from the environment (12-factor), read once per process.

Every variable ``Settings.from_env`` reads is in the README's configuration table (a
test holds them to it); ``.env.example`` and docker-compose.yml use only these names.
Nothing here is read at import time: ``Settings.from_env()`` is called by the app
factory, the worker and the CLI.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import rules

EXAMPLE_RULES = Path(rules.__file__).resolve().parent / "example.yaml"

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


class ConfigError(ValueError):
    """A configuration value a user set is unusable; the message says which and why."""


def _flag(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ConfigError(f"{name} must be true or false, not {raw!r}")


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, not {raw!r}") from None


def _url(env: Mapping[str, str], name: str, schemes: tuple[str, ...], example: str) -> str | None:
    raw = (env.get(name) or "").strip()
    if not raw:
        return None
    if not raw.lower().startswith(schemes):
        raise ConfigError(f"{name} must be a URL like {example}")
    return raw


def _database_url(env: Mapping[str, str]) -> str | None:
    """PostgreSQL (through psycopg 3, the driver we ship) or SQLite; anything else in one line."""
    raw = (env.get("DATABASE_URL") or "").strip()
    if not raw:
        return None
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        url = make_url(raw)
    except (ArgumentError, ValueError):
        raise ConfigError(
            "DATABASE_URL must be a database URL like postgresql://user:password@host/db"
        ) from None
    backend, _, driver = url.drivername.partition("+")
    if backend in ("postgres", "postgresql"):
        if driver not in ("", "psycopg"):
            raise ConfigError(
                f"DATABASE_URL names the driver {driver!r}, which leaderleader does not ship: "
                "write postgresql://user:password@host/db (psycopg 3 is used)"
            )
        return raw  # the psycopg 3 driver is chosen in effective_database_url
    if backend == "sqlite":
        if driver not in ("", "pysqlite"):
            raise ConfigError(f"DATABASE_URL names the driver {driver!r}, which leaderleader "
                              "does not ship: write sqlite:///path/to/ledger.db")
        return raw
    raise ConfigError(
        f"DATABASE_URL: the ledger runs on PostgreSQL or SQLite, not {backend!r}; "
        "write postgresql://user:password@host/db"
    )


def _intervals(env: Mapping[str, str], name: str) -> tuple[int, ...]:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return (10, 30, 120, 600, 1800)
    try:
        values = tuple(int(part) for part in raw.split(","))
    except ValueError:
        raise ConfigError(f"{name} must be comma-separated seconds, like 10,30,120") from None
    if any(v < 0 for v in values):
        raise ConfigError(f"{name} must not hold negative seconds")
    return values


#: the values of LEADERLEADER_LOG_LEVEL, most verbose first
LOG_LEVELS = ("debug", "info", "warning", "error")


@dataclass(frozen=True)
class Settings:
    home: Path = Path(".leaderleader")
    database_url: str | None = None
    redis_url: str | None = None
    rules_file: Path = EXAMPLE_RULES
    jira_url: str | None = None
    jira_user: str | None = field(default=None, repr=False)
    jira_api_token: str | None = field(default=None, repr=False)
    jira_pat: str | None = field(default=None, repr=False)
    jira_deployment: str | None = None  # "cloud" / "server" to skip serverInfo detection
    webhook_secret: str | None = field(default=None, repr=False)
    webhook_token: str | None = field(default=None, repr=False)
    report_token: str | None = field(default=None, repr=False)
    dry_run_env: bool | None = None  # DRY_RUN as set; None when unset
    production: bool = False
    allow_insecure: bool = False
    max_body_bytes: int = 5 * 1024 * 1024
    queue_name: str = "leaderleader"
    log_json: bool = False
    #: the least severe log lines written: debug, info (default), warning or error
    log_level: str = "info"
    migrate_on_start: bool = True
    #: how long one worker may hold a comment before another may try it (a killed worker's hold)
    comment_lock_seconds: int = 120
    #: seconds between retries of a failed job (rq's Retry); their count is the retry limit
    retry_intervals: tuple[int, ...] = (10, 30, 120, 600, 1800)
    #: /readyz says "degraded" once the oldest outstanding delivery or comment is this old
    backlog_max_age_seconds: int = 300
    #: how often a worker checks its rq scheduler (restarting it after a Redis outage) and
    #: cleans rq's registries (rq's own default is 10 minutes)
    worker_maintenance_seconds: int = 30
    #: seconds between reconciliation rounds with Jira (0: never)
    reconcile_seconds: int = 3600

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        env = os.environ if env is None else env
        deployment = (env.get("JIRA_DEPLOYMENT") or "").strip().lower() or None
        if deployment not in (None, "cloud", "server"):
            raise ConfigError(f"JIRA_DEPLOYMENT must be cloud or server, not {deployment!r}")
        production = _flag(env, "LEADERLEADER_PRODUCTION", False)
        max_body_bytes = _int(env, "LEADERLEADER_MAX_BODY_BYTES", 5 * 1024 * 1024)
        reconcile_seconds = _int(env, "LEADERLEADER_RECONCILE_SECONDS", 3600)
        if reconcile_seconds < 0:
            raise ConfigError("LEADERLEADER_RECONCILE_SECONDS must be 0 (never) or a number of seconds")
        if max_body_bytes < 1:
            raise ConfigError("LEADERLEADER_MAX_BODY_BYTES must be a positive number of bytes")
        log_level = (env.get("LEADERLEADER_LOG_LEVEL") or "info").strip().lower()
        if log_level not in LOG_LEVELS:
            raise ConfigError(f"LEADERLEADER_LOG_LEVEL must be one of {', '.join(LOG_LEVELS)}, "
                              f"not {log_level!r}")
        settings = cls(
            home=Path(env.get("LEADERLEADER_HOME") or ".leaderleader"),
            database_url=_database_url(env),
            redis_url=_url(env, "REDIS_URL", ("redis://", "rediss://", "unix://"),
                           "redis://host:6379/0"),
            rules_file=Path(env["RULES_FILE"]) if env.get("RULES_FILE") else EXAMPLE_RULES,
            jira_url=(_url(env, "JIRA_URL", ("http://", "https://"),
                           "https://your-site.atlassian.net") or "").rstrip("/") or None,
            jira_user=env.get("JIRA_USER") or None,
            jira_api_token=env.get("JIRA_API_TOKEN") or None,
            jira_pat=env.get("JIRA_PAT") or None,
            jira_deployment=deployment,
            webhook_secret=env.get("JIRA_WEBHOOK_SECRET") or None,
            webhook_token=env.get("JIRA_WEBHOOK_TOKEN") or None,
            report_token=env.get("REPORT_TOKEN") or None,
            dry_run_env=None if env.get("DRY_RUN") is None else _flag(env, "DRY_RUN", False),
            production=production,
            allow_insecure=_flag(env, "LEADERLEADER_ALLOW_INSECURE", False),
            max_body_bytes=max_body_bytes,
            log_json=_flag(env, "LEADERLEADER_LOG_JSON", production),
            log_level=log_level,
            retry_intervals=_intervals(env, "LEADERLEADER_RETRY_INTERVALS"),
            migrate_on_start=_flag(env, "LEADERLEADER_MIGRATE_ON_START", True),
            comment_lock_seconds=_int(env, "LEADERLEADER_COMMENT_LOCK_SECONDS", 120),
            queue_name=env.get("LEADERLEADER_QUEUE") or "leaderleader",
            backlog_max_age_seconds=_int(env, "LEADERLEADER_BACKLOG_MAX_AGE", 300),
            worker_maintenance_seconds=max(1, _int(env, "LEADERLEADER_WORKER_MAINTENANCE", 30)),
            reconcile_seconds=reconcile_seconds,
        )
        return replace(settings, **overrides) if overrides else settings

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            url = self.database_url
            # Heroku-style and plain postgres URLs: use psycopg 3, the driver we ship.
            for prefix in ("postgres://", "postgresql://"):
                if url.startswith(prefix):
                    return "postgresql+psycopg://" + url[len(prefix) :]
            return url
        return f"sqlite:///{(self.home / 'leaderleader.db').resolve()}"

    def dry_run(self, rules_dry_run: bool = False) -> bool:
        """Comments are only sent when Jira is configured and nobody asked for dry-run."""
        if not self.jira_url:
            return True
        if self.dry_run_env is not None:
            return self.dry_run_env
        return rules_dry_run

    def secrets(self) -> list[str]:
        """Values that must never reach a log line or an error page."""
        values = [
            self.jira_api_token,
            self.jira_pat,
            self.webhook_secret,
            self.webhook_token,
            self.report_token,
        ]
        return [v for v in values if v]


def check_production(settings: Settings) -> None:
    """Production refuses to run open to the world unless told it is insecure on purpose."""
    if not settings.production or settings.allow_insecure:
        return
    if not (settings.webhook_secret or settings.webhook_token):
        raise ConfigError(
            "production mode needs JIRA_WEBHOOK_SECRET or JIRA_WEBHOOK_TOKEN "
            "(or LEADERLEADER_ALLOW_INSECURE=true)"
        )
