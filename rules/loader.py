"""Loading the rules file: every problem found at once, each as ``file:line: message``.

The YAML is composed into nodes first so every key and value keeps its line; the
shape is then checked by pydantic (``rules.schema``) and the meaning by ``rules.checks``.
"""

from __future__ import annotations

import difflib
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from rules.checks import Located, build_rules
from rules.model import Rules
from rules.schema import RulesIn, known_keys, model_at


@dataclass(frozen=True)
class Problem:
    source: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.source}:{self.line}: {self.message}"


class RulesError(ValueError):
    """The rules file is invalid; ``problems`` lists every reason with its line."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


@dataclass
class CheckResult:
    rules: Rules | None
    errors: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)


def _walk(node: yaml.Node, path: tuple[Any, ...], lines: dict[tuple[Any, ...], int],
          problems: list[tuple[int, str]]) -> None:
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        seen: set[Any] = set()
        for key_node, value_node in node.value:
            key = key_node.value
            if key in seen:
                problems.append((key_node.start_mark.line + 1, f"duplicate key '{key}'"))
            seen.add(key)
            lines[path + (key,)] = key_node.start_mark.line + 1
            lines[path + (key, "<value>")] = value_node.start_mark.line + 1
            _walk(value_node, path + (key,), lines, problems)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            lines[path + (index,)] = item.start_mark.line + 1
            _walk(item, path + (index,), lines, problems)


def _dotted(path: tuple[Any, ...]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "the file"


class _Lines:
    """Finds the line of a path, falling back to its nearest known parent."""

    def __init__(self, lines: dict[tuple[Any, ...], int]) -> None:
        self.lines = lines

    def __call__(self, path: tuple[Any, ...], value: bool = False) -> int:
        if value and path + ("<value>",) in self.lines:
            return self.lines[path + ("<value>",)]
        while path not in self.lines and path:
            path = path[:-1]
        return self.lines.get(path, 1)


def _schema_problems(error: ValidationError, data: Any, line: _Lines) -> list[tuple[int, str]]:
    found = []
    for detail in error.errors():
        path = tuple(detail["loc"])
        kind = detail["type"]
        if kind == "extra_forbidden":
            parent, key = path[:-1], path[-1]
            model = model_at(parent)
            choices = known_keys(model) if model else []
            message = f"unknown key '{key}'"
            if parent:
                message += f" in {_dotted(parent)}"
            close = difflib.get_close_matches(str(key), choices, n=1)
            if close:
                message += f"; did you mean '{close[0]}'?"
            elif choices:
                message += f" (expected one of: {', '.join(choices)})"
            found.append((line(path), message))
        elif kind == "missing":
            parent, key = path[:-1], path[-1]
            where = f" in {_dotted(parent)}" if parent else ""
            found.append((line(parent), f"missing required key '{key}'{where}"))
        else:
            message = detail["msg"]
            message = message[0].lower() + message[1:]
            found.append((line(path, value=True), f"{_dotted(path)}: {message}"))
    return found


def _drop_offenders(data: Any, error: ValidationError) -> bool:
    """Remove keys whose value is wrong or unknown (defaults take their place); False if stuck."""
    dropped = False
    for detail in error.errors():
        path = tuple(detail["loc"])
        if detail["type"] == "missing" or not path:
            continue
        parent: Any = data
        for part in path[:-1]:
            try:
                parent = parent[part]
            except (KeyError, IndexError, TypeError):
                parent = None
                break
        last = path[-1]
        if isinstance(parent, dict) and last in parent:
            del parent[last]
            dropped = True
    return dropped


def load_rules_text(text: str, source: str = "<rules>") -> Rules:
    result = check_rules_text(text, source)
    if result.rules is None:
        raise RulesError(result.errors)
    return result.rules


def load_rules(path: str | Path) -> Rules:
    """Load and validate a rules file; raises RulesError listing every problem."""
    return load_rules_text(Path(path).read_text(encoding="utf-8"), str(path))


def check_rules(path: str | Path) -> CheckResult:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError:
        return CheckResult(None, [Problem(str(path), 1, "the file is not UTF-8 text")])
    return check_rules_text(text, str(path))


def check_rules_text(text: str, source: str) -> CheckResult:
    """Validate the text; the result holds the rules (or None), errors and warnings."""
    def problems(pairs: list[tuple[int, str]]) -> list[Problem]:
        return [Problem(source, n, m) for n, m in sorted(pairs, key=lambda p: p[0])]

    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None) or getattr(error, "context_mark", None)
        reason = getattr(error, "problem", None) or str(error)
        return CheckResult(None, [Problem(source, mark.line + 1 if mark else 1, f"YAML: {reason}")])
    if node is None or not isinstance(data, dict):
        return CheckResult(None, [Problem(source, 1, "the rules file must be a YAML mapping "
                                                     "(version, levels, people, …)")])
    lines: dict[tuple[Any, ...], int] = {}
    structural: list[tuple[int, str]] = []
    _walk(node, (), lines, structural)
    line = _Lines(lines)
    shape: list[tuple[int, str]] = []
    parsed = None
    for _ in range(5):  # drop what is wrong and look again, so the meaning is checked too
        try:
            parsed = RulesIn.model_validate(data)
            break
        except ValidationError as error:
            shape += _schema_problems(error, data, line)
            if not _drop_offenders(data, error):
                break
    if parsed is None:
        return CheckResult(None, problems(list(dict.fromkeys(structural + shape))))
    located = Located(parsed, line)
    rules = build_rules(located, source=source, digest=hashlib.sha256(text.encode()).hexdigest())
    errors = problems(list(dict.fromkeys(structural + shape + located.errors)))
    warnings = problems(located.warnings)
    return CheckResult(None if errors else rules, errors, warnings)
