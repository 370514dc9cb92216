"""The report's tallies, kept by triggers as waits are written, add up to what grouping
every wait gives (pass 1's counts and ``delegation``'s): after inserts, ends, re-bounds, reopenings, changed approvers, teams,
rules, flags and intents, deleted and restored tickets, removed waits, and folds.

On PostgreSQL the tallies are compared with pass 1's own grouping of the waits after
every few changes (waits are whole seconds, so every sum is exact in any order). SQLite
keeps no tallies: its report scans, and the table stays empty whatever is written.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.orm import Session

from ledger import tallies
from ledger.db import make_engine, make_sessionmaker, upgrade
from ledger.figures import FINEST, Dialect, Window, window_conditions
from ledger.models import ApprovalWait as W
from ledger.models import TicketRecord, delegation_tallies, wait_tallies
from ledger.report_postgres import _counts
from service.settings import Settings

START = datetime(2026, 6, 1)
PEOPLE = [("dana", "director"), ("carol", "manager"), (None, None), ("bob", "engineer")]


@pytest.fixture()
def session(database_url: str) -> Iterator[Session]:
    engine = make_engine(Settings(database_url=database_url).effective_database_url)
    upgrade(engine)
    with make_sessionmaker(engine)() as session:
        yield session
    engine.dispose()


def _grouped(session: Session) -> dict[tuple[Any, ...], tuple[Any, ...]]:
    """Pass 1's counts per finest group and bucket, by grouping every wait in the window."""
    query = (select(*_counts(Dialect(session), *FINEST)).where(*window_conditions(Window()))
             .group_by(*FINEST, "bucket"))
    return {tuple(row[:5]): tuple(row[5:]) for row in session.execute(query)}


def _tallied(session: Session) -> dict[tuple[Any, ...], tuple[Any, ...]]:
    return {tuple(row[:5]): tuple(row[5:]) for row in session.execute(tallies.finest_counts())}


def _decided(session: Session) -> dict[tuple[Any, ...], tuple[Any, ...]]:
    """``delegation``'s counts by grouping the ended waits (``ledger.loop.delegation``)."""
    week = Dialect(session).week_start(W.ended_at)
    query = (select(week, W.approver_level, W.decision_level, func.count(),
                    func.count().filter(W.first_intent_at <= W.ended_at))
             .where(*window_conditions(Window()), W.ended_at.is_not(None))
             .group_by(week, W.approver_level, W.decision_level))
    return {tuple(row[:3]): tuple(row[3:]) for row in session.execute(query)}


def _decisions_tallied(session: Session) -> dict[tuple[Any, ...], tuple[Any, ...]]:
    return {tuple(row[:3]): tuple(row[3:]) for row in session.execute(tallies.decisions())}


def _new_ticket(session: Session, rng: random.Random, number: int) -> None:
    session.execute(insert(TicketRecord).values(
        id=number, key=f"T-{number}", project="T", summary="", labels=[], components=[],
        fields={}, deleted=rng.random() < 0.1))
    started = START + timedelta(hours=rng.randrange(0, 2000))
    for stay in range(rng.randrange(1, 4)):
        begin = started + timedelta(days=30 * stay)
        ended = None if rng.random() < 0.3 else begin + timedelta(seconds=rng.randrange(-60, 9 ** 7))
        approver, level = rng.choice(PEOPLE)
        session.execute(insert(W).values(
            ticket_id=number, issue_key=f"T-{number}", project="T", status="Approval",
            started_at=begin, ended_at=ended, approver=approver, approver_level=level,
            team=rng.choice(["payments", None]), decision_rule=rng.choice(["deploy", None]),
            flagged=rng.random() < 0.4, unmapped=[], verdict={}, ticket_snapshot={},
            wait_seconds=None if ended is None or rng.random() < 0.3
            else (ended - begin).total_seconds(),
            first_intent_at=begin if rng.random() < 0.2 else None))


def _change(session: Session, rng: random.Random) -> None:
    """One random change to a random wait or ticket, as the ledger's writers make them."""
    ids = session.scalars(select(W.id).order_by(W.id)).all()
    if not ids:
        return
    wait = session.get_one(W, rng.choice(ids))  # chosen by the seed: a failure replays
    kind = rng.randrange(9)
    if kind == 0 and wait.ended_at is None:  # the wait ends (duration stored or not)
        wait.ended_at = wait.started_at + timedelta(seconds=rng.randrange(0, 9 ** 7))
        wait.wait_seconds = (wait.ended_at - wait.started_at).total_seconds() \
            if rng.random() < 0.7 else None
    elif kind == 1 and wait.ended_at is not None:  # an inferred end moved, or reopened
        if rng.random() < 0.5:
            wait.ended_at, wait.wait_seconds = None, None
        else:
            wait.ended_at += timedelta(seconds=rng.randrange(1, 9 ** 6))
            wait.wait_seconds = (wait.ended_at - wait.started_at).total_seconds()
    elif kind == 2:
        wait.approver, wait.approver_level = rng.choice(PEOPLE)
    elif kind == 3:
        wait.team, wait.decision_rule = rng.choice([("platform", "spend"), (None, "deploy")])
        wait.decision_level = rng.choice(["director", None])
    elif kind == 4:
        wait.flagged = not wait.flagged
    elif kind == 5:  # an intent, before the end or after it
        wait.first_intent_at = None if wait.first_intent_at else wait.started_at + timedelta(
            seconds=rng.choice([0, 9 ** 7]))
    elif kind == 6:  # a ticket deleted in Jira, or back again
        session.execute(update(TicketRecord).where(TicketRecord.id == wait.ticket_id)
                        .values(deleted=~TicketRecord.deleted))
    elif kind == 7:
        session.execute(delete(W).where(W.id == wait.id))
    else:  # nothing the counts depend on: no row appended
        before = session.scalar(select(func.count()).select_from(wait_tallies))
        session.execute(update(W).where(W.id == wait.id)
                        .values(reply="acknowledged", status="Still Approval"))
        assert session.scalar(select(func.count()).select_from(wait_tallies)) == before
    session.flush()


@pytest.mark.parametrize("seed", range(5))
def test_the_tallies_add_up_to_the_waits_through_every_change(session: Session, seed: int) -> None:
    rng = random.Random(seed)
    postgres = Dialect(session).postgres
    for step in range(40):
        for _ in range(rng.randrange(0, 4)):
            _new_ticket(session, rng, number=step * 10 + _ + 1)
        for _ in range(rng.randrange(0, 8)):
            _change(session, rng)
        if rng.random() < 0.2:
            tallies.fold(session)
        session.commit()
        if postgres:
            assert _tallied(session) == _grouped(session), step
            assert _decisions_tallied(session) == _decided(session), step
    if not postgres:
        for table in (wait_tallies, delegation_tallies):
            assert session.scalar(select(func.count()).select_from(table)) == 0
        return
    rows = session.scalar(select(func.count()).select_from(wait_tallies))
    tallies.fold(session)
    session.commit()
    assert _tallied(session) == _grouped(session)
    assert _decisions_tallied(session) == _decided(session)
    folded = session.scalar(select(func.count()).select_from(wait_tallies))
    assert folded == len(_grouped(session)) <= rows  # one row per group after a fold


def test_the_report_reads_the_tallies_only_for_all_history_unfiltered(
    session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not Dialect(session).postgres:  # SQLite keeps none
        assert not tallies.usable(session, Window())
        return
    assert tallies.usable(session, Window()) and tallies.usable(session, Window(), delegation_tallies)
    for window in (Window(since=START), Window(until=START), Window(project="T"),
                   Window(team="payments")):
        assert not tallies.usable(session, window)
    session.execute(insert(wait_tallies), [
        {"episodes": 1, "flagged": 0, "ended": 0, "after_intent": 0, "waits": 0, "total": 0.0}
        for _ in range(3)])
    monkeypatch.setattr(tallies, "READ_AT_MOST", 3)  # unfolded for too long: the waits instead
    assert not tallies.usable(session, Window())
    session.rollback()
