"""Loading the rules file: every problem found at once, each as ``file:line: message``.

The YAML is composed into nodes first so every key and value keeps its line; the
shape is then checked by pydantic (``rules.schema``) and the meaning by ``rules.checks``.
"""

from __future__ import annotations

import difflib
import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from rules.checks import build_rules
from rules.document import Findings, RulesDocument
from rules.model import INFORMATION, Rules
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


def _key_of(node: yaml.Node) -> Any:
    """A mapping key as YAML reads it (``null`` is None, ``1`` is 1), so paths match pydantic's."""
    if isinstance(node, yaml.ScalarNode):
        try:
            return yaml.SafeLoader("").construct_object(node)
        except yaml.YAMLError:
            return node.value
    return node.value if isinstance(node.value, str) else id(node)


def _walk(node: yaml.Node, path: tuple[Any, ...], lines: dict[tuple[Any, ...], int],
          problems: list[tuple[int, str]]) -> None:
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        seen: dict[Any, int] = {}
        for key_node, value_node in node.value:
            key = _key_of(key_node)
            line = key_node.start_mark.line + 1
            if key in seen:
                where = f"{_dotted(path)}: " if path else ""
                problems.append((line, f"{where}'{key}' is defined twice (first on line {seen[key]})"))
            seen.setdefault(key, line)
            for name in {key, str(key)}:  # pydantic names a key that is not text by its str()
                lines[path + (name,)] = line
                lines[path + (name, "<value>")] = value_node.start_mark.line + 1
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


def _show(value: Any) -> str:
    """A value as the rules file's author wrote it (YAML words, not Python's)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return repr(value)
    return str(value)


_EXPECTED = {
    "string_type": "text", "int_type": "a whole number", "int_parsing": "a whole number",
    "int_from_float": "a whole number", "bool_type": "true or false",
    "bool_parsing": "true or false", "list_type": "a list, like [a, b]",
    "dict_type": "a mapping of key: value", "model_type": "a mapping of key: value",
    "model_attributes_type": "a mapping of key: value",
}


def _schema_problems(details: list[Any], line: _Lines) -> list[tuple[int, str]]:
    found = []
    for detail in details:
        path = tuple(detail["loc"])
        kind = detail["type"]
        value = detail.get("input")
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
        elif path and path[-1] == "[key]":
            parent = path[:-2]
            found.append((line(path[:-1]), f"{_dotted(parent)}: the key {_show(value)} is not "
                                           f"text; quote it if you mean the text ('{_show(value)}')"))
        elif kind in _EXPECTED and value is None:
            found.append((line(path, value=True),
                          f"{_dotted(path)}: has no value (expected {_EXPECTED[kind]})"))
        elif kind in _EXPECTED:
            found.append((line(path, value=True),
                          f"{_dotted(path)}: must be {_EXPECTED[kind]}, not {_show(value)}"))
        elif kind == "too_short" and not value:
            found.append((line(path, value=True), f"{_dotted(path)}: must not be empty"))
        else:
            message = detail["msg"]
            message = message[0].lower() + message[1:]
            found.append((line(path, value=True), f"{_dotted(path)}: {message}"))
    return found


def _placeholder_decision(index: int) -> dict[str, Any]:
    return {"name": f"decisions[{index}]", "decided_at": INFORMATION}


def _repair(data: dict[str, Any], details: list[Any], dropped: set[tuple[Any, ...]]) -> bool:
    """Take out what is wrong (remembering where) so the rest can still be checked.

    A wrong value is removed (its default takes its place); a person or team missing a
    required key is removed whole; a broken decision rule becomes a placeholder so the
    others keep their numbers. The checks of meaning stay quiet about what was removed,
    so one mistake gives one message. False when nothing more can be done.
    """
    progress = False

    def at(path: tuple[Any, ...]) -> Any:
        node: Any = data
        for part in path:
            node = node[part]
        return node

    for detail in details:
        path = tuple(detail["loc"])
        try:
            if detail["type"] == "missing":
                parent, key = path[:-1], path[-1]
                if parent == () and key in ("version", "waiting_for_approval"):
                    data[key] = 1 if key == "version" else {}
                    dropped.add(path)
                elif len(parent) == 2 and parent[0] in ("people", "teams"):
                    del at(parent[:1])[parent[1]]
                    dropped.add(parent)
                elif len(parent) == 2 and parent[0] == "decisions":
                    at(parent)[key] = _placeholder_decision(parent[1])[key]
                    dropped.add(path)
                else:
                    continue
            elif path and path[-1] == "[key]":
                container = at(path[:-2])
                del container[next(k for k in container if str(k) == path[-2])]
                dropped.add(path[:-1])
            elif path:
                container = at(path[:-1])
                if isinstance(container, dict):
                    del container[path[-1]]
                    dropped.add(path)
                elif path[:-1] == ("decisions",):
                    container[path[-1]] = _placeholder_decision(path[-1])
                    dropped.add(path)
                else:  # an item of a list of names: drop the whole list
                    del at(path[:-2])[path[-2]]
                    dropped.add(path[:-1])
            else:
                continue
        except (KeyError, IndexError, TypeError, StopIteration):
            continue
        progress = True
    return progress


def load_rules_text(text: str, source: str = "<rules>") -> Rules:
    result = check_rules_text(text, source)
    if result.rules is None:
        raise RulesError(result.errors)
    return result.rules


def _read(path: str | Path) -> str | Problem:
    """The file's text, or the problem of a file that is not UTF-8 (OSError propagates)."""
    raw = Path(path).read_bytes()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as error:
        line = raw[: error.start].count(b"\n") + 1
        return Problem(str(path), line, f"the file is not UTF-8 text (byte 0x{raw[error.start]:02x}); "
                                        "save it as UTF-8")


def load_rules(path: str | Path) -> Rules:
    """Load and validate a rules file; raises RulesError listing every problem (OSError if unreadable)."""
    text = _read(path)
    if isinstance(text, Problem):
        raise RulesError([text])
    return load_rules_text(text, str(path))


def check_rules(path: str | Path) -> CheckResult:
    """Check a rules file (OSError if it cannot be read)."""
    text = _read(path)
    if isinstance(text, Problem):
        return CheckResult(None, [text])
    return check_rules_text(text, str(path))


def _within(path: tuple[Any, ...], dropped: set[tuple[Any, ...]]) -> bool:
    """Is this path, or one of its parents, something already reported and taken out?"""
    return any(path[: n] in dropped for n in range(1, len(path) + 1))


_KEY = re.compile(r"""^(?:"[^"]*"|'[^']*'|[^\s#'"{\[][^#]*?)\s*:(?:\s|$)""")


def _indentation_problem(text: str, upto: int) -> tuple[int, str] | None:
    """The first line up to ``upto`` whose indentation cannot be right, said plainly.

    PyYAML reports where the parser gave up, which is often the line *after* the one
    that is wrong and in its own vocabulary ("expected <block end>"). This walks the
    block structure as a person reads it: each nested level starts deeper than its
    parent, and a line that comes back out must line up with a level above.
    """
    levels: list[tuple[int, int, str]] = []  # (column, line, first word) of the open levels
    #: the line before: number, column, first word, opens a block, is a key, its text
    previous: tuple[int, int, str, bool, bool, str] | None = None
    scalar_column: int | None = None  # inside a | or > block scalar started at this column
    depth = 0  # open flow brackets carried over from earlier lines
    for number, raw in enumerate(text.splitlines()[:upto], 1):
        body = raw.lstrip(" ")
        column = len(raw) - len(body)
        if not body.strip() or body.startswith("#"):
            continue
        if scalar_column is not None and column > scalar_column:
            continue
        scalar_column = None
        if depth > 0 or body.startswith("\t"):
            depth = max(0, depth + _brackets(body))
            continue
        content, item_column = body, column
        while content.startswith("- ") or content == "-":
            content = content[1:].lstrip(" ")
            item_column = len(raw) - len(content)
        word = content.split(":")[0].strip()[:40] or body.strip()[:40]
        if not levels or column > levels[-1][0]:
            if previous is not None and not previous[3]:
                return number, (
                    f"'{word}' is indented {column} spaces, deeper than '{previous[2]}' on line "
                    f"{previous[0]} ({previous[1]} spaces), which already has its value: "
                    f"indent it like its siblings, or give line {previous[0]} no value")
            levels.append((column, number, word))
        else:
            while levels[-1][0] > column and len(levels) > 1:
                levels.pop()
            if levels[-1][0] != column:
                columns = ", ".join(str(c) for c, _, _ in levels)
                return number, (
                    f"'{word}' is indented {column} spaces, which lines up with no level above "
                    f"it (those start at {columns} spaces): line it up with its siblings")
        if item_column > column and content:
            levels.append((item_column, number, word))
        plain = content.split(" #")[0].rstrip()
        opens = plain.endswith(":") or plain in ("", "-")
        is_key = bool(_KEY.match(content)) or content.startswith(("{", "[", '"', "'"))
        if re.search(r":\s+[|>][-+0-9]*$", plain):
            opens, scalar_column = False, item_column
        if previous is not None and previous[1] == item_column and previous[4] != is_key:
            bad, text_ = (number, plain) if previous[4] else (previous[0], previous[5])
            return bad, (f"'{text_[:40]}' is not 'key: value' like the lines beside it: "
                         "is a ':' (followed by a space) missing?")
        depth = max(0, _brackets(plain))
        previous = (number, item_column, word, opens, is_key, plain)
    return None


def _brackets(text: str) -> int:
    """Flow brackets opened minus closed on a line, quotes aside."""
    text = re.sub(r'"[^"]*"|\'[^\']*\'', "", text)
    return sum(text.count(c) for c in "[{") - sum(text.count(c) for c in "]}")


def _yaml_problem(error: yaml.YAMLError, text: str) -> tuple[int, str]:
    mark = getattr(error, "problem_mark", None) or getattr(error, "context_mark", None)
    reason = getattr(error, "problem", None) or str(error)
    if "\\t" in reason or "\t" in reason:
        return (mark.line + 1 if mark else 1), (
            "YAML indentation: a tab character; YAML indents with spaces only")
    found = _indentation_problem(text, mark.line + 1) if mark else None
    if found is not None:
        return found[0], f"YAML indentation: {found[1]}"
    context, started = getattr(error, "context", None), getattr(error, "context_mark", None)
    if context and started is not None and mark is not None and started.line != mark.line:
        reason += f" ({context} that starts on line {started.line + 1})"
    return (mark.line + 1 if mark else 1), f"YAML: {reason}"


def check_rules_text(text: str, source: str) -> CheckResult:
    """Validate the text; the result holds the rules (or None), errors and warnings."""
    def problems(pairs: list[tuple[int, str]]) -> list[Problem]:
        return [Problem(source, n, m) for n, m in sorted(pairs, key=lambda p: p[0])]

    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        return CheckResult(None, [Problem(source, *_yaml_problem(error, text))])
    if node is None or not isinstance(data, dict):
        return CheckResult(None, [Problem(source, 1, "the rules file must be a YAML mapping "
                                                     "(version, levels, people, …)")])
    lines: dict[tuple[Any, ...], int] = {}
    structural: list[tuple[int, str]] = []
    _walk(node, (), lines, structural)
    line = _Lines(lines)
    shape: list[tuple[int, str]] = []
    dropped: set[tuple[Any, ...]] = set()
    for section in ("people", "teams", "decisions", "flag", "comment"):
        if section in data and data[section] is None:  # an empty section: nothing in it
            del data[section]
    parsed = None
    for _ in range(10):  # take out what is wrong and look again, so the meaning is checked too
        try:
            parsed = RulesIn.model_validate(data)
            break
        except ValidationError as error:
            details = [d for d in error.errors() if not _within(tuple(d["loc"]), dropped)]
            shape += _schema_problems(details, line)
            if not _repair(data, error.errors(), dropped):
                break
    if parsed is None:
        return CheckResult(None, problems(list(dict.fromkeys(structural + shape))))
    document = RulesDocument(parsed, line, dropped)
    findings = Findings(document)
    rules = build_rules(document, findings, source=source,
                        digest=hashlib.sha256(text.encode()).hexdigest())
    errors = problems(list(dict.fromkeys(structural + shape + findings.errors)))
    warnings = problems(findings.warnings)
    return CheckResult(None if errors else rules, errors, warnings)
