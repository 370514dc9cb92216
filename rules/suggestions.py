"""Proposed edits to the rules file, shown as a unified diff and never written.

A ``Suggestion`` says what to change (a rule's ``decided_at``) or only what to look at
(a rule, a person), with the evidence. ``suggestion_diff`` edits the YAML *text*
minimally, so every comment and layout the managers wrote survives: it replaces the
one value it changes and writes the evidence as ``#`` comment lines above the rule or
person it concerns.
"""

from __future__ import annotations

import difflib
from dataclasses import asdict, dataclass, field
from typing import Any

import yaml


@dataclass(frozen=True)
class Suggestion:
    kind: str  # "rubber_stamp", "always_flagged" or "acts_on_intents"
    summary: str  # one plain sentence
    evidence: tuple[str, ...] = ()
    rule: str | None = None  # the decision rule's name
    person: str | None = None  # a handle in people
    decided_at: str | None = None  # the proposed new decided_at, if any
    current: str | None = None  # its value now
    figures: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["evidence"] = list(self.evidence)
        return data


def _node(root: yaml.Node, *path: Any) -> yaml.Node | None:
    node: yaml.Node | None = root
    for part in path:
        if isinstance(node, yaml.MappingNode):
            node = next((v for k, v in node.value if k.value == part), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            node = node.value[part] if part < len(node.value) else None
        else:
            return None
    return node


def _key_line(root: yaml.Node, parent: tuple[Any, ...], key: str) -> int | None:
    """0-based line of ``key`` inside the mapping at ``parent``."""
    mapping = _node(root, *parent)
    if isinstance(mapping, yaml.MappingNode):
        for k, _v in mapping.value:
            if k.value == key:
                return int(k.start_mark.line)
    return None


def _comments(lines: list[str], at: int, suggestion: Suggestion) -> None:
    indent = len(lines[at]) - len(lines[at].lstrip(" "))
    text = [f"leaderleader suggests: {suggestion.summary}", *suggestion.evidence]
    lines[at:at] = [" " * indent + "# " + line + "\n" for line in text]


def suggested_text(text: str, suggestions: list[Suggestion]) -> str:
    """The rules file's text with the suggestions applied (comments kept, one value changed)."""
    root = yaml.compose(text, Loader=yaml.SafeLoader)
    if root is None:
        return text
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    decisions = _node(root, "decisions")
    count = len(decisions.value) if isinstance(decisions, yaml.SequenceNode) else 0
    names = [_node(root, "decisions", i, "name") for i in range(count)]
    edits: list[tuple[int, Suggestion, yaml.Node | None]] = []
    for suggestion in suggestions:
        if suggestion.rule is not None:
            index = next((i for i, n in enumerate(names)
                          if isinstance(n, yaml.ScalarNode) and n.value == suggestion.rule), None)
            if index is None:
                continue
            start = _node(root, "decisions", index)
            value = _node(root, "decisions", index, "decided_at")
            if start is None:
                continue
            edits.append((start.start_mark.line, suggestion,
                          value if suggestion.decided_at else None))
        elif suggestion.person is not None:
            line = _key_line(root, ("people",), suggestion.person)
            if line is not None:
                edits.append((line, suggestion, None))
    for line, suggestion, value in sorted(edits, key=lambda e: -e[0]):
        if value is not None and suggestion.decided_at is not None:
            row = value.start_mark.line
            lines[row] = (lines[row][: value.start_mark.column] + suggestion.decided_at
                          + lines[row][value.end_mark.column:])
        _comments(lines, line, suggestion)
    return "".join(lines)


def suggestion_diff(text: str, source: str, suggestions: list[Suggestion]) -> str:
    """A unified diff from the rules file to the file with the suggestions (empty: none)."""
    after = suggested_text(text, suggestions)
    return "".join(difflib.unified_diff(
        text.splitlines(keepends=True), after.splitlines(keepends=True),
        fromfile=source, tofile=f"{source} (suggested)"))
