"""Structured logs: named events with fields, JSON in production, and never a secret."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime

from service.settings import Settings

_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}


def _fields(record: logging.LogRecord) -> dict[str, object]:
    return {k: v for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_")}


class Redactor(logging.Filter):
    """Replaces any configured secret that slips into a message or field with ``***``."""

    def __init__(self, secrets: list[str]) -> None:
        super().__init__()
        self.secrets = [s for s in secrets if len(s) >= 4]

    def _clean(self, value: object) -> object:
        if isinstance(value, str):
            for secret in self.secrets:
                value = value.replace(secret, "***")
        return value

    def filter(self, record: logging.LogRecord) -> bool:
        if self.secrets:
            record.msg = self._clean(record.getMessage())
            record.args = None
            for key, value in _fields(record).items():
                setattr(record, key, self._clean(value))
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
        }
        entry.update({k: v for k, v in _fields(record).items() if k not in entry})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        fields = " ".join(f"{k}={v}" for k, v in _fields(record).items())
        line = f"{record.levelname.lower():7} {record.getMessage()}"
        if fields:
            line += " " + fields
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def configure_logging(settings: Settings) -> None:
    """Install one handler on the ``leaderleader`` logger (idempotent)."""
    logger = logging.getLogger("leaderleader")
    for handler in list(logger.handlers):
        if getattr(handler, "_leaderleader", False):
            logger.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler._leaderleader = True  # type: ignore[attr-defined]
    handler.setFormatter(JsonFormatter() if settings.log_json else TextFormatter())
    handler.addFilter(Redactor(settings.secrets()))
    logger.addHandler(handler)
    logger.setLevel(settings.log_level.upper())
    logger.propagate = True
    # The development server's access log prints query strings, where the webhook
    # token travels (gunicorn's access log format leaves them out).
    access = logging.getLogger("werkzeug")
    for old in [f for f in access.filters if isinstance(f, Redactor)]:
        access.removeFilter(old)
    access.addFilter(Redactor(settings.secrets()))
