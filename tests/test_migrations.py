"""The migrations build the schema the ORM models describe, and step back down."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from ledger.db import alembic_config, make_engine, upgrade
from ledger.models import Base
from service.settings import Settings


def _differences(url: str) -> list[object]:
    engine = make_engine(url)

    def on_this_database(thing: object, name: str | None, kind: str, *_: object) -> bool:
        """Migration 0010's expression index, PostgreSQL's alone, is not in the models."""
        return not (kind == "index" and name == "ix_waits_unmapped")

    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(
                connection, opts={"include_object": on_this_database})
            return list(compare_metadata(context, Base.metadata))
    finally:
        engine.dispose()


def test_the_migrated_schema_is_the_models(database_url: str) -> None:
    """On SQLite, or the PostgreSQL the suite runs on (migrated once for the session)."""
    url = Settings(database_url=database_url).effective_database_url
    if url.startswith("sqlite"):
        engine = make_engine(url)
        upgrade(engine)
        engine.dispose()
    assert _differences(url) == []
    engine = make_engine(url)
    indexes = {index["name"] for index in inspect(engine).get_indexes("approval_waits")}
    engine.dispose()
    assert ("ix_waits_unmapped" in indexes) is url.startswith("postgresql")


def test_delivery_detail_is_dropped_and_comes_back_on_downgrade(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'ledger.db'}")

    def columns() -> set[str]:
        return {column["name"] for column in inspect(engine).get_columns("deliveries")}

    upgrade(engine)
    assert "detail" not in columns() and {"outcome", "body"} <= columns()
    command.downgrade(alembic_config(engine), "0004")
    assert "detail" in columns()
    upgrade(engine)
    assert "detail" not in columns()
    engine.dispose()
