"""The ``leaderleader`` command: serve, worker, demo, db, rules."""

from __future__ import annotations

import functools
import logging
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import click

from service.logs import configure_logging
from service.runtime import Runtime
from service.settings import ConfigError, Settings

F = TypeVar("F", bound=Callable[..., Any])


def user_errors(func: F) -> F:
    """Turn a user's mistake into one readable line and a non-zero exit, never a traceback."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        import redis
        from sqlalchemy.exc import DBAPIError

        try:
            return func(*args, **kwargs)
        except ConfigError as error:
            raise click.ClickException(f"configuration: {error}") from None
        except DBAPIError as error:
            # the driver's own first line names host and port, never the password
            reason = str(error.orig or error).strip().splitlines()[0]
            raise click.ClickException(f"cannot use the database (DATABASE_URL): {reason}") from None
        except redis.RedisError as error:
            raise click.ClickException(f"cannot reach Redis (REDIS_URL): {error}") from None
        except OSError as error:
            where = f" {error.filename}" if error.filename else ""
            raise click.ClickException(f"cannot use{where}: {error.strerror or error}") from None

    return wrapper  # type: ignore[return-value]


def require_rules(settings: Settings) -> None:
    """A process that evaluates rules refuses to start without a valid rules file."""
    from rules.loader import RulesError, load_rules

    try:
        load_rules(settings.rules_file)
    except RulesError as error:
        problems = [str(p) for p in error.problems]
        more = (f" (and {len(problems) - 1} more: see leaderleader rules check)"
                if len(problems) > 1 else "")
        raise ConfigError(f"RULES_FILE: {problems[0]}{more}") from None
    except OSError as error:
        raise ConfigError(f"RULES_FILE: cannot read {settings.rules_file} ({error.strerror})") from None


@click.group()
@click.version_option(package_name="leaderleader")
def main() -> None:
    """leaderleader: move decisions to where the information is."""


def _start_worker_process(redis_url: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "REDIS_URL": redis_url}
    return subprocess.Popen([sys.executable, "-m", "leaderleader", "worker"], env=env)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535))
@click.option("--worker/--no-worker", default=True, show_default=True,
              help="Also run a queue worker in the background.")
@user_errors
def serve(host: str, port: int, worker: bool) -> None:
    """Run the webhook service (and, by default, a worker beside it)."""
    from werkzeug.serving import run_simple

    from service.runtime import stop_embedded_redis
    from webhooks.app import create_app

    settings = Settings.from_env()
    require_rules(settings)
    runtime = Runtime.build(settings)
    runtime.redis.ping()
    redis_url = settings.redis_url
    if redis_url is None:  # the embedded Redis: hand its socket to the worker
        redis_url = "unix://" + runtime.redis.socket_file  # type: ignore[attr-defined]
    app = create_app(runtime=runtime)
    mode = "dry-run" if runtime.dry_run() else f"posting to {settings.jira_url}"
    click.echo(f"leaderleader on http://{host}:{port} ({mode}; rules {settings.rules_file})")
    # A process manager stops us with SIGTERM: exit through the finally below, so the
    # worker and the embedded Redis are stopped too, instead of orphaning them.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    stop = threading.Event()
    keeper = threading.Thread(target=_keep_worker, args=(redis_url, stop), daemon=True)
    if worker:
        keeper.start()
        threading.Thread(target=_schedule, args=(runtime, stop), daemon=True).start()
    try:
        run_simple(host, port, app, threaded=True, use_reloader=False)
    finally:
        stop.set()
        if worker:
            keeper.join(timeout=15)
        stop_embedded_redis(runtime.redis)


def _schedule(runtime: Runtime, stop: threading.Event, every: float = 60.0) -> None:
    """The scheduler's rounds beside the embedded worker (reminders, anything left behind)."""
    from jobs.rounds import run_round

    while not stop.wait(every):
        try:
            run_round(runtime)
        except Exception:  # noqa: BLE001 - a failed round is retried on the next
            logging.getLogger("leaderleader.scheduler").exception("scheduler.round.failed")


def _keep_worker(redis_url: str, stop: threading.Event) -> None:
    """Run the worker beside the web server, restarting it if it ever exits."""
    child = _start_worker_process(redis_url)
    while not stop.wait(2):
        if child.poll() is not None:
            click.echo(f"worker exited ({child.returncode}); starting another", err=True)
            child = _start_worker_process(redis_url)
    child.terminate()
    child.wait(timeout=10)


@main.command()
@click.option("--burst", is_flag=True, help="Stop when the queue is empty.")
@user_errors
def worker(burst: bool) -> None:
    """Run a queue worker (jobs: deliveries, comments, reminders)."""
    from rq import SimpleWorker

    settings = Settings.from_env()
    require_rules(settings)
    configure_logging(settings)
    runtime = Runtime.build(settings, migrate=settings.migrate_on_start)
    with runtime.activate():
        SimpleWorker([runtime.queue], connection=runtime.redis).work(
            burst=burst, with_scheduler=True, logging_level="WARNING"
        )


@main.command()
@click.option("--every", default=60, show_default=True, type=click.IntRange(1, 86400),
              help="Seconds between rounds.")
@click.option("--once", is_flag=True, help="Run one round and exit (for cron).")
@user_errors
def scheduler(every: int, once: bool) -> None:
    """Queue due reminders; re-queue comments left pending and deliveries that failed."""
    import time

    from jobs.rounds import run_round

    settings = Settings.from_env()
    require_rules(settings)
    configure_logging(settings)
    runtime = Runtime.build(settings, migrate=settings.migrate_on_start)
    with runtime.activate():
        while True:
            done = run_round(runtime)
            if done or once:
                click.echo(str(done))
            if once:
                return
            time.sleep(every)


@main.command()
@user_errors
def reconcile() -> None:
    """Reconcile the ledger with Jira now: close waits that ended, open waits never seen."""
    from connector.errors import JiraError
    from jobs.reconcile import reconcile as run_reconcile

    settings = Settings.from_env()
    require_rules(settings)
    if not settings.jira_url:
        raise click.ClickException("reconcile asks Jira: set JIRA_URL (and its credentials)")
    configure_logging(settings)
    runtime = Runtime.build(settings, migrate=settings.migrate_on_start)
    try:
        with runtime.activate():
            done = run_reconcile(runtime)
    except JiraError as error:
        raise click.ClickException(f"Jira refused the reconciliation: {error}") from None
    finally:
        runtime.engine.dispose()
    click.echo(str(done))


@main.command()
@user_errors
def demo() -> None:
    """Replay bundled sample webhooks through the whole system and show the result (dry-run)."""
    from leaderleader.demo import run_demo

    run_demo(Settings.from_env(), click.echo)


@main.group()
def db() -> None:
    """The ledger's database."""


@db.command("upgrade")
@user_errors
def db_upgrade() -> None:
    """Apply the ledger's migrations (also done on every start)."""
    from ledger.db import make_engine, upgrade

    settings = Settings.from_env()
    engine = make_engine(settings.effective_database_url)
    try:
        upgrade(engine)
    finally:
        engine.dispose()
    click.echo("ledger is up to date")


from leaderleader.cli_history import backfill, simulate  # noqa: E402
from leaderleader.cli_rules import rules  # noqa: E402

main.add_command(rules)
main.add_command(backfill)
main.add_command(simulate)


if __name__ == "__main__":
    main()
