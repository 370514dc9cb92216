"""``leaderleader demo``: bundled sample webhooks through the real pipeline, in dry-run.

The samples go through the same HTTP endpoint, queue, worker, ledger and example rules
as production deliveries, in a scratch home of their own; only the Jira call is
replaced by recording the comment.
"""

from __future__ import annotations

import json
import secrets
import tempfile
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from rq import SimpleWorker
from sqlalchemy import select

from ledger.figures import hours
from ledger.loop import answer_of
from ledger.models import ApprovalWait, Comment
from ledger.suggest import suggestions
from rules.model import utc_now
from rules.suggestions import suggestion_diff
from service.embedded import EmbeddedRedis
from service.runtime import Runtime
from service.settings import EXAMPLE_RULES, Settings
from webhooks.app import create_app
from webhooks.auth import sign

SAMPLES = Path(__file__).resolve().parent / "samples"


def sample_files() -> list[Path]:
    return sorted(SAMPLES.glob("*.json"))


def _deliveries(path: Path) -> list[bytes]:
    """A sample holds one delivery, or a list of them posted in order (a story in one file)."""
    data = json.loads(path.read_bytes())
    if isinstance(data, list):
        return [json.dumps(item).encode() for item in data]
    return [path.read_bytes()]


def run_demo(echo: Callable[[str], object]) -> int:
    """Replay every sample in a scratch home, with the worker after each, and print the result.

    Nothing configured is read or touched: not ``LEADERLEADER_HOME``, ``DATABASE_URL``,
    ``REDIS_URL`` or Jira. The scratch home holds its own SQLite ledger and embedded Redis
    (owned by this process) and is deleted at the end.
    """
    with tempfile.TemporaryDirectory(prefix="leaderleader-demo-") as scratch:
        settings = Settings(home=Path(scratch), rules_file=EXAMPLE_RULES, dry_run_env=True,
                            webhook_secret=secrets.token_hex(16))
        embedded = EmbeddedRedis.start(settings.home)
        runtime: Runtime | None = None
        try:
            runtime = Runtime.build(settings, connection=embedded.connection)
            client = create_app(runtime=runtime).test_client()
            with runtime.activate():
                for path in sample_files():
                    for number, body in enumerate(_deliveries(path)):
                        # one at a time, worker included: an intent answers a comment made
                        _post(client, settings.webhook_secret or "", path, number, body, echo)
                        SimpleWorker([runtime.queue], connection=runtime.redis).work(
                            burst=True, logging_level="WARNING"
                        )
                _report(runtime, echo)
                _loop(runtime, settings, echo)
        finally:
            if runtime is not None:
                runtime.engine.dispose()
            embedded.stop()
    return 0


def _post(client: Any, secret: str, path: Path, number: int, body: bytes,
          echo: Callable[[str], object]) -> None:
    """POST one delivery of a sample to the webhook endpoint, signed as Jira signs it."""
    headers = {"X-Atlassian-Webhook-Identifier": f"demo-{path.stem}-{number}",
               "X-Hub-Signature": sign(secret, body)}
    response = client.post("/webhooks/jira", data=body, headers=headers,
                           content_type="application/json")
    event = json.loads(body).get("webhookEvent")
    echo(f"POST /webhooks/jira  {path.name:<58} {response.status_code} ({event})")


def _report(runtime: Runtime, echo: Callable[[str], object]) -> None:
    """The ledger's waits and the comments that would have been posted."""
    with runtime.sessions() as session:
        waits = session.scalars(select(ApprovalWait).order_by(ApprovalWait.started_at)).all()
        echo("")
        echo(f"{len(waits)} approval wait(s) in the ledger (the demo's own, deleted after):")
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
