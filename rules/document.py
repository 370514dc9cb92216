"""A parsed rules file and what its checks find in it: the ground both check modules stand on.

A ``RulesDocument`` is the parsed file with the line each part is written on; ``Findings``
collects ``(line, message)`` errors and warnings. Messages name the valid choices and
offer a did-you-mean (``suggest``).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterable
from datetime import timedelta
from typing import Any

from rules.schema import RulesIn

_DURATION = re.compile(r"^(?:(\d+)w)?\s*(?:(\d+)d)?\s*(?:(\d+)h)?\s*(?:(\d+)m)?$")


def parse_duration(text: str) -> timedelta | None:
    """``2d``, ``36h``, ``90m``, ``1w``, ``1d12h`` -> timedelta; None if malformed."""
    match = _DURATION.match(text.strip().lower())
    if not text.strip() or not match or not any(match.groups()):
        return None
    weeks, days, hours, minutes = (int(g) if g else 0 for g in match.groups())
    return timedelta(weeks=weeks, days=days, hours=hours, minutes=minutes)


def suggest(word: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f"; did you mean '{close[0]}'?" if close else ""


class RulesDocument:
    """The rules file as parsed, with the line each part is written on."""

    def __init__(self, parsed: RulesIn, line: Callable[..., int],
                 dropped: set[tuple[Any, ...]] | None = None) -> None:
        self.parsed = parsed
        #: ``line(path, value=False)``: the line of a key (or of its value)
        self.line = line
        #: paths already reported as wrong and taken out: checked no further
        self.dropped = dropped or set()

    def broken(self, *path: Any) -> bool:
        """Was this part (or anything inside it) reported as wrong and taken out?"""
        return any(d[: len(path)] == path for d in self.dropped)


class Findings:
    """The errors and warnings found in a rules document, each as (line, message)."""

    def __init__(self, document: RulesDocument) -> None:
        self.line = document.line
        self.errors: list[tuple[int, str]] = []
        self.warnings: list[tuple[int, str]] = []

    def error(self, path: tuple[Any, ...], message: str, value: bool = True) -> None:
        self.errors.append((self.line(path, value=value), message))

    def warn(self, path: tuple[Any, ...], message: str, value: bool = False) -> None:
        self.warnings.append((self.line(path, value=value), message))


def level_problem(doc: RulesDocument, level: str, *extra: str) -> str | None:
    levels = list(doc.parsed.levels)
    if level in levels or level in extra:
        return None
    choices = ", ".join(levels + [f"or '{e}'" for e in extra])
    return f"unknown level '{level}' (levels: {choices}){suggest(level, levels + list(extra))}"
