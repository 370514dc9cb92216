"""Backfill from Jira and simulate over the ledger, through the CLI, on the fake Jira."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from leaderleader.cli import main
from ledger.db import make_engine, make_sessionmaker
from ledger.models import ApprovalWait, Comment
from service.settings import Settings
from tests.fakejira import FakeJira

BOB, DANA, CAROL = "5b10a2844c20165700ede21g", "dana.k", "carol.s"


def _history(n: int, day: int, hour: int, frm: str, to: str, assignee=None) -> dict:
    items = [{"field": "status", "fieldId": "status", "fromString": frm, "toString": to}]
    if assignee:
        items.append({"field": "assignee", "fieldId": "assignee", "from": assignee[0], "to": assignee[1],
                      "fromString": assignee[0], "toString": assignee[1]})
    return {"id": str(n), "created": f"2026-05-{day:02d}T{hour:02d}:00:00.000+0000", "items": items}


def _seed(fake: FakeJira, count: int, *, long_history_every: int = 0) -> None:
    """Tickets that went to approval: even ones are deploys sent to a director (flagged), odd
    ones purchases sent to a manager (the right level)."""
    for n in range(count):
        approver = DANA if n % 2 == 0 else CAROL
        day = 1 + n % 27
        histories = [
            _history(1, day, 9, "To Do", "In Progress"),
            _history(2, day, 10, "In Progress", "Awaiting Approval", (BOB, approver)),
            _history(3, day, 15, "Awaiting Approval", "In Progress", (approver, BOB)),
        ]
        if long_history_every and n % long_history_every == 0:
            # 30 label edits in between: more than the 20 entries Cloud embeds in a search
            histories[1:1] = [{"id": f"l{k}", "created": f"2026-05-{day:02d}T09:{k + 10:02d}:00.000+0000",
                               "items": [{"field": "labels", "fieldId": "labels", "toString": "x"}]}
                              for k in range(30)]
        fake.add_issue(f"PAY-{n + 1}", {
            "summary": f"Ticket {n + 1}", "project": {"key": "PAY"},
            "issuetype": {"name": "Task"}, "labels": ["deploy" if n % 2 == 0 else "purchase"],
            "status": {"name": "In Progress", "id": "3"}, "assignee": {"accountId": BOB},
            "reporter": {"accountId": BOB}, "created": f"2026-05-{day:02d}T08:00:00.000+0000",
            "updated": f"2026-05-{day:02d}T15:00:00.000+0000",
        }, histories)


def _env(fake: FakeJira, database_url: str) -> dict[str, str]:
    return {"JIRA_URL": fake.url, "JIRA_USER": "bot@acme.example", "JIRA_API_TOKEN": "t0ken-value",
            "DATABASE_URL": database_url, "REDIS_URL": "", "JIRA_PAT": ""}


def _waits(database_url: str) -> list[ApprovalWait]:
    engine = make_engine(Settings(database_url=database_url).effective_database_url)
    with make_sessionmaker(engine)() as session:
        waits = list(session.scalars(select(ApprovalWait).order_by(ApprovalWait.issue_key)))
        assert session.scalar(select(func.count()).select_from(Comment)) == 0  # posts nothing
    engine.dispose()
    return waits


def test_backfill_imports_waits_with_few_calls_and_reruns_cleanly(fake_jira, database_url):
    _seed(fake_jira, 300)
    runner = CliRunner()
    result = runner.invoke(main, ["backfill", "--jql", "project = PAY", "--since", "400d"],
                           env=_env(fake_jira, database_url))
    assert result.exit_code == 0, result.output
    assert "imported 300 ticket(s) (0 already up to date), 300 approval wait(s), " \
           "150 that would have been flagged" in result.output
    # serverInfo + 3 search pages of 100; no changelog calls when histories fit
    assert fake_jira.count("GET", r"/search/jql$") == 3
    assert fake_jira.count("GET", r"/changelog$") == 0
    assert len(fake_jira.requests) <= 300 / 100 + 2
    waits = _waits(database_url)
    assert len(waits) == 300 and sum(w.flagged for w in waits) == 150
    flagged = next(w for w in waits if w.flagged)
    assert (flagged.approver, flagged.holder, flagged.decider, flagged.source) == (
        "dana", "bob", "bob", "backfill")
    assert (flagged.ended_at - flagged.started_at).total_seconds() == 5 * 3600

    again = runner.invoke(main, ["backfill", "--jql", "project = PAY"], env=_env(fake_jira, database_url))
    assert again.exit_code == 0, again.output
    assert "imported 0 ticket(s) (300 already up to date), 0 approval wait(s)" in again.output
    assert len(_waits(database_url)) == 300


def test_backfill_pages_truncated_changelogs_only(fake_jira, database_url):
    _seed(fake_jira, 40, long_history_every=10)
    result = CliRunner().invoke(main, ["backfill", "--jql", "project = PAY"],
                                env=_env(fake_jira, database_url))
    assert result.exit_code == 0, result.output
    assert fake_jira.count("GET", r"/changelog$") == 4
    assert len(_waits(database_url)) == 40


def test_backfill_on_data_center_uses_start_at_paging(database_url):
    with FakeJira(deployment="Server") as fake:
        _seed(fake, 250)
        env = {**_env(fake, database_url), "JIRA_USER": "", "JIRA_API_TOKEN": "", "JIRA_PAT": "pat"}
        result = CliRunner().invoke(main, ["backfill", "--jql", "project = PAY"], env=env)
        assert result.exit_code == 0, result.output
        assert fake.count("GET", r"/rest/api/2/search$") == 3
    assert len(_waits(database_url)) == 250


def test_backfill_resumes_after_an_interruption(fake_jira, database_url):
    _seed(fake_jira, 120)
    # first run: the second search page fails for good (a 4xx is not retried)
    original = fake_jira._search

    calls = {"n": 0}

    def flaky(cloud: bool):
        calls["n"] += 1
        if calls["n"] == 2:
            from tests.fakejira import _error

            return _error(400, "interrupted")
        return original(cloud)

    fake_jira._search = flaky  # type: ignore[method-assign]
    first = CliRunner().invoke(main, ["backfill", "--jql", "project = PAY"], env=_env(fake_jira, database_url))
    assert first.exit_code == 1
    assert first.output.strip().endswith("Error: Jira refused the backfill: searching: Jira answered 400 (interrupted)")
    assert len(_waits(database_url)) == 100  # the first page was kept
    second = CliRunner().invoke(main, ["backfill", "--jql", "project = PAY"], env=_env(fake_jira, database_url))
    assert second.exit_code == 0, second.output
    assert "imported 20 ticket(s) (100 already up to date)" in second.output
    assert len(_waits(database_url)) == 120


def test_simulate_replays_current_rules_over_the_ledger(fake_jira, database_url, tmp_path):
    _seed(fake_jira, 10)
    env = _env(fake_jira, database_url)
    assert CliRunner().invoke(main, ["backfill", "--jql", "project = PAY"], env=env).exit_code == 0
    result = CliRunner().invoke(main, ["simulate"], env=env)
    assert result.exit_code == 0, result.output
    assert result.output.count("FLAG        PAY-") == 5
    assert "10 wait(s): 5 would be flagged by these rules; 0 verdict(s) differ" in result.output
    # a looser tolerance: nothing would be flagged any more
    from service.settings import EXAMPLE_RULES

    looser = tmp_path / "rules.yaml"
    looser.write_text(EXAMPLE_RULES.read_text().replace("tolerance: 0 ", "tolerance: 3 "))
    result = CliRunner().invoke(main, ["simulate"], env={**env, "RULES_FILE": str(looser)})
    assert "10 wait(s): 0 would be flagged by these rules; 5 verdict(s) differ" in result.output


@pytest.mark.parametrize("args, message", [
    (["backfill", "--jql", "x", "--since", "ninety"], "Error: --since must look like 90d, 12w or 36h, not 'ninety'"),
    (["simulate", "--since", "3 days"], "Error: --since must look like 90d, 12w or 36h, not '3 days'"),
])
def test_bad_arguments_end_in_one_line(args, message, fake_jira, database_url):
    result = CliRunner().invoke(main, args, env=_env(fake_jira, database_url))
    assert result.exit_code == 1 and result.output.strip() == message


def _status(frm: tuple[str, str], to: tuple[str, str], dc: bool) -> dict:
    item = {"field": "status", "fieldId": "status", "from": frm[1], "fromString": frm[0],
            "to": to[1], "toString": to[0]}
    if dc:
        item.pop("fieldId")  # older Data Center items name the field only
    return item


def _approver(frm: str | None, to: str | None) -> dict:
    return {"field": "Approver", "fieldtype": "custom", "fieldId": "customfield_10050",
            "from": frm, "fromString": frm, "to": to, "toString": to}


@pytest.mark.parametrize("deployment", ["Cloud", "Server"])
def test_backfill_reads_status_ids_and_the_approver_field_as_they_were(deployment, database_url, tmp_path):
    """A status named by id, and the approver field's value when the wait began (SPEC §5);
    the approver field alone makes no wait while the file names statuses."""
    from service.settings import EXAMPLE_RULES

    dc = deployment == "Server"
    rules = tmp_path / "rules.yaml"
    rules.write_text(EXAMPLE_RULES.read_text().replace(
        'statuses: ["Awaiting Approval", "Pending Sign-off"]', 'statuses: ["Awaiting Approval", "10200"]'))
    progress, waiting, pending = ("In Progress", "3"), ("Awaiting Approval", "10100"), ("Pending CFO", "10200")

    def at(day: int, hour: int) -> str:
        return f"2026-05-{day:02d}T{hour:02d}:00:00.000+0000"

    fields = {"project": {"key": "PAY"}, "issuetype": {"name": "Task"}, "labels": ["deploy"],
              "status": {"name": "In Progress", "id": "3"}, "assignee": {"accountId": BOB},
              "reporter": {"accountId": BOB}, "created": at(1, 8), "updated": at(9, 8)}
    with FakeJira(deployment=deployment) as fake:
        fake.add_issue("PAY-1", {**fields, "summary": "only by id"}, [
            {"id": "1", "created": at(2, 9), "items": [_status(progress, pending, dc)]},
            {"id": "2", "created": at(2, 12), "items": [_status(pending, progress, dc)]},
        ])
        fake.add_issue("PAY-2", {**fields, "summary": "approver changes"}, [
            {"id": "3", "created": at(3, 9), "items": [_status(progress, waiting, dc), _approver(None, CAROL)]},
            {"id": "4", "created": at(3, 10), "items": [_approver(CAROL, DANA)]},
            {"id": "5", "created": at(3, 11), "items": [_status(waiting, progress, dc), _approver(DANA, None)]},
        ])
        fake.add_issue("PAY-3", {**fields, "summary": "approver field only"}, [
            {"id": "6", "created": at(4, 9), "items": [_approver(None, DANA)]},
            {"id": "7", "created": at(4, 13), "items": [_approver(DANA, None)]},
        ])
        env = {**_env(fake, database_url), "RULES_FILE": str(rules)}
        if dc:
            env.update(JIRA_USER="", JIRA_API_TOKEN="", JIRA_PAT="pat")
        result = CliRunner().invoke(main, ["backfill", "--jql", "project = PAY"], env=env)
        assert result.exit_code == 0, result.output
    got = [(w.issue_key, w.status, w.started_at.day, w.started_at.hour, w.ended_at.hour, w.approver, w.flagged)
           for w in _waits(database_url)]
    assert got == [
        ("PAY-1", "Pending CFO", 2, 9, 12, "bob", False),  # waits on its assignee, bob: no flag
        ("PAY-2", "Awaiting Approval", 3, 9, 11, "carol", True),  # carol when it began
        # PAY-3 never entered an approval status: a filled approver field is no wait
    ]


@pytest.mark.parametrize("since", ["99999999999d", "²d", "9\u0669d"])
def test_since_out_of_range_or_odd_digits_ends_in_one_line(since, fake_jira, database_url):
    for command in ("backfill", "simulate"):
        args = [command, "--since", since] + (["--jql", "project = PAY"] if command == "backfill" else [])
        result = CliRunner().invoke(main, args, env=_env(fake_jira, database_url))
        assert result.exit_code == 1 and len(result.output.strip().splitlines()) == 1, result.output
        assert result.output.startswith("Error: --since "), result.output
    assert fake_jira.jqls == []


def test_since_is_sent_to_jira_normalised(fake_jira, database_url):
    _seed(fake_jira, 2)
    result = CliRunner().invoke(main, ["backfill", "--jql", "project = PAY", "--since", " 90D "],
                                env=_env(fake_jira, database_url))
    assert result.exit_code == 0, result.output
    assert fake_jira.jqls == ["(project = PAY) AND updated >= -90d ORDER BY created ASC"]


def test_a_jira_error_page_in_html_ends_in_one_readable_line(fake_jira, database_url):
    fake_jira.fail_next("GET", r"/search/jql$", 401,
                        body="<html>\n<head><title>Unauthorized</title></head>\n<body>\n<h1>Unauthorized"
                             "</h1>\n<p>Basic auth failed</p>\n</body>\n</html>\n")
    result = CliRunner().invoke(main, ["backfill", "--jql", "project = PAY"], env=_env(fake_jira, database_url))
    assert result.exit_code == 1
    assert result.output.strip().splitlines()[-1] == (
        "Error: Jira refused the backfill: searching: Jira answered 401 (Unauthorized Unauthorized "
        "Basic auth failed)")


def test_backfill_after_webhooks_imports_the_older_history_without_doubling(
    make_app, fake_jira, database_url
):
    """Installed first, backfilled later: the ticket the webhooks saw keeps one copy of its
    current wait and gains the waits from before installation."""
    from tests.conftest import fixture_body, fixture_json, post_webhook, run_worker

    deploy = "issue_updated__cloud_deploy_handed_to_director"
    app = make_app()
    assert post_webhook(app, fixture_body(deploy)).status_code == 202
    run_worker(app)
    fields = fixture_json(deploy)["issue"]["fields"]
    fake_jira.add_issue("PAY-101", fields, [
        _history(1, 4, 10, "In Progress", "Awaiting Approval", (BOB, DANA)),
        _history(2, 4, 15, "Awaiting Approval", "In Progress", (DANA, BOB)),
        # the webhook's own transition; Jira's changelog time is half a second off its timestamp
        {"id": "10431", "created": "2026-11-20T10:15:02.011+0000", "items": [
            {"field": "status", "fieldId": "status", "fromString": "In Progress",
             "toString": "Awaiting Approval"},
            {"field": "assignee", "fieldId": "assignee", "from": BOB, "to": DANA}]},
    ])
    for _ in range(2):  # and a re-run changes nothing
        result = CliRunner().invoke(main, ["backfill", "--jql", "project = PAY"],
                                    env=_env(fake_jira, database_url))
        assert result.exit_code == 0, result.output
    waits = sorted((w.started_at.isoformat(timespec="seconds"), w.source, w.ended_at is None)
                   for w in _waits_of(database_url, "PAY-101"))
    assert waits == [("2026-05-04T10:00:00", "backfill", False),
                     ("2026-11-20T10:15:02", "webhook", True)]


def _waits_of(database_url: str, key: str) -> list[ApprovalWait]:
    engine = make_engine(Settings(database_url=database_url).effective_database_url)
    with make_sessionmaker(engine)() as session:
        waits = list(session.scalars(select(ApprovalWait).where(ApprovalWait.issue_key == key)))
    engine.dispose()
    return waits


def test_in_and_out_of_approval_with_the_approver_field_filled_is_one_wait_per_stay(
    fake_jira, database_url
):
    """Jira leaves the approver field filled: each stay in the approval status is a wait."""
    waiting, progress = ("Awaiting Approval", "10050"), ("In Progress", "3")
    histories = [{"id": "1", "created": "2026-05-01T09:00:00.000+0000",
                  "items": [_approver(None, DANA)]}]
    for day in range(2, 14):  # twelve round trips, the field set all along
        histories.append({"id": str(2 * day), "created": f"2026-05-{day:02d}T09:00:00.000+0000",
                          "items": [_status(progress, waiting, False)]})
        histories.append({"id": str(2 * day + 1), "created": f"2026-05-{day:02d}T11:00:00.000+0000",
                          "items": [_status(waiting, progress, False)]})
    fake_jira.add_issue("PAY-9", {
        "summary": "back and forth", "project": {"key": "PAY"}, "issuetype": {"name": "Task"},
        "labels": ["deploy"], "status": {"name": "In Progress", "id": "3"},
        "assignee": {"accountId": BOB}, "reporter": {"accountId": BOB},
        "customfield_10050": {"accountId": DANA}, "created": "2026-05-01T08:00:00.000+0000",
        "updated": "2026-05-13T11:00:00.000+0000"}, histories)
    result = CliRunner().invoke(main, ["backfill", "--jql", "project = PAY"],
                                env=_env(fake_jira, database_url))
    assert result.exit_code == 0, result.output
    waits = _waits(database_url)
    assert [(w.started_at.day, w.started_at.hour, w.ended_at.hour, w.approver) for w in
            sorted(waits, key=lambda w: w.started_at)] == [(d, 9, 11, "dana") for d in range(2, 14)]
