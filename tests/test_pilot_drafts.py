"""Drafting rules for a pilot: ``rules init`` reads the fake Jira over real HTTP and writes a
draft that ``rules check`` accepts once levels are filled in; ``rules import-people``
resolves an HR export's emails through Jira's user search (Cloud and Server)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from leaderleader.cli import main
from tests.fakejira import FakeJira

# Cloud accountIds / Server usernames of the people on the seeded tickets
IDS = {
    "Cloud": {"bob": "5b10a2844c20165700ede21g", "dana": "5b10ac8d82e05b22cc7d4ef5",
              "zoe": "712020:0a1b2c3d-4e5f", "zoe2": "712020:99887766"},
    "Server": {"bob": "bob.li", "dana": "dana.k", "zoe": "zoe.a", "zoe2": "zoe.b"},
}


def _env(fake: FakeJira, **more: str) -> dict[str, str]:
    env = {"JIRA_URL": fake.url, "DATABASE_URL": "", "REDIS_URL": "", "RULES_FILE": ""}
    if fake.deployment == "Cloud":
        env.update(JIRA_USER="bot@acme.example", JIRA_API_TOKEN="t0ken", JIRA_PAT="")
    else:
        env.update(JIRA_USER="", JIRA_API_TOKEN="", JIRA_PAT="dc-pat")
    return {**env, **more}


def _user(fake: FakeJira, who: str, name: str) -> dict:
    jira_id = IDS[fake.deployment][who]
    if fake.deployment == "Cloud":
        return {"accountId": jira_id, "displayName": name, "accountType": "atlassian"}
    return {"name": jira_id, "key": f"JIRAUSER{abs(hash(jira_id)) % 10000}", "displayName": name}


def _seed(fake: FakeJira) -> None:
    bob, dana = _user(fake, "bob", "Bob Li"), _user(fake, "dana", "Dana K")
    zoe, zoe2 = _user(fake, "zoe", "Zoë Ångström"), _user(fake, "zoe2", "Zoe Brown")
    bot = ({"accountId": "557058:bot", "displayName": "Automation", "accountType": "app"}
           if fake.deployment == "Cloud" else None)
    base = {"project": {"key": "PAY"}, "issuetype": {"name": "Task"},
            "status": {"name": "In Progress", "id": "3"}, "updated": "2026-11-01T10:00:00.000+0000"}
    fake.add_issue("PAY-1", {**base, "summary": "Deploy", "assignee": bob, "reporter": bob,
                             "components": [{"name": "billing"}],
                             "customfield_10050": dana, "customfield_10051": [zoe2],
                             "comment": {"comments": [{"author": zoe, "body": "ok"}] +
                                         ([{"author": bot, "body": "bot"}] if bot else []),
                                         "total": 2}})
    fake.add_issue("PAY-2", {**base, "summary": "Spend", "assignee": None, "reporter": zoe,
                             "components": [{"name": "billing"}, {"name": "Invoices & PDFs"}]})
    fake.add_issue("OPS-3", {**base, "project": {"key": "OPS"}, "summary": "elsewhere",
                             "assignee": _user(fake, "zoe2", "Zoe Brown")})


@pytest.mark.parametrize("deployment", ["Cloud", "Server"])
def test_rules_init_drafts_a_file_rules_check_accepts_once_levels_are_filled(deployment, tmp_path):
    out = tmp_path / "rules.yaml"
    with FakeJira(deployment=deployment) as fake:
        _seed(fake)
        result = CliRunner().invoke(main, ["rules", "init", "--jql", "project = PAY", "--out", str(out)],
                                    env=_env(fake))
        assert result.exit_code == 0, result.output
        assert fake.jqls == ["project = PAY"]
    ids = IDS[deployment]
    draft = yaml.safe_load(out.read_text())
    # assignee, reporter, approver (the Approver picker) and comment author; never the bot,
    # nor the reviewer picker's user, nor OPS' people
    assert {h: (p["jira"], p["name"], p["level"]) for h, p in draft["people"].items()} == {
        "bob": (ids["bob"], "Bob Li", "TODO"), "dana": (ids["dana"], "Dana K", "TODO"),
        "zoe": (ids["zoe"], "Zoë Ångström", "TODO")}
    assert draft["waiting_for_approval"] == {"statuses": ["Awaiting Approval"],
                                             "approver_field": "customfield_10050"}
    assert draft["teams"] == {"billing": {"components": ["billing"]},
                              "invoices_pdfs": {"components": ["Invoices & PDFs"]},
                              "pay": {"projects": ["PAY"]}}
    assert draft["dry_run"] is True
    assert "# assignee 1, reporter 1" in out.read_text()  # where bob was seen

    check = CliRunner().invoke(main, ["rules", "check", str(out)])
    assert check.exit_code == 1
    errors = [line for line in check.stderr.splitlines()[:-1] if "warning" not in line]
    assert len(errors) == 3 and all(
        "level: unknown level 'TODO' (levels: engineer, tech_lead, manager, director, vp)" in e
        for e in errors), errors
    assert check.output.strip().splitlines()[-1] == f"Error: {out}: 3 problem(s); the rules were not accepted"

    out.write_text(out.read_text().replace("level: TODO", "level: engineer"))
    check = CliRunner().invoke(main, ["rules", "check", str(out)])
    assert check.exit_code == 0, check.output
    assert f"{out}: ok (3 people, 5 levels, 1 decision rules" in check.output


def test_rules_init_keeps_an_existing_file_unless_forced(fake_jira, tmp_path):
    _seed(fake_jira)
    out = tmp_path / "rules.yaml"
    out.write_text("mine\n")
    result = CliRunner().invoke(main, ["rules", "init", "--jql", "project = PAY", "--out", str(out)],
                                env=_env(fake_jira))
    assert result.exit_code == 1
    assert result.output.strip() == f"Error: {out} already exists; pass --force to overwrite it"
    assert out.read_text() == "mine\n" and fake_jira.requests == []  # Jira was not even asked
    forced = CliRunner().invoke(main, ["rules", "init", "--jql", "project = PAY", "--out", str(out),
                                       "--force"], env=_env(fake_jira))
    assert forced.exit_code == 0, forced.output
    assert out.read_text().startswith("# leaderleader rules: a DRAFT")


def test_rules_init_prints_the_draft_without_out(fake_jira):
    _seed(fake_jira)
    result = CliRunner().invoke(main, ["rules", "init", "--jql", "project = OPS"], env=_env(fake_jira))
    assert result.exit_code == 0, result.output
    draft = yaml.safe_load(result.stdout)
    assert list(draft["people"]) == ["zoe"] and draft["teams"] == {"ops": {"projects": ["OPS"]}}
    assert result.stderr.startswith("the draft: 1 people and 1 candidate team(s) from 1 ticket(s)")


@pytest.mark.parametrize("make_env, status, message", [
    (lambda fake: {"JIRA_URL": ""}, None,
     "Error: rules init needs JIRA_URL (and credentials) to read from Jira"),
    (lambda fake: {}, 400, "Error: cannot read Jira: searching: Jira answered 400 (injected 400)"),
    (lambda fake: {"JIRA_API_TOKEN": "wrong"}, 401, "Error: cannot read Jira: listing fields: "
     "Jira answered 401 (You are not authenticated. Authentication required to perform this "
     "operation.)"),
])
def test_rules_init_errors_end_in_one_line(make_env, status, message, tmp_path):
    with FakeJira(deployment="Cloud", token="t0ken") as fake:
        _seed(fake)
        if status == 400:
            fake.fail_next("GET", r"/search/jql$", 400)
        result = CliRunner().invoke(main, ["rules", "init", "--jql", "project = PAY", "--out",
                                           str(tmp_path / "r.yaml")], env={**_env(fake), **make_env(fake)})
    assert result.exit_code == 1
    assert result.output.strip() == message
    assert not (tmp_path / "r.yaml").exists()


# -- import-people ----------------------------------------------------------------------

CSV = """email,name,title,manager_email
bob.li@acme.example,Bob Li,Engineer,alice.ng@acme.example
alice.ng@acme.example,Alice Ng,Tech Lead,carol.s@acme.example
carol.s@acme.example,Carol S,Engineering Manager,dana.k@acme.example
ghost@acme.example,Ghost Writer,Engineer,alice.ng@acme.example
dana.k@acme.example,Dana K,Director,
"""
JIRA_IDS = {
    "Cloud": {"bob": "5b10a2844c20165700ede21g", "alice": "5b10ac8d82e05b22cc7d4ef5",
              "carol": "712020:carol", "dana": "712020:dana"},
    "Server": {"bob": "bob.li", "alice": "alice.ng", "carol": "carol.s", "dana": "dana.k"},
}


def _directory(fake: FakeJira) -> None:
    ids = JIRA_IDS[fake.deployment]
    fake.add_user(ids["bob"], "Bob Li", "bob.li@acme.example")
    # Cloud hides most people's email: the search still finds them by it
    fake.add_user(ids["alice"], "Alice Ng", "alice.ng@acme.example",
                  email_visible=fake.deployment != "Cloud")
    fake.add_user(ids["carol"], "Carol S", "carol.s@acme.example")
    fake.add_user(ids["dana"], "Dana K", "dana.k@acme.example")
    fake.add_user("former", "Dana K (old)", "dana.k@acme.example.old", active=False)


@pytest.mark.parametrize("deployment", ["Cloud", "Server"])
def test_import_people_resolves_ids_through_jiras_user_search(deployment, tmp_path):
    hr = tmp_path / "people.csv"
    hr.write_text(CSV)
    levels = "Engineer=engineer,Tech Lead=tech_lead,engineering manager=manager"
    with FakeJira(deployment=deployment) as fake:
        _directory(fake)
        result = CliRunner().invoke(main, ["rules", "import-people", str(hr), "--levels", levels],
                                    env=_env(fake))
        assert result.exit_code == 0, result.output
        searched = fake.count("GET", r"/rest/api/2/user/search$")
    assert searched == 5
    ids = JIRA_IDS[deployment]
    people = yaml.safe_load(result.stdout)["people"]
    assert people == {
        "bob": {"jira": ids["bob"], "name": "Bob Li", "level": "engineer", "reports_to": "alice"},
        "alice": {"jira": ids["alice"], "name": "Alice Ng", "level": "tech_lead", "reports_to": "carol"},
        "carol": {"jira": ids["carol"], "name": "Carol S", "level": "manager", "reports_to": "dana"},
        "dana": {"jira": ids["dana"], "name": "Dana K", "level": "TODO"},  # Director: not mapped
    }
    assert result.stderr.splitlines() == [
        f"{hr}:5: ghost@acme.example: no Jira user has this email address",
        "resolved 4 of 5 people; 1 not found in Jira (listed above); 1 without a level "
        "(title not in --levels): 'level: TODO'",
    ]
    # the section drops into a rules file that rules check accepts once Dana's level is set
    rules = tmp_path / "rules.yaml"
    rules.write_text("version: 1\nlevels: [engineer, tech_lead, manager, director, vp]\n"
                     + result.stdout.replace("level: TODO", "level: director")
                     + "waiting_for_approval: {statuses: [Awaiting Approval]}\n"
                       "decisions:\n  - {name: Everything else, decided_at: information}\n")
    check = CliRunner().invoke(main, ["rules", "check", str(rules)])
    assert check.exit_code == 0, check.output


def test_import_people_writes_out_and_exits_non_zero_only_if_nobody_resolved(fake_jira, tmp_path):
    _directory(fake_jira)
    hr = tmp_path / "people.csv"
    hr.write_text(CSV)
    out = tmp_path / "people.yaml"
    result = CliRunner().invoke(main, ["rules", "import-people", str(hr), "--out", str(out)],
                                env=_env(fake_jira))
    assert result.exit_code == 0 and set(yaml.safe_load(out.read_text())["people"]) == {
        "bob", "alice", "carol", "dana"}
    again = CliRunner().invoke(main, ["rules", "import-people", str(hr), "--out", str(out)],
                               env=_env(fake_jira))
    assert again.exit_code == 1
    assert again.output.strip() == f"Error: {out} already exists; pass --force to overwrite it"

    nobody = tmp_path / "nobody.csv"
    nobody.write_text("email,name,title,manager_email\nx@acme.example,X,Engineer,\n"
                      "y@acme.example,Y,Engineer,\n")
    result = CliRunner().invoke(main, ["rules", "import-people", str(nobody)], env=_env(fake_jira))
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        f"{nobody}:2: x@acme.example: no Jira user has this email address",
        f"{nobody}:3: y@acme.example: no Jira user has this email address",
        f"Error: {nobody}: none of the 2 people could be found in Jira",
    ]


def test_import_people_refuses_an_ambiguous_match(fake_jira, tmp_path):
    fake_jira.add_user("712020:a", "Sam One", "sam@acme.example", email_visible=False)
    fake_jira.add_user("712020:b", "Sam Two", "sam@acme.example.org", email_visible=False)
    hr = tmp_path / "people.csv"
    hr.write_text("email,name,title,manager_email\nsam@acme.example,Sam,Engineer,\n"
                  "bob@acme.example,Bob,Engineer,\n")
    fake_jira.add_user("712020:bob", "Bob", "bob@acme.example")
    result = CliRunner().invoke(main, ["rules", "import-people", str(hr)], env=_env(fake_jira))
    assert result.exit_code == 0
    assert result.stderr.splitlines()[0] == (
        f"{hr}:2: sam@acme.example: 2 Jira users match it; add this person by hand")


@pytest.mark.parametrize("content, args, message", [
    (b"email,name,title\nbob@acme.example,Bob,Engineer\n", [],
     "{f}:1: missing column(s) manager_email (the header must name: email, name, title, "
     "manager_email; it has: email, name, title)"),
    (b"email,name,title,manager_email\nbob@acme.example,Bob,Engineer,\nz\xe9@acme.example,Z,Eng,\n",
     [], "{f}:3: the file is not UTF-8 text (byte 0xe9); save it as UTF-8 CSV"),
    (b"email,name,title,manager_email\nbob@acme.example,Bob\n", [],
     "{f}:2: 2 column(s), the header has 4"),
    (b"email,name,title,manager_email\nbob,Bob,Engineer,\n", [],
     "{f}:2: email must be an address, not 'bob'"),
    (b"email,name,title,manager_email\nb@acme.example,B,E,\nB@acme.example,B,E,\n", [],
     "{f}:3: b@acme.example is listed twice (first on line 2)"),
    (b"email,name,title,manager_email\n", [], "{f}:2: no people in the file (only a header)"),
    (b"", [], "{f}:1: the file is empty; expected a header line: email,name,title,manager_email"),
    (b"email,name,title,manager_email\nb@acme.example,B,E,\n", ["--levels", "Engineer"],
     "--levels takes title=level pairs separated by commas, like 'Engineer=engineer' "
     "(got 'Engineer')"),
    (None, [], "{f}: no such file"),
])
def test_import_people_mistakes_end_in_one_line(content, args, message, fake_jira, tmp_path):
    hr = tmp_path / "hr.csv"
    if content is not None:
        hr.write_bytes(content)
    result = CliRunner().invoke(main, ["rules", "import-people", str(hr), *args], env=_env(fake_jira))
    assert result.exit_code == 1
    assert result.output.strip() == "Error: " + message.format(f=hr)
    assert fake_jira.count("GET", r"/user/search$") == 0


def test_import_people_needs_jira(tmp_path):
    hr = tmp_path / "hr.csv"
    hr.write_text("email,name,title,manager_email\nb@acme.example,B,E,\n")
    result = CliRunner().invoke(main, ["rules", "import-people", str(hr)],
                                env={"JIRA_URL": "", "DATABASE_URL": "", "REDIS_URL": ""})
    assert result.exit_code == 1
    assert result.output.strip() == (
        "Error: import-people needs JIRA_URL (and credentials) to read from Jira")


def test_handles_are_first_names_unless_shared(tmp_path: Path):
    from rules.draft import make_handles

    handles = make_handles([("1", "Zoë Ångström", ""), ("2", "Zoe Brown", ""), ("3", "Bob Li", ""),
                            ("4", "", "no.name@acme.example"), ("5", "Yes Man", ""),
                            ("6", "Bob Li", ""), ("JIRAUSER10100", "", "")])
    assert handles == {"1": "zoe_angstrom", "2": "zoe_brown", "3": "bob_li", "4": "no_name",
                       "5": "yes_", "6": "bob_li_2", "JIRAUSER10100": "jirauser10100"}


def test_import_people_stops_in_one_line_when_jira_refuses_the_search(tmp_path):
    hr = tmp_path / "hr.csv"
    hr.write_text("email,name,title,manager_email\nb@acme.example,B,E,\n")
    with FakeJira(deployment="Server", token="right-pat") as fake:
        result = CliRunner().invoke(main, ["rules", "import-people", str(hr)],
                                    env=_env(fake, JIRA_PAT="wrong-pat"))
    assert result.exit_code == 1
    assert result.output.strip() == (
        "Error: cannot search Jira's users: searching users for 'b@acme.example': Jira answered "
        "401 (You are not authenticated. Authentication required to perform this operation.)")


def test_rules_init_reads_at_most_max_tickets(fake_jira):
    _seed(fake_jira)
    result = CliRunner().invoke(main, ["rules", "init", "--jql", "project = PAY", "--max-tickets", "1"],
                                env=_env(fake_jira))
    assert result.exit_code == 0, result.output
    assert "from 1 ticket(s)" in result.stderr
    assert set(yaml.safe_load(result.stdout)["people"]) == {"bob", "dana", "zoe"}  # PAY-1 only
    zoe = next(line for line in result.stdout.splitlines() if line.startswith("  zoe:"))
    assert zoe.endswith("# commenter 1")  # her report, PAY-2, was not read


@pytest.mark.parametrize("command", [["rules", "init", "--jql", "project = PAY"],
                                     ["rules", "import-people", "hr.csv"]])
def test_out_in_a_missing_folder_ends_in_one_line_before_asking_jira(command, fake_jira, tmp_path,
                                                                     monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("hr.csv").write_text("email,name,title,manager_email\nb@acme.example,B,E,\n")
    out = tmp_path / "nowhere" / "rules.yaml"
    result = CliRunner().invoke(main, [*command, "--out", str(out)], env=_env(fake_jira))
    assert result.exit_code == 1
    assert result.output.strip() == f"Error: cannot write {out}: there is no folder {out.parent}"
    assert fake_jira.requests == []
