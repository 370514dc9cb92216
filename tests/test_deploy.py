"""What can be checked of the production shape without a Docker engine."""

from __future__ import annotations

import importlib
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from leaderleader.cli import main
from service.settings import ConfigError, Settings, check_production

ROOT = Path(__file__).resolve().parent.parent


def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_compose_has_the_production_services():
    services = compose()["services"]
    assert {"web", "worker", "scheduler", "redis", "postgres", "migrate"} <= set(services)
    assert "--appendonly" in services["redis"]["command"]
    assert any("postgresql/data" in v for v in services["postgres"]["volumes"])
    assert services["web"]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    for name in ("web", "redis", "postgres"):
        assert "healthcheck" in services[name], name


def _command(service: dict) -> list[str]:
    command = service["command"]
    return command if isinstance(command, list) else shlex.split(command)


@pytest.mark.parametrize("name", ["migrate", "web", "worker", "scheduler"])
def test_every_app_command_resolves_to_something_the_package_provides(name):
    command = _command(compose()["services"][name])
    if command[0] == "leaderleader":
        # --help on the exact sub-command proves it exists and its options parse
        options = [c for c in command[1:] if c.startswith("--")]
        words = [c for c in command[1:] if not c.startswith("--") and not c.isdigit()]
        result = CliRunner().invoke(main, [*words, "--help"])
        assert result.exit_code == 0, result.output
        for option in options:
            assert option in result.output
    else:
        assert command[0] == "gunicorn"
        config = command[command.index("--config") + 1].removeprefix("python:")
        importlib.import_module(config)
        module, attr = command[-1].split(":")
        assert module == "webhooks.wsgi" and attr == "app"
        assert importlib.util.find_spec(module) is not None


def _read_by(path: str, pattern: str) -> set[str]:
    return {a if isinstance(a, str) else next(x for x in a if x)
            for a in re.findall(pattern, (ROOT / path).read_text())}


SETTINGS_NAMES = _read_by("service/settings.py",
                          r'env(?:\.get)?\(\s*"([A-Z_]+)"|_(?:flag|int|intervals|url)\(env, "([A-Z_]+)"')
GUNICORN_NAMES = _read_by("service/gunicorn_conf.py", r'os\.environ\.get\("([A-Z_]+)"')
COMPOSE_NAMES = _read_by("docker-compose.yml", r"\$\{([A-Z_]+)")


def test_environment_names_in_compose_and_example_are_the_ones_the_code_reads():
    assert {"GUNICORN_BIND", "GUNICORN_THREADS", "GUNICORN_TIMEOUT", "WEB_CONCURRENCY"} == GUNICORN_NAMES
    assert {"RULES_DIR", "RULES_FILENAME", "WEB_PORT", "DRY_RUN"} <= COMPOSE_NAMES
    compose_env = set(compose()["x-app"]["environment"])
    example = {
        line.lstrip("# ").split("=", 1)[0]
        for line in (ROOT / ".env.example").read_text().splitlines()
        if "=" in line and line.lstrip("# ")[:1].isupper()
    }
    assert compose_env - SETTINGS_NAMES == set()
    assert example - SETTINGS_NAMES - GUNICORN_NAMES - COMPOSE_NAMES == set()
    # and every variable the service reads is in the README's configuration table
    section = (ROOT / "README.md").read_text().split("## Configuration", 1)[1].split("\n## ")[0]
    documented = set(re.findall(r"`([A-Z_]+)`", "\n".join(
        line.split("|")[1] for line in section.splitlines() if line.startswith("| `"))))
    assert SETTINGS_NAMES - documented == set()
    assert {"LEADERLEADER_QUEUE", "LEADERLEADER_COMMENT_LOCK_SECONDS"} <= SETTINGS_NAMES


def test_every_variable_the_deployment_reads_is_documented_in_the_readme():
    readme = (ROOT / "README.md").read_text()
    names = GUNICORN_NAMES | COMPOSE_NAMES | set(compose()["x-app"]["environment"])
    assert sorted(n for n in names if f"`{n}`" not in readme) == []


def test_compose_posts_nothing_until_the_operator_turns_dry_run_off():
    assert compose()["x-app"]["environment"]["DRY_RUN"] == "${DRY_RUN:-true}"
    assert "DRY_RUN=true" in (ROOT / ".env.example").read_text().splitlines()


def test_the_image_holds_every_package_of_the_project():
    packages = re.search(r'include = \[([^\]]*)\]', (ROOT / "pyproject.toml").read_text())
    assert packages is not None
    copied = set(re.findall(r"^COPY (\w+) ", (ROOT / "Dockerfile").read_text(), re.M))
    assert {p.strip(' "*') for p in packages.group(1).split(",")} <= copied


def test_make_test_names_what_to_install_when_no_browser_can_be_had(tmp_path):
    """Without Chromium, and without root and apt-get to install it, make test stops and says so."""
    bare = tmp_path / "bin"
    bare.mkdir()
    for tool in ("sh", "id"):  # no chromium, no apt-get
        (bare / tool).symlink_to(shutil.which(tool) or f"/bin/{tool}")
    make = shutil.which("make")
    assert make is not None, "make is needed for the README's commands"
    done = subprocess.run([make, "-s", "browser"], cwd=ROOT, capture_output=True, text=True,
                          env={"PATH": str(bare)}, timeout=30)
    assert done.returncode != 0
    assert done.stderr.splitlines()[0] == (
        "make test needs Chromium for the report's browser test: install the chromium package "
        "(or Google Chrome), or set CHROMIUM=/path/to/chrome")


def test_production_refuses_to_start_without_webhook_authentication():
    with pytest.raises(ConfigError, match="JIRA_WEBHOOK_SECRET"):
        check_production(Settings(production=True))
    check_production(Settings(production=True, allow_insecure=True))
    check_production(Settings(production=True, webhook_secret="s3cret-value"))


def test_cli_reports_a_bad_setting_in_one_line(monkeypatch):
    monkeypatch.setenv("DRY_RUN", "perhaps")
    result = CliRunner().invoke(main, ["db", "upgrade"])
    assert result.exit_code != 0
    assert result.output.strip() == "Error: configuration: DRY_RUN must be true or false, not 'perhaps'"


def _free_port() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return str(probe.getsockname()[1])


def _run_cli(tmp_path: Path, env: dict[str, str], *words: str) -> subprocess.CompletedProcess[str]:
    """The real command, as a user runs it, with a clean environment plus ``env``."""
    words = tuple(_free_port() if w == "{port}" else w for w in words)
    keep = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "SYSTEMROOT")}
    full = {**keep, "LEADERLEADER_HOME": str(tmp_path / "home"), **env}
    return subprocess.run([sys.executable, "-m", "leaderleader", *words], env=full, cwd=tmp_path,
                          capture_output=True, text=True, timeout=30)


@pytest.mark.parametrize(("env", "words", "says"), [
    ({"DATABASE_URL": "nope://x"}, ("db", "upgrade"), "DATABASE_URL"),
    ({"DATABASE_URL": "not a url"}, ("worker", "--burst"), "DATABASE_URL"),
    ({"DATABASE_URL": "postgresql://ll:pw-zz9@127.0.0.1:1/x"}, ("db", "upgrade"), "database"),
    ({"REDIS_URL": "localhost:6379"}, ("serve", "--no-worker", "--port", "{port}"), "REDIS_URL"),
    ({"REDIS_URL": "redis://127.0.0.1:1/0"}, ("worker", "--burst"), "Redis"),
    ({"LEADERLEADER_HOME": "/dev/null/ll"}, ("db", "upgrade"), "/dev/null/ll"),
    ({"RULES_FILE": "missing-rules.yaml"}, ("worker", "--burst"), "missing-rules.yaml"),
    ({"RULES_FILE": "missing-rules.yaml"}, ("serve", "--no-worker", "--port", "{port}"),
     "missing-rules.yaml"),
    ({"JIRA_URL": "acme.atlassian.net"}, ("db", "upgrade"), "JIRA_URL"),
    ({"LEADERLEADER_MAX_BODY_BYTES": "-5"}, ("db", "upgrade"), "LEADERLEADER_MAX_BODY_BYTES"),
    # a driver we do not ship is said, not a ModuleNotFoundError
    ({"DATABASE_URL": "postgresql+psycopg2://ll:pw-zz9@db/x"}, ("db", "upgrade"),
     "DATABASE_URL names the driver 'psycopg2', which leaderleader does not ship"),
    ({"DATABASE_URL": "mysql://ll:pw-zz9@db/x"}, ("simulate",),
     "DATABASE_URL: the ledger runs on PostgreSQL or SQLite, not 'mysql'"),
    # backfill and simulate go through the same error path as every other command
    ({"DATABASE_URL": "postgresql://ll:pw-zz9@127.0.0.1:1/x"}, ("simulate",),
     "cannot use the database (DATABASE_URL)"),
    ({"RULES_FILE": "missing-rules.yaml"}, ("simulate",), "missing-rules.yaml"),
    ({"RULES_FILE": "missing-rules.yaml", "JIRA_URL": "http://127.0.0.1:1"},
     ("backfill", "--jql", "project = PAY"), "missing-rules.yaml"),
    ({"RULES_FILE": "missing-rules.yaml"}, ("rules", "explain", "PAY-1"), "missing-rules.yaml"),
    # no private embedded Redis outside serve and demo
    ({}, ("worker", "--burst"), "REDIS_URL is not set"),
    ({}, ("scheduler", "--once"), "REDIS_URL is not set"),
    ({"LEADERLEADER_PRODUCTION": "true", "JIRA_WEBHOOK_SECRET": "s3cret-value"},
     ("serve", "--port", "{port}"), "production mode needs REDIS_URL"),
])
def test_cli_mistakes_end_in_one_line_not_a_traceback(tmp_path, env, words, says):
    result = _run_cli(tmp_path, env, *words)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    assert says in lines[0]
    assert "pw-zz9" not in result.stderr


def _close_one(server: socket.socket) -> None:
    """Take one connection and close it at once (a server that speaks no TLS)."""
    try:
        server.accept()[0].close()
    except OSError:  # the test ended (and closed the server) before anyone connected
        pass


@pytest.mark.parametrize(("url", "cause"), [
    ("http://127.0.0.1:1", "connection refused"),
    ("http://no-such-host.invalid", "DNS cannot resolve no-such-host.invalid"),
    ("https://{tls}", "TLS failed"),
])
@pytest.mark.parametrize("words", [("backfill", "--jql", "project = PAY"),
                                   ("rules", "explain", "PAY-1")])
def test_a_wrong_or_unreachable_jira_url_is_named_with_its_cause_within_seconds(
        tmp_path, url, cause, words):
    with socket.create_server(("127.0.0.1", 0)) as plain:  # speaks no TLS: closes the handshake
        url = url.replace("{tls}", f"127.0.0.1:{plain.getsockname()[1]}")
        threading.Thread(target=_close_one, args=(plain,), daemon=True).start()
        started = time.monotonic()
        result = _run_cli(tmp_path, {"JIRA_URL": url, "JIRA_USER": "bot@acme.example",
                                     "JIRA_API_TOKEN": "t0ken-zz9"}, *words)
        elapsed = time.monotonic() - started
    assert result.returncode == 1
    [line] = result.stderr.strip().splitlines()
    assert f"cannot reach Jira at {url} (JIRA_URL): {cause}" in line
    assert "refused the backfill" not in line
    assert "t0ken-zz9" not in result.stderr
    assert elapsed < 10


def test_demo_replays_the_samples_and_prints_the_comment(tmp_path):
    """The README's first command on a machine with nothing running: embedded Redis, SQLite."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG")}
    env["LEADERLEADER_HOME"] = str(tmp_path / "home")
    done = subprocess.run([sys.executable, "-m", "leaderleader", "demo"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "10 approval wait(s) in the ledger" in out
    assert "PAY-101  waits on dana (director); rule 'Routine production deploy' -> FLAGGED" in out
    assert "PAY-104  not judged" in out
    assert "--- comment on PAY-101 (dry_run) ---" in out
    assert "[~accountid:5b10a2844c20165700ede21g], you hold what is needed to decide." in out
    assert "--- comment on PAY-103 (dry_run) ---" in out and "[~carol.s]" in out
    assert "{quote}I intend to <action> because <reason>." in out
    # the rest of the loop: the answer, a competence gap, a suggestion
    assert "PAY-101  intent -> acknowledged by dana, 1.0 h after the intent" in out
    assert ("PAY-105  competence gap: nobody at the information level holds 'vendor-spend'; "
            "nearest who does: dana") in out
    assert "the nearest who does is *Dana K* (director)" in out
    assert ("+  # leaderleader suggests: lower decided_at of 'Spend under 5k' from manager to "
            "engineer\n") in out
    assert "-    decided_at: manager\n+    decided_at: engineer\n" in out
