"""The comment, rendered in Jira wiki markup from a Verdict (pure, sandboxed templates).

A rules file may replace the whole comment with ``comment.template`` and the
intent line with ``comment.intent_template``; both run in Jinja2's sandbox with
undefined names as errors. Context of ``comment.template``:

- ``ticket``: ``key``, ``summary`` (escaped), ``status`` (escaped)
- ``approver``, ``holder``, ``decider``: ``handle``, ``name``, ``level``, ``mention``
  (``decider`` may be None)
- ``rule``, ``decision_level``, ``tolerance``, ``reasons`` (list of escaped sentences)
- ``intent`` (the rendered intent template), ``proceed_on`` (ISO date), ``reminder`` (bool)
- ``purpose`` (the rule's purpose, escaped, or None), ``require`` (the competence the rule
  requires, or None), ``competence_gap`` (bool), ``competent`` (the nearest person holding
  ``require``, like ``decider``, or None)

The intent template sees the same names except ``intent`` (it is rendered first).
Anything that comes from Jira is escaped so it cannot add markup, links or mentions.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Any, Literal

from jinja2 import StrictUndefined, TemplateError, TemplateSyntaxError, UndefinedError
from jinja2.sandbox import SandboxedEnvironment

from rules.model import Rules, Ticket, Verdict

MentionStyle = Literal["cloud", "server", "auto"]

_ENV = SandboxedEnvironment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=False)
_MARKUP = re.compile(r"([\\\[\]{}|*_+^~\-#!?@])")

DEFAULT_TEMPLATE = """\
h3. This decision is waiting above the level that holds the information

*{{ ticket.key }}* ({{ ticket.summary }}) is waiting for approval from *{{ approver.name }}* \
({{ approver.level }}). The information sits with *{{ holder.name }}* ({{ holder.level }}).
Decision rule *{{ rule }}* lets this be decided at *{{ decision_level }}* level.
{% if purpose %}Its purpose: _{{ purpose }}_
{% endif %}{% if competence_gap %}This decision requires the competence *{{ require }}*, which nobody \
at the information level holds{% if competent %}; the nearest who does is *{{ competent.name }}* \
({{ competent.level }}){% endif %}. The fix is training or certification, not approval.
{% endif %}
{% if decider %}{{ decider.mention }}, you hold what is needed to decide. \
Instead of asking for permission, state your intent here and go ahead unless someone objects:
{quote}{{ intent }}{quote}
{% endif %}
Why leaderleader says so:
{% for reason in reasons %}# {{ reason }}
{% endfor %}
_leaderleader posts this once per approval wait. In the leader-leader model the people closest \
to the work say "I intend to..." and their leader answers "very well"._"""

REMINDER_TEMPLATE = """\
h3. Still waiting above the level that holds the information

*{{ ticket.key }}* is still waiting for *{{ approver.name }}* ({{ approver.level }}). \
{% if decider %}{{ decider.mention }}, rule *{{ rule }}* lets you decide at \
*{{ decision_level }}* level:
{quote}{{ intent }}{quote}{% endif %}"""


def escape_wiki(text: str | None) -> str:
    """Neutralise Jira wiki markup, mentions and links in untrusted text."""
    if not text:
        return ""
    flat = " ".join(str(text).split())  # no new lines: no headings, lists or tables
    escaped = _MARKUP.sub(r"\\\1", flat)
    return escaped.replace("://", ":/\u200b/")  # break bare-URL auto-linking


_KEY = re.compile(r"^[A-Z][A-Z0-9_]*-[0-9]+$")


def escape_key(key: str) -> str:
    """Issue keys are safe as they are; anything else is escaped like other ticket text."""
    return key if _KEY.match(key or "") else escape_wiki(key)


#: A Cloud accountId: 24 letters and digits (older accounts) or ``NNNNNN:uuid`` (newer ones).
_ACCOUNT_ID = re.compile(r"^(?:[0-9a-z]{24}|[0-9]+:[0-9a-f-]{36})$", re.IGNORECASE)


def mention(jira_id: str, style: MentionStyle) -> str:
    """Cloud mentions by accountId, Server/DC by username; ``auto`` (no Jira to ask) goes by the id's shape."""
    if style == "auto":
        style = "cloud" if _ACCOUNT_ID.match(jira_id) else "server"
    return f"[~accountid:{jira_id}]" if style == "cloud" else f"[~{jira_id}]"


def _person(rules: Rules, handle: str | None, style: MentionStyle) -> dict[str, Any] | None:
    if handle is None:
        return None
    person = rules.people.get(handle)
    if person is None:
        return {"handle": escape_wiki(handle), "name": escape_wiki(handle), "level": "unknown",
                "mention": escape_wiki(handle)}
    return {"handle": person.handle, "name": escape_wiki(person.name), "level": person.level,
            "mention": mention(person.jira, style)}


def _sample_context(kind: Literal["comment", "intent"]) -> dict[str, Any]:
    person = {"handle": "sam", "name": "Sam", "level": "engineer", "mention": "[~sam]"}
    context: dict[str, Any] = {
        "ticket": {"key": "ABC-1", "summary": "sample", "status": "Awaiting Approval"},
        "approver": person, "holder": person, "decider": person, "rule": "sample rule",
        "decision_level": "engineer", "tolerance": 0, "reasons": ["a reason"],
        "proceed_on": "2026-01-05", "reminder": False, "purpose": "a purpose",
        "require": "deploy", "competence_gap": False, "competent": person,
    }
    if kind == "comment":  # the intent template is rendered first, into the comment's context
        context["intent"] = "I intend to ..."
    return context


def _template_line(error: BaseException) -> int:
    """The template line a render error happened on (Jinja2 puts it in the traceback)."""
    line, tb = 1, error.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<template>":
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def template_problem(text: str, kind: Literal["comment", "intent"]) -> tuple[int, str] | None:
    """(line within the template, message) if it does not compile or render on a sample."""
    context = _sample_context(kind)
    try:
        _ENV.from_string(text).render(context)
    except TemplateSyntaxError as error:
        return (error.lineno or 1), f"template syntax error: {error.message}"
    except UndefinedError as error:
        names = ", ".join(sorted(context))
        return _template_line(error), f"{error.message} (a{'n' if kind == 'intent' else ''} " \
                                      f"{kind} template can use: {names})"
    except TemplateError as error:
        return _template_line(error), f"template error: {error}"
    return None


def _context(rules: Rules, verdict: Verdict, ticket: Ticket, style: MentionStyle,
             proceed_on: date, reminder: bool) -> dict[str, Any]:
    decider = _person(rules, verdict.decider, style)
    context: dict[str, Any] = {
        "ticket": {"key": escape_key(ticket.key), "summary": escape_wiki(ticket.summary),
                   "status": escape_wiki(ticket.status)},
        "approver": _person(rules, verdict.approver, style),
        "holder": _person(rules, verdict.holder, style),
        "decider": decider,
        "rule": escape_wiki(verdict.rule),
        "decision_level": verdict.decision_level,
        "tolerance": verdict.tolerance,
        "reasons": [escape_wiki(r) for r in verdict.reasons],
        "proceed_on": proceed_on.isoformat(),
        "reminder": reminder,
        "purpose": escape_wiki(verdict.purpose) or None,
        "require": escape_wiki(verdict.require) or None,
        "competence_gap": verdict.competence_gap,
        "competent": _person(rules, verdict.competent, style),
    }
    context["intent"] = _ENV.from_string(rules.comment.intent_template).render(context)
    return context


def render_comment(rules: Rules, verdict: Verdict, ticket: Ticket, *, mention_style: MentionStyle,
                   proceed_on: date) -> str:
    """The one comment a flagged approval wait gets."""
    context = _context(rules, verdict, ticket, mention_style, proceed_on, reminder=False)
    return _ENV.from_string(rules.comment.template or DEFAULT_TEMPLATE).render(context).strip()


def render_reminder(rules: Rules, verdict: Verdict, ticket: Ticket, *, mention_style: MentionStyle,
                    proceed_on: date) -> str:
    """The one reminder, after ``flag.remind_after``."""
    context = _context(rules, verdict, ticket, mention_style, proceed_on, reminder=True)
    template = rules.comment.template or REMINDER_TEMPLATE
    return _ENV.from_string(template).render(context).strip()
