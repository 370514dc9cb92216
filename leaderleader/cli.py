"""The ``leaderleader`` command: every subcommand is registered here (serve, worker, scheduler, demo, db; rules, backfill and simulate from their modules)."""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import click

from service.logs import configure_logging
from service.runtime import Runtime, redis_url, require_rules
from service.settings import ConfigError, Settings, check_production


@contextmanager
def one_line_errors() -> Iterator[None]:
    """A user's mistake or an unreachable service as one readable line and exit 1, never a traceback."""
    import redis
    from alembic.util.exc import CommandError
    from sqlalchemy.exc import DBAPIError, SQLAlchemyError

    from connector.errors import JiraError

    try:
        yield
    except ConfigError as error:
        raise click.ClickException(f"configuration: {error}") from None
    except DBAPIError as error:
        # the driver's own first line names host and port, never the password
        reason = str(error.orig or error).strip().splitlines()[0]
        raise click.ClickException(f"cannot use the database (DATABASE_URL): {reason}") from None
    except SQLAlchemyError as error:
        raise click.ClickException(
            f"cannot use the database (DATABASE_URL): {type(error).__name__}") from None
    except CommandError as error:  # a ledger migrated by a newer leaderleader, for one
        raise click.ClickException(f"the ledger's migrations: {error}") from None
    except redis.RedisError as error:
        raise click.ClickException(f"cannot reach Redis (REDIS_URL): {error}") from None
    except JiraError as error:
        raise click.ClickException(str(error)) from None
    except OSError as error:
        where = f" {error.filename}" if error.filename else ""
        raise click.ClickException(f"cannot use{where}: {error.strerror or error}") from None


class Commands(click.Group):
    """Every command and sub-command runs inside ``one_line_errors``: none can forget it."""

    def invoke(self, ctx: click.Context) -> Any:
        with one_line_errors():
            return super().invoke(ctx)


@click.group(cls=Commands)
@click.version_option(package_name="leaderleader")
def main() -> None:
    """leaderleader: move decisions to where the information is."""


def _start_worker_process(env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "leaderleader", "worker"], env=env)


def _check_port(host: str, port: int) -> None:
    """Fail before starting anything when the address is taken (one line, nothing stopped)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            raise click.ClickException(
                f"cannot listen on {host}:{port}: {error.strerror or error}") from None


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535))
@click.option("--worker/--no-worker", default=True, show_default=True,
              help="Also run a queue worker in the background.")
def serve(host: str, port: int, worker: bool) -> None:
    """Run the webhook service under gunicorn (and, by default, a worker beside it)."""
    from service.embedded import EmbeddedRedis

    settings = Settings.from_env()
    require_rules(settings)
    check_production(settings)
    _check_port(host, port)
    if settings.redis_url is None and settings.production:
        redis_url(settings)  # production refuses the embedded Redis: says why
    # A process manager stops us with SIGTERM, maybe while we are still starting: from the
    # first child on, exit through the finally below, so the web server, the worker and
    # the embedded Redis are stopped too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    embedded: EmbeddedRedis | None = None
    runtime: Runtime | None = None
    stop = threading.Event()
    threads: list[threading.Thread] = []
    web: subprocess.Popen[bytes] | None = None
    try:
        embedded = EmbeddedRedis.start(settings.home) if settings.redis_url is None else None
        runtime = Runtime.build(settings, connection=embedded.connection if embedded else None)
        runtime.redis.ping()
        # The children share this home's Redis and the ledger migrated once, just above.
        env = {**os.environ, "REDIS_URL": embedded.url if embedded else str(settings.redis_url),
               "LEADERLEADER_MIGRATE_ON_START": "false"}
        env.setdefault("WEB_CONCURRENCY", "2")
        mode = "dry-run" if runtime.dry_run() else f"posting to {settings.jira_url}"
        click.echo(f"leaderleader on http://{host}:{port} ({mode}; rules {settings.rules_file})")
        bind = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        web = subprocess.Popen([sys.executable, "-m", "gunicorn", "--config",
                                "python:service.gunicorn_conf", "--bind", bind,
                                "webhooks.wsgi:app"], env=env)
        if worker:
            threads = [threading.Thread(target=_keep_worker, args=(env, stop), daemon=True),
                       threading.Thread(target=_schedule, args=(runtime, stop), daemon=True)]
            for thread in threads:
                thread.start()
        code = web.wait()
        if code != 0:
            raise click.ClickException(f"the web server stopped (exit status {code})")
    finally:
        stop.set()
        if web is not None and web.poll() is None:
            web.terminate()
            try:
                web.wait(timeout=30)
            except subprocess.TimeoutExpired:
                web.kill()
        for thread in threads:
            thread.join(timeout=15)
        if runtime is not None:
            runtime.engine.dispose()
        if embedded is not None:
            embedded.stop()


#: the longest wait between two tries to reach Redis or the database again during an
#: outage (the first after 1 s, then doubling): a process is back at work within this
#: of the outage's end, however long it lasted; a try costs one connection attempt
RECONNECT_MAX = 10.0

#: seconds between the scheduler's rounds: a killed worker's deliveries are back in the
#: inbox within a lease (20 s) and a round
ROUND_EVERY = 15


def _one_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}"


def _schedule(runtime: Runtime, stop: threading.Event, every: float = ROUND_EVERY) -> None:
    """The scheduler's rounds beside the embedded worker (reminders, anything left behind)."""
    from jobs.rounds import run_round

    while not stop.wait(every):
        try:
            run_round(runtime)
        except Exception:  # noqa: BLE001 - a failed round is retried on the next
            logging.getLogger("leaderleader.scheduler").exception("scheduler.round.failed")


def _keep_worker(env: dict[str, str], stop: threading.Event) -> None:
    """Run the worker beside the web server, restarting it if it ever exits."""
    child = _start_worker_process(env)
    while not stop.wait(2):
        if child.poll() is not None:
            click.echo(f"worker exited ({child.returncode}); starting another", err=True)
            child = _start_worker_process(env)
    child.terminate()
    try:
        child.wait(timeout=10)
    except subprocess.TimeoutExpired:
        child.kill()


@main.command()
@click.option("--burst", is_flag=True, help="Stop when the queue is empty.")
def worker(burst: bool) -> None:
    """Run a queue worker (jobs: deliveries, comments, reminders)."""
    import time

    import redis
    from rq import SimpleWorker

    settings = Settings.from_env()
    require_rules(settings)
    configure_logging(settings)
    runtime = Runtime.build(settings, migrate=settings.migrate_on_start)
    # rq checks its scheduler child (which moves due retries back into the queue) and its
    # registries only every maintenance interval, 10 minutes by default: after a Redis
    # outage that killed the child, retries would sit scheduled that long. An idle
    # worker waits for a job for worker_ttl - 15 s before it looks again: keep that short.
    # rq rides out short Redis blips inside its loop, but some of its calls (heartbeat,
    # registration) end work() with a connection error: start it again, waiting longer
    # each time (up to RECONNECT_MAX), instead of exiting.
    runtime.redis.ping()  # unreachable at the start: a setting to fix, said in one line
    log = logging.getLogger("leaderleader.worker")
    pause = 1.0
    while True:
        try:
            with runtime.activate():
                SimpleWorker([runtime.queue], connection=runtime.redis,
                             maintenance_interval=settings.worker_maintenance_seconds,
                             worker_ttl=settings.worker_maintenance_seconds + 15).work(
                    burst=burst, with_scheduler=True, logging_level="WARNING"
                )
            return
        except redis.RedisError as error:
            log.warning("worker.redis_lost", extra={"reason": _one_line(error), "retry_in": pause})
            time.sleep(pause)
            pause = min(pause * 2, RECONNECT_MAX)


@main.command()
@click.option("--every", default=ROUND_EVERY, show_default=True,
              type=click.IntRange(1, 86400), help="Seconds between rounds.")
@click.option("--once", is_flag=True, help="Run one round and exit (for cron).")
def scheduler(every: int, once: bool) -> None:
    """Queue due reminders; re-queue comments left pending and deliveries that failed."""
    import time

    import redis
    from sqlalchemy.exc import SQLAlchemyError

    from jobs.rounds import run_round

    settings = Settings.from_env()
    require_rules(settings)
    configure_logging(settings)
    runtime = Runtime.build(settings, migrate=settings.migrate_on_start)
    runtime.redis.ping()  # unreachable at the start: a setting to fix, said in one line
    if once:
        with runtime.activate():
            click.echo(str(run_round(runtime)))
        return
    log = logging.getLogger("leaderleader.scheduler")
    pause = 0.0
    while True:
        # A Redis or database outage fails a round; the scheduler tries again soon (1 s,
        # then longer each time, up to RECONNECT_MAX and never longer than a round) and
        # carries on, instead of exiting and waiting to be restarted: the round that
        # follows an outage has work to do (a dead worker's deliveries, pending comments).
        try:
            with runtime.activate():
                done = run_round(runtime)
        except (redis.RedisError, SQLAlchemyError) as error:
            pause = min(max(pause * 2, 1.0), RECONNECT_MAX, float(every))
            log.warning("scheduler.round.failed", extra={"reason": _one_line(error),
                                                         "retry_in": pause})
            time.sleep(pause)
            continue
        pause = 0.0
        if done:
            click.echo(str(done))
        time.sleep(every)


@main.command()
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
def demo() -> None:
    """Replay bundled sample webhooks through the whole system in a scratch home (dry-run).

    The demo never touches the configured ledger, queue or Redis: it runs on its own
    SQLite file and embedded Redis in a temporary folder, removed when it ends.
    """
    from leaderleader.demo import run_demo

    run_demo(click.echo)


@main.group()
def db() -> None:
    """The ledger's database."""


@db.command("upgrade")
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
from leaderleader.cli_pilot import comments, import_people, rules_init  # noqa: E402
from leaderleader.cli_rules import rules  # noqa: E402

rules.add_command(rules_init)
rules.add_command(import_people)
main.add_command(rules)
main.add_command(backfill)
main.add_command(simulate)
main.add_command(comments)


if __name__ == "__main__":
    main()
