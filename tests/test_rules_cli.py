"""The rules file from the command line: ``rules check`` (alone, against the ledger) and
``rules explain``, each mistake said in one line."""

from __future__ import annotations


import pytest
from click.testing import CliRunner

from leaderleader.cli import main
from rules.loader import RulesError, load_rules
from service.settings import EXAMPLE_RULES
from tests.test_rules_file import GOOD, edit


def test_rules_check_command(tmp_path):
    good = tmp_path / "rules.yaml"
    good.write_text(GOOD)
    result = CliRunner().invoke(main, ["rules", "check", str(good)])
    assert result.exit_code == 0
    assert "ok (4 people, 4 levels, 2 decision rules)" in result.output
    bad = tmp_path / "bad.yaml"
    bad.write_text(edit("  tolerance: 0", "  tolerence: 0"))
    result = CliRunner().invoke(main, ["rules", "check", str(bad)])
    assert result.exit_code == 1
    assert f"{bad}:20: unknown key 'tolerence' in flag; did you mean 'tolerance'?" in result.output
    missing = CliRunner().invoke(main, ["rules", "check", str(tmp_path / "nope.yaml")])
    assert missing.exit_code == 1 and missing.output.strip() == f"Error: {tmp_path / 'nope.yaml'}: no such file"


def test_rules_check_against_the_ledger_lists_missing_people(make_app, database_url, tmp_path):
    from tests.conftest import fixture_body, post_webhook, run_worker

    app = make_app()
    post_webhook(app, fixture_body("issue_updated__cloud_unmapped_approver"))
    run_worker(app)
    env = {"DATABASE_URL": database_url}
    result = CliRunner().invoke(main, ["rules", "check", str(EXAMPLE_RULES), "--against-ledger"], env=env)
    assert result.exit_code == 0, result.output
    assert (f"not in {EXAMPLE_RULES}: Sam Outsider (712020:0a1b2c3d-4e5f-6789-abcd-ef0123456789) "
            "(1 approval wait(s) in the ledger)") in result.output
    fixed = tmp_path / "rules.yaml"
    fixed.write_text(EXAMPLE_RULES.read_text().replace(
        "people:\n", "people:\n  sam: {jira: \"712020:0a1b2c3d-4e5f-6789-abcd-ef0123456789\", "
                     "name: Sam, level: manager, reports_to: dana}\n", 1))
    result = CliRunner().invoke(main, ["rules", "check", str(fixed), "--against-ledger"], env=env)
    assert "everyone the ledger has seen is in the file" in result.output


def test_rules_check_against_the_ledger_of_a_fresh_home_says_so_before_any_ok(tmp_path):
    home = tmp_path / "home"
    result = CliRunner().invoke(main, ["rules", "check", str(EXAMPLE_RULES), "--against-ledger"],
                                env={"LEADERLEADER_HOME": str(home), "DATABASE_URL": ""})
    assert result.exit_code == 1
    ledger = (home / "leaderleader.db").resolve()
    assert result.output.strip() == (
        f"Error: there is no ledger yet at {ledger}: set LEADERLEADER_HOME or DATABASE_URL to "
        "the service's ledger")
    assert not home.exists()  # no empty database left behind


# -- odd files, odd values, odd keys -------------------------------------------------------


def test_a_file_that_is_not_utf8_is_a_located_problem(tmp_path):
    path = tmp_path / "rules.yaml"
    path.write_bytes(GOOD.replace("name: Dana", "name: Dan\xe1").encode("latin-1"))
    with pytest.raises(RulesError) as caught:
        load_rules(path)
    assert [str(p) for p in caught.value.problems] == [
        f"{path}:7: the file is not UTF-8 text (byte 0xe1); save it as UTF-8"
    ]
    result = CliRunner().invoke(main, ["rules", "check", str(path)])
    assert result.exit_code == 1
    assert f"{path}:7: the file is not UTF-8 text (byte 0xe1); save it as UTF-8" in result.output


def test_rules_check_reports_an_unreadable_file_in_one_line(tmp_path, monkeypatch):
    path = tmp_path / "rules.yaml"
    path.write_text(GOOD)

    def refuse(_path):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr("leaderleader.cli_rules.check_rules", refuse)
    result = CliRunner().invoke(main, ["rules", "check", str(path)])
    assert result.exit_code == 1
    assert result.output.strip() == f"Error: {path}: cannot read the file (Permission denied)"


@pytest.mark.parametrize("key", ["../../serverInfo", "PAY-1?x=1", "", "PAY 1"])
def test_rules_explain_refuses_what_is_not_an_issue_key(fake_jira, key):
    env = {"JIRA_URL": fake_jira.url, "JIRA_USER": "bot@acme.example", "JIRA_API_TOKEN": "t0ken-value"}
    result = CliRunner().invoke(main, ["rules", "explain", key], env=env)
    assert result.exit_code == 1
    assert result.output.strip() == f"Error: '{key}' is not an issue key (write it like PAY-123)"
    assert fake_jira.requests == []


def test_rules_explain_without_jira_or_a_ledger_says_so(tmp_path):
    env = {"JIRA_URL": "", "DATABASE_URL": f"sqlite:///{tmp_path / 'empty.db'}"}
    result = CliRunner().invoke(main, ["rules", "explain", "PAY-1"], env=env)
    assert result.exit_code == 1
    assert result.output.strip() == (
        f"Error: there is no ledger yet at {tmp_path / 'empty.db'}: set LEADERLEADER_HOME or "
        "DATABASE_URL to the service's ledger, or set JIRA_URL to fetch the ticket from Jira"
    )
    assert not (tmp_path / "empty.db").exists()
