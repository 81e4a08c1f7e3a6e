"""Configuration: every bad input stops with one exact line, through `load_settings`
and through the CLI (exit 2, one line on stderr, no traceback); and the good paths:
environment overrides, interpolation, masking in ``blockmon config show``."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from blockmon.cli import main
from blockmon.config.file import load_settings
from blockmon.errors import ConfigError

SENTINEL = "S3ntinel-pw-7f3a"
QUERY_SECRET = "Qs3cret-9b1c"  # only ever in a query string: nothing registers it
ENV_VARS = (
    "BLOCKMON_CONFIG",
    "BLOCKMON_LOG_LEVEL",
    "DATABASE_URL",
    "REDIS_URL",
    "PGHOST",
    "PGPORT",
    "PGUSER",
    "PGPASSWORD",
    "PGDATABASE",
    "REDIS_HOST",
    "REDIS_PORT",
    "REDIS_USERNAME",
    "REDIS_PASSWORD",
    "BM_NOPE_PASS",
)


@dataclass
class Bad:
    name: str
    content: str | bytes | None  # None: no file is written (the path is missing)
    line: str  # "{path}" stands for the config file's path
    env: dict[str, str] = field(default_factory=dict)
    via_env: bool = False  # pass the path in BLOCKMON_CONFIG instead of -c


BAD = [
    Bad(
        "wrong type",
        "postgres:\n  pool_size: lots\n",
        "postgres.pool_size: must be an integer, got 'lots'",
    ),
    Bad(
        "float for int",
        "postgres:\n  pool_size: 2.5\n",
        "postgres.pool_size: must be an integer, got 2.5",
    ),
    Bad(
        "empty value",
        "postgres:\n  pool_size:\n",
        "postgres.pool_size: must be an integer, got None",
    ),
    Bad("below range", "postgres:\n  pool_size: -3\n", "postgres.pool_size: must be >= 1, got -3"),
    Bad("above range", "redis:\n  port: 70000\n", "redis.port: must be <= 65535, got 70000"),
    Bad(
        "zero timeout",
        "postgres:\n  connect_timeout: 0\n",
        "postgres.connect_timeout: must be > 0, got 0",
    ),
    Bad(
        "too long",
        "postgres:\n  application_name: " + "x" * 64 + "\n",
        "postgres.application_name: must be at most 63 characters, got '" + "x" * 64 + "'",
    ),
    Bad(
        "unknown key with hint",
        "postgres:\n  pool_sise: 3\n",
        "postgres.pool_sise: unknown setting (did you mean 'pool_size'?)",
    ),
    Bad(
        "unknown section with hint",
        "postgress:\n  host: x\n",
        "postgress: unknown setting (did you mean 'postgres'?)",
    ),
    Bad("unknown key without hint", "redis:\n  zzz: 1\n", "redis.zzz: unknown setting"),
    Bad(
        "unknown secret key shows no value",
        f"postgres:\n  passwrd: {SENTINEL}\n",
        "postgres.passwrd: unknown setting (did you mean 'password'?)",
    ),
    Bad(
        "missing required variable",
        "postgres:\n  password: ${BM_NOPE_PASS}\n",
        "postgres.password: environment variable BM_NOPE_PASS is not set",
    ),
    Bad(
        "malformed YAML",
        "postgres:\n  host: [a\n",
        "{path}:3: invalid YAML: expected ',' or ']', but got '<stream end>'",
    ),
    Bad(
        "bad indentation",
        "postgres:\n  host: a\n pool_size: 3\n",
        "{path}:3: invalid YAML: expected <block end>, but found '<block mapping start>'",
    ),
    Bad(
        "not UTF-8",
        b"postgres:\n  host: \xff\xfe\n",
        "{path}: not valid UTF-8 (byte 0xff at offset 18)",
    ),
    Bad("list at top level", "- a\n- b\n", "{path}: must be a mapping of settings, got list"),
    Bad("scalar at top level", "hello\n", "{path}: must be a mapping of settings, got str"),
    Bad("section not a mapping", "postgres: 5\n", "postgres: must be a mapping of settings, got 5"),
    Bad(
        "bad postgres URL scheme",
        f"postgres:\n  url: mysql://u:{SENTINEL}@h/db\n",
        "postgres.url: scheme must be postgresql:// or postgres://, with or without a driver (postgresql+psycopg://...), got mysql://",
    ),
    Bad(
        "bad postgres URL port",
        f"postgres:\n  url: 'postgresql://u:{SENTINEL}@h:notaport/db'\n",
        "postgres.url: port must be a number between 1 and 65535",
    ),
    Bad(
        "bad redis URL scheme",
        f"redis:\n  url: http://u:{SENTINEL}@h/0\n",
        "redis.url: scheme must be redis://, rediss:// or unix://, got http://",
    ),
    Bad(
        "bad enum",
        "postgres:\n  sslmode: maybe\n",
        "postgres.sslmode: must be one of 'disable', 'allow', 'prefer', 'require', 'verify-ca' or 'verify-full', got 'maybe'",
    ),
    Bad(
        "bad boolean",
        "redis:\n  tls: perhaps\n",
        "redis.tls: must be true or false, got 'perhaps'",
    ),
    Bad(
        "password of the wrong type shows no value",
        "redis:\n  password: [1, 2]\n",
        "redis.password: must be a string",
    ),
    Bad(
        "bad log level from the environment",
        "{}\n",
        "log.level: must be one of 'debug', 'info', 'warning', 'error' or 'critical', got 'verbose'",
        env={"BLOCKMON_LOG_LEVEL": "VERBOSE"},
    ),
    Bad(
        "bad DATABASE_URL",
        "{}\n",
        "postgres.url: scheme must be postgresql:// or postgres://, with or without a driver (postgresql+psycopg://...), got mysql://",
        env={"DATABASE_URL": f"mysql://root:{SENTINEL}@db/x"},
    ),
    Bad(
        "bad REDIS_URL",
        "{}\n",
        "redis.url: scheme must be redis://, rediss:// or unix://, got no scheme",
        env={"REDIS_URL": f"{SENTINEL}@localhost:6379"},
    ),
    Bad("missing file", None, "{path}: config file not found"),
    Bad(
        "BLOCKMON_CONFIG names a missing file",
        None,
        "{path} (from BLOCKMON_CONFIG): config file not found",
        via_env=True,
    ),
]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No setting leaks in from the machine's environment or a ./config.yml."""
    for var in ENV_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)


def _write(tmp_path: Path, content: str | bytes | None) -> Path:
    path = tmp_path / "bad.yml"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    return path


def test_there_are_at_least_15_bad_configurations() -> None:
    assert len(BAD) >= 15


@pytest.mark.parametrize("case", BAD, ids=[b.name for b in BAD])
def test_load_settings_names_the_problem(case: Bad, tmp_path: Path) -> None:
    path = _write(tmp_path, case.content)
    env = dict(case.env)
    if case.via_env:
        env["BLOCKMON_CONFIG"] = str(path)
    with pytest.raises(ConfigError) as caught:
        load_settings(None if case.via_env else path, environ=env)
    assert str(caught.value) == case.line.format(path=path)
    assert SENTINEL not in repr(caught.value)


@pytest.mark.parametrize("case", BAD, ids=[b.name for b in BAD])
def test_cli_exits_2_with_one_line(
    case: Bad, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(tmp_path, case.content)
    for var, value in case.env.items():
        monkeypatch.setenv(var, value)
    if case.via_env:
        monkeypatch.setenv("BLOCKMON_CONFIG", str(path))
        argv = ["config", "show"]
    else:
        argv = ["config", "show", "-c", str(path)]
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err == f"blockmon: error: {case.line.format(path=path)}\n"


@pytest.mark.parametrize("case", [BAD[0], BAD[12], BAD[18]], ids=lambda b: b.name)
def test_console_script_prints_no_traceback(case: Bad, tmp_path: Path) -> None:
    path = _write(tmp_path, case.content)
    blockmon = Path(sys.executable).with_name("blockmon")
    done = subprocess.run(
        [str(blockmon), "config", "show", "-c", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr == f"blockmon: error: {case.line.format(path=path)}\n"


def test_usage_error_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "shoe"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("blockmon: error: config: argument ACTION: invalid choice: 'shoe'")
    assert err.count("\n") == 1


def test_environment_urls_override_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(tmp_path, "postgres:\n  url: postgresql://a@file-host/db\nredis:\n  db: 3\n")
    env = {
        "DATABASE_URL": f"postgresql://app:{SENTINEL}@env-host:6543/appdb",
        "REDIS_URL": f"redis://:{SENTINEL}@env-redis:6390/2",
        "BLOCKMON_LOG_LEVEL": "DEBUG",
    }
    settings = load_settings(path, environ=env)
    assert settings.postgres.url is not None and settings.redis.url is not None
    assert settings.postgres.url.get_secret_value() == env["DATABASE_URL"]
    assert settings.redis.url.get_secret_value() == env["REDIS_URL"]
    assert settings.redis.db == 3
    assert settings.log.level == "debug"
    for var, value in env.items():
        monkeypatch.setenv(var, value)
    assert main(["config", "show", "--json", "-c", str(path)]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["postgres"]["url"] == "postgresql://app:***@env-host:6543/appdb"
    assert shown["redis"]["url"] == "redis://:***@env-redis:6390/2"
    assert shown["log"]["level"] == "debug"


def test_interpolation_defaults_and_values(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "postgres:\n  host: ${BM_HOST:db.local}\n  port: ${BM_PORT:5433}\n"
        "  password: ${BM_PW:}\n  database: app_${BM_ENV:dev}\n"
        "redis:\n  key_prefix: ${BM_PREFIX}\n",
    )
    settings = load_settings(path, environ={"BM_PREFIX": "svc:", "BM_ENV": "prod"})
    assert settings.postgres.host == "db.local"
    assert settings.postgres.port == 5433
    assert settings.postgres.password is None  # "${VAR:}" unset means "not configured"
    assert settings.postgres.database == "app_prod"
    assert settings.redis.key_prefix == "svc:"
    settings = load_settings(path, environ={"BM_PREFIX": "x:", "BM_HOST": "h", "BM_PORT": "1"})
    assert (settings.postgres.host, settings.postgres.port) == ("h", 1)


def test_blockmon_config_chooses_the_file(tmp_path: Path) -> None:
    path = _write(tmp_path, "postgres:\n  pool_size: 7\n")
    assert load_settings(environ={"BLOCKMON_CONFIG": str(path)}).postgres.pool_size == 7
    other = tmp_path / "other.yml"
    other.write_text("postgres:\n  pool_size: 9\n")
    assert load_settings(other, environ={"BLOCKMON_CONFIG": str(path)}).postgres.pool_size == 9


def test_defaults_without_a_file() -> None:
    settings = load_settings(environ={})
    assert settings.postgres.pool_size == 10
    assert settings.redis.socket_timeout == 5.0


def test_config_show_masks_every_secret(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(
        tmp_path,
        f"postgres:\n  url: 'postgresql://app:{SENTINEL}@db/app?password={QUERY_SECRET}'\n"
        f"  password: '{SENTINEL}'\n"
        f"redis:\n  url: 'redis://default:{SENTINEL}@cache:6379/0?password={QUERY_SECRET}'\n"
        f"  username: svc\n  password: '{SENTINEL}'\n",
    )
    for flag in ([], ["--json"]):
        assert main(["config", "show", "-c", str(path), *flag]) == 0
        out = capsys.readouterr().out
        assert SENTINEL not in out
        assert QUERY_SECRET not in out
        assert "postgresql://app:***@db/app?password=***" in out
        assert "redis://default:***@cache:6379/0?password=***" in out
        assert "svc" in out
