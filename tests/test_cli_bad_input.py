"""Bad input across the whole CLI: every command and action, its flags, revision
names, unreadable or malformed config files and wrong environment values. Each case
exits 2 with exactly one line on stderr that names the command or setting, nothing on
stdout and no traceback; a handful run through the real console script as well."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from blockmon.cli import main

REPO_CONFIG = Path(__file__).resolve().parents[1] / "config.yml"
COMMANDS = "'up', 'config', 'health', 'serve', 'db', 'doctor'"
DB_ACTIONS = "'upgrade', 'downgrade', 'current', 'history', 'check', 'stamp', 'lint'"
LEVELS = "'debug', 'info', 'warning', 'error', 'critical'"
LEVELS_OR = "'debug', 'info', 'warning', 'error' or 'critical'"
PG_SCHEMES = "postgresql:// or postgres://, with or without a driver (postgresql+psycopg://...)"
REV_FORMS = "must be a revision id, head, base or a relative form like -1"
ENV_VARS = (
    "BLOCKMON_CONFIG",
    "BLOCKMON_LOG_LEVEL",
    "BLOCKMON_HEALTH_TOKEN",
    "DATABASE_URL",
    "REDIS_URL",
    "MIGRATIONS_DATABASE_URL",
    *(f"PG{v}" for v in ("HOST", "PORT", "USER", "PASSWORD", "DATABASE")),
    *(f"REDIS_{v}" for v in ("HOST", "PORT", "USERNAME", "PASSWORD")),
)
DIR, FIFO = object(), object()  # file contents that are not contents


@dataclass
class Case:
    name: str
    argv: list[str]
    line: str  # "{tmp}" stands for the test's directory
    env: dict[str, str] = field(default_factory=dict)
    files: dict[str, str | bytes | object] = field(default_factory=dict)


CASES = [
    # the top level
    Case("no command", [], f"COMMAND is required (choose from {COMMANDS})"),
    Case("unknown option, no command", ["--bogus"], "unrecognized arguments: --bogus"),
    Case(
        "unknown option before a command",
        ["--bogus", "health"],
        "health: unrecognized arguments: --bogus",
    ),
    Case(
        "unknown command",
        ["bogus"],
        f"argument COMMAND: invalid choice: 'bogus' (choose from {COMMANDS})",
    ),
    Case(
        "bad --log-level",
        ["--log-level", "bogus", "health"],
        f"argument --log-level: invalid choice: 'bogus' (choose from {LEVELS})",
    ),
    Case("-c without a path", ["-c"], "argument -c/--config: expected one argument"),
    Case(
        "empty --config",
        ["config", "show", "--config="],
        "config show: argument -c/--config: must not be empty",
    ),
    # up
    Case("up: unknown flag", ["up", "--bogus"], "up: unrecognized arguments: --bogus"),
    Case("up: stray argument", ["up", "now"], "up: unrecognized arguments: now"),
    Case(
        "up: value on a switch",
        ["up", "--no-embedded=yes"],
        "up: argument --no-embedded: ignored explicit argument 'yes'",
    ),
    Case(
        "up: non-numeric port",
        ["up", "--serve", "--port", "abc"],
        "up: argument --port: must be an integer, got 'abc'",
    ),
    Case(
        "up: port out of range",
        ["up", "--port", "70000"],
        "up: argument --port: must be between 1 and 65535, got 70000",
    ),
    Case("up: empty host", ["up", "--serve", "--host="], "up: argument --host: must not be empty"),
    # serve
    Case(
        "serve: negative port",
        ["serve", "--port", "-1"],
        "serve: argument --port: must be between 1 and 65535, got -1",
    ),
    Case(
        "serve: fractional port",
        ["serve", "--port", "9464.5"],
        "serve: argument --port: must be an integer, got '9464.5'",
    ),
    Case(
        "serve: port without value",
        ["serve", "--port"],
        "serve: argument --port: expected one argument",
    ),
    Case(
        "serve: blank host", ["serve", "--host", "  "], "serve: argument --host: must not be empty"
    ),
    Case("serve: stray argument", ["serve", "9464"], "serve: unrecognized arguments: 9464"),
    # config
    Case("config: no action", ["config"], "config: ACTION is required (choose from 'show')"),
    Case("config: unknown flag", ["config", "--bogus"], "config: unrecognized arguments: --bogus"),
    Case(
        "config show: unknown flag",
        ["config", "show", "--yaml"],
        "config show: unrecognized arguments: --yaml",
    ),
    # health
    Case(
        "health: stray argument", ["health", "--json", "now"], "health: unrecognized arguments: now"
    ),
    Case(
        "health: serve's flag",
        ["health", "--port", "1"],
        "health: unrecognized arguments: --port 1",
    ),
    Case(
        "health: log level in capitals",
        ["health", "--log-level", "LOUD"],
        f"health: argument --log-level: invalid choice: 'LOUD' (choose from {LEVELS})",
    ),
    # db
    Case("db: no action", ["db"], f"db: ACTION is required (choose from {DB_ACTIONS})"),
    Case(
        "db: unknown action",
        ["db", "migrate"],
        f"db: argument ACTION: invalid choice: 'migrate' (choose from {DB_ACTIONS})",
    ),
    Case(
        "db upgrade: revision with spaces",
        ["db", "upgrade", "bad rev!"],
        f"db upgrade: argument REV: {REV_FORMS}, got 'bad rev!'",
    ),
    Case(
        "db upgrade: empty revision",
        ["db", "upgrade", ""],
        f"db upgrade: argument REV: {REV_FORMS}, got ''",
    ),
    Case(
        "db upgrade: two revisions",
        ["db", "upgrade", "head", "base"],
        "db upgrade: unrecognized arguments: base",
    ),
    Case(
        "db downgrade: SQL in the revision",
        ["db", "downgrade", "0001; DROP TABLE users"],
        f"db downgrade: argument REV: {REV_FORMS}, got '0001; DROP TABLE users'",
    ),
    Case(
        "db downgrade: unknown revision",
        ["db", "downgrade", "deadbeef"],
        "db downgrade: revision: Can't locate revision identified by 'deadbeef'",
    ),
    Case(
        "db stamp: unknown revision",
        ["db", "stamp", "nosuchrev"],
        "db stamp: revision: Can't locate revision identified by 'nosuchrev'",
    ),
    Case(
        "db stamp: no revision",
        ["db", "stamp"],
        "db stamp: the following arguments are required: REV",
    ),
    Case("db check: a revision", ["db", "check", "head"], "db check: unrecognized arguments: head"),
    Case(
        "db history: --sql", ["db", "history", "--sql"], "db history: unrecognized arguments: --sql"
    ),
    # config files nobody can read as one
    Case(
        "config is a directory",
        ["health", "-c", "{tmp}/conf.d"],
        "{tmp}/conf.d: is a directory, not a config file",
        files={"conf.d": DIR},
    ),
    Case(
        "config under a file",
        ["db", "current", "-c", "{tmp}/plain/config.yml"],
        "{tmp}/plain/config.yml: cannot read config file: Not a directory",
        files={"plain": "x\n"},
    ),
    Case(
        "config is a FIFO",
        ["serve", "-c", "{tmp}/pipe.yml"],
        "{tmp}/pipe.yml: not a regular file",
        files={"pipe.yml": FIFO},
    ),
    Case(
        "config is empty",
        ["up", "-c", "{tmp}/c.yml"],
        "{tmp}/c.yml: config file is empty (write {} to use the defaults)",
        files={"c.yml": b""},
    ),
    Case(
        "YAML with a tab",
        ["db", "upgrade", "-c", "{tmp}/c.yml"],
        "{tmp}/c.yml:2: invalid YAML: found character '\\t' that cannot start any token",
        files={"c.yml": "postgres:\n\thost: x\n"},
    ),
    Case(
        "UTF-16 file",
        ["health", "--json", "-c", "{tmp}/c.yml"],
        "{tmp}/c.yml: not valid UTF-8 (byte 0xff at offset 0)",
        files={"c.yml": "log: {}\n".encode("utf-16")},
    ),
    Case(
        "number at top level",
        ["db", "current", "-c", "{tmp}/c.yml"],
        "{tmp}/c.yml: must be a mapping of settings, got int",
        files={"c.yml": "42\n"},
    ),
    Case(
        "BLOCKMON_CONFIG at a missing file",
        ["health"],
        "{tmp}/gone.yml (from BLOCKMON_CONFIG): config file not found",
        env={"BLOCKMON_CONFIG": "{tmp}/gone.yml"},
    ),
    # wrong values in the environment, through the shipped config.yml
    Case(
        "PGPORT not a number",
        ["up"],
        "postgres.port: must be an integer, got 'abc'",
        env={"PGPORT": "abc"},
    ),
    Case(
        "REDIS_PORT out of range",
        ["health"],
        "redis.port: must be <= 65535, got '99999'",
        env={"REDIS_PORT": "99999"},
    ),
    Case(
        "BLOCKMON_LOG_LEVEL=loud",
        ["db", "current"],
        f"log.level: must be one of {LEVELS_OR}, got 'loud'",
        env={"BLOCKMON_LOG_LEVEL": "loud"},
    ),
    Case(
        "REDIS_URL=http://x",
        ["serve"],
        "redis.url: scheme must be redis://, rediss:// or unix://, got http://",
        env={"REDIS_URL": "http://x"},
    ),
    Case(
        "DATABASE_URL=mysql://x",
        ["db", "upgrade"],
        f"postgres.url: scheme must be {PG_SCHEMES}, got mysql://",
        env={"DATABASE_URL": "mysql://x"},
    ),
    Case(
        "MIGRATIONS_DATABASE_URL=sqlite",
        ["db", "upgrade"],
        f"migrations.url: scheme must be {PG_SCHEMES}, got sqlite://",
        env={"MIGRATIONS_DATABASE_URL": "sqlite:///blockmon.db"},
    ),
    Case(
        "MIGRATIONS_DATABASE_URL with a bad port",
        ["db", "stamp", "head"],
        "migrations.url: port must be a number between 1 and 65535",
        env={"MIGRATIONS_DATABASE_URL": "postgresql://u:pw@h:port/db"},
    ),
    Case(
        "details token without a token",
        ["config", "show"],
        "monitoring.details_token: is required when details is 'token'",
        files={
            "c.yml": "monitoring:\n  details: token\n  details_token: ${BLOCKMON_HEALTH_TOKEN:}\n"
        },
        env={"BLOCKMON_CONFIG": "{tmp}/c.yml"},
    ),
]


def _prepare(
    case: Case, tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[list[str], dict[str, str], str]:
    """Write the case's files; return its argv, environment and expected stderr line."""
    for var in ENV_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp)  # no ./config.yml from the checkout
    shutil.copy(REPO_CONFIG, tmp / "shipped.yml")
    for name, content in case.files.items():
        path = tmp / name
        if content is DIR:
            path.mkdir()
        elif content is FIFO:
            os.mkfifo(path)
        elif isinstance(content, bytes):
            path.write_bytes(content)
        else:
            assert isinstance(content, str)
            path.write_text(content)
    env = {"BLOCKMON_CONFIG": str(tmp / "shipped.yml")}
    env.update({k: v.replace("{tmp}", str(tmp)) for k, v in case.env.items()})
    argv = [a.replace("{tmp}", str(tmp)) for a in case.argv]
    return argv, env, "blockmon: error: " + case.line.replace("{tmp}", str(tmp)) + "\n"


def test_there_are_at_least_30_cases_covering_every_command() -> None:
    assert len(CASES) >= 30
    words = {" ".join(w for w in c.argv if not w.startswith("-"))[:20] for c in CASES}
    for command in (
        "up",
        "serve",
        "config show",
        "health",
        "db upgrade",
        "db downgrade",
        "db stamp",
    ):
        assert any(w.startswith(command) for w in words), command


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input_is_one_line_and_exit_2(
    case: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    argv, env, line = _prepare(case, tmp_path, monkeypatch)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err == line


SCRIPTED = [
    "unknown option, no command",
    "db upgrade: revision with spaces",
    "config is a FIFO",
    "UTF-16 file",
    "PGPORT not a number",
    "up: empty host",
]


@pytest.mark.parametrize("name", SCRIPTED)
def test_console_script_prints_the_line_and_no_traceback(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    case = next(c for c in CASES if c.name == name)
    argv, env, line = _prepare(case, tmp_path, monkeypatch)
    blockmon = Path(sys.executable).with_name("blockmon")
    done = subprocess.run(
        [str(blockmon), *argv],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "BLOCKMON_LOG_LEVEL": "debug", **env},
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
    )
    assert (done.returncode, done.stdout, done.stderr) == (2, "", line)
