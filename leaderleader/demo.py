"""``leaderleader demo``: bundled sample webhooks through the real pipeline, in dry-run.

The samples go through the same HTTP endpoint, queue, worker, ledger and rules as
production deliveries; only the Jira call is replaced by recording the comment.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

from rq import SimpleWorker
from sqlalchemy import select

from ledger.figures import hours
from ledger.loop import answer_of
from ledger.models import ApprovalWait, Comment
from ledger.suggest import suggestions
from rules.model import utc_now
from rules.suggestions import suggestion_diff
from service.runtime import Runtime, stop_embedded_redis
from service.settings import Settings
from webhooks.app import create_app
from webhooks.auth import sign
from webhooks.extension import app_runtime

SAMPLES = Path(__file__).resolve().parent / "samples"


def sample_files() -> list[Path]:
    return sorted(SAMPLES.glob("*.json"))


def _deliveries(path: Path) -> list[bytes]:
    """A sample holds one delivery, or a list of them posted in order (a story in one file)."""
    data = json.loads(path.read_bytes())
    if isinstance(data, list):
        return [json.dumps(item).encode() for item in data]
    return [path.read_bytes()]


def run_demo(settings: Settings, echo: Callable[[str], object]) -> int:
    """Replay every sample, run the worker until the queue is empty, print what happened."""
    settings = replace(settings, dry_run_env=True, jira_url=None)
    app = create_app(settings)
    client = app.test_client()
    for path in sample_files():
        for number, body in enumerate(_deliveries(path)):
            headers = {"X-Atlassian-Webhook-Identifier": f"demo-{path.stem}-{number}"}
            if settings.webhook_secret:
                headers["X-Hub-Signature"] = sign(settings.webhook_secret, body)
            query = f"?token={settings.webhook_token}" if settings.webhook_token else ""
            response = client.post(
                "/webhooks/jira" + query, data=body, headers=headers,
                content_type="application/json"
            )
            event = json.loads(body).get("webhookEvent")
            echo(f"POST /webhooks/jira  {path.name:<58} {response.status_code} ({event})")
    runtime = app_runtime(app)
    with runtime.activate():
        try:
            SimpleWorker([runtime.queue], connection=runtime.redis).work(
                burst=True, logging_level="WARNING"
            )
            _report(runtime, settings, echo)
            _loop(runtime, settings, echo)
        finally:
            stop_embedded_redis(runtime.redis)
    return 0


def _report(runtime: Runtime, settings: Settings, echo: Callable[[str], object]) -> None:
    """The ledger's waits and the comments that would have been posted."""
    with runtime.sessions() as session:
        waits = session.scalars(select(ApprovalWait).order_by(ApprovalWait.started_at)).all()
        echo("")
        echo(f"{len(waits)} approval wait(s) in the ledger ({settings.effective_database_url}):")
        for wait in waits:
            if wait.unmapped:
                echo(f"  {wait.issue_key:<8} not judged: {', '.join(wait.unmapped)} "
                     "is not in the rules file (nothing posted)")
                continue
            verdict = "FLAGGED" if wait.flagged else "at the right level"
            intent = f"; intent declared {wait.first_intent_at:%Y-%m-%d %H:%M}" if (
                wait.first_intent_at) else ""
            echo(
                f"  {wait.issue_key:<8} waits on {wait.approver} ({wait.approver_level}); "
                f"rule {wait.decision_rule!r} -> {verdict}{intent}"
            )
        comments = session.scalars(select(Comment).order_by(Comment.id)).all()
        for comment in comments:
            echo("")
            echo(f"--- comment on {comment.wait.issue_key} ({comment.state}) ---")
            echo(comment.body)


def _loop(runtime: Runtime, settings: Settings, echo: Callable[[str], object]) -> None:
    """The rest of the loop: answers to intents, competence gaps, what `rules suggest` says."""
    rules = runtime.rules.get()
    if rules is None:
        return
    now = utc_now()
    with runtime.sessions() as session:
        waits = session.scalars(select(ApprovalWait).order_by(ApprovalWait.started_at)).all()
        echo("")
        echo("--- the leader-leader loop ---")
        for wait in waits:
            if wait.first_intent_at is not None:
                answer = answer_of(wait.reply, wait.first_intent_at, now, rules.flag.remind_after)
                after = ""
                if wait.replied_at is not None:
                    delay = hours((wait.replied_at - wait.first_intent_at).total_seconds())
                    after = f" by {wait.approver}, {delay} h after the intent"
                echo(f"  {wait.issue_key:<8} intent -> {answer}{after}")
            if wait.competence_gap:
                echo(f"  {wait.issue_key:<8} competence gap: nobody at the information level "
                     f"holds '{wait.competence}'; nearest who does: {wait.competent or 'nobody'}")
        found = suggestions(session, rules, now - timedelta(days=180), now)
    text = Path(settings.rules_file).read_text(encoding="utf-8")
    diff = suggestion_diff(text, str(settings.rules_file), found)
    echo("")
    echo("--- leaderleader rules suggest (a proposal; the rules file is not changed) ---")
    echo(diff or "no suggestions")
