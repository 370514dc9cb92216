"""Engine, sessions and schema migrations for the ledger."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from itertools import chain
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, String, create_engine, event, inspect
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def make_engine(url: str) -> Engine:
    """An engine tuned for the backend: SQLite in WAL mode so web and worker can share it."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record):  # type: ignore[no-untyped-def]
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        return engine
    return create_engine(url, pool_pre_ping=True)


def fit(column_type: Any, value: Any) -> Any:
    """``value`` cut to the length of its text column, if it is longer."""
    length = column_type.length if isinstance(column_type, String) else None
    return value[:length] if length and isinstance(value, str) and len(value) > length else value


def _cut_to_fit(session: Session, _context: Any, _instances: Any) -> None:
    """Cut text longer than its column (a 300-character priority name from Jira).

    PostgreSQL refuses such a row, and a delivery that can never be stored would be
    retried for ever; SQLite would keep it whole. Identifiers are checked at the door.
    """
    for obj in chain(session.new, session.dirty):
        for attribute in inspect(obj).mapper.column_attrs:
            value = getattr(obj, attribute.key)
            fitted = fit(attribute.columns[0].type, value)
            if fitted is not value:
                setattr(obj, attribute.key, fitted)


def insert_new(session: Session, model: Any, values: dict[str, Any], unique: list[str] | None) -> Any:
    """INSERT a row unless one with the same ``unique`` key exists; its id, or None.

    ``unique=None``: unless the row conflicts with any of the table's unique keys.

    One statement (``ON CONFLICT DO NOTHING RETURNING id``) instead of a savepoint
    around an ORM insert: this is on every delivery's path. Text is cut to fit its
    column, as for ORM rows.
    """
    from sqlalchemy.dialects import postgresql, sqlite

    postgres = session.get_bind().dialect.name == "postgresql"
    insert: Any = postgresql.insert if postgres else sqlite.insert
    table = model.__table__
    fitted = {name: fit(table.c[name].type, value) for name, value in values.items()}
    statement = (insert(table).values(**fitted)
                 .on_conflict_do_nothing(index_elements=unique).returning(table.c.id))
    if unique is None:
        statement = insert(table).values(**fitted).on_conflict_do_nothing().returning(table.c.id)
    return session.scalar(statement)


def insert_new_many(session: Session, model: Any, rows: Sequence[dict[str, Any]],
                    returning: Sequence[str] = ("id",)) -> list[Any]:
    """``insert_new`` for many rows in one statement; the ``returning`` columns of those inserted.

    Rows are inserted in the order given: callers that may race another worker on the same
    keys sort them, so both take the keys' locks in one order.
    """
    if not rows:
        return []
    from sqlalchemy.dialects import postgresql, sqlite

    postgres = session.get_bind().dialect.name == "postgresql"
    insert: Any = postgresql.insert if postgres else sqlite.insert
    table = model.__table__
    fitted = [{name: fit(table.c[name].type, value) for name, value in row.items()}
              for row in rows]
    statement = (insert(table).values(fitted).on_conflict_do_nothing()
                 .returning(*(table.c[name] for name in returning)))
    return list(session.execute(statement))


#: ``session.info`` key set while a drain batch applies without savepoints: a unique key
#: broken by a racing worker then fails the whole batch, which is applied again with them
UNGUARDED = "leaderleader.unguarded"


@contextmanager
def guarded(session: Session) -> Iterator[None]:
    """A savepoint around an insert another worker may race, unless the batch goes without."""
    with nullcontext() if session.info.get(UNGUARDED) else session.begin_nested():
        yield


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    sessions = sessionmaker(engine, expire_on_commit=False)
    event.listen(sessions, "before_flush", _cut_to_fit)
    return sessions


def alembic_config(engine: Engine) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["engine"] = engine
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the schema up to date; safe to run on every start and from many processes."""
    command.upgrade(alembic_config(engine), revision)
