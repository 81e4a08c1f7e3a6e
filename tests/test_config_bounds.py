"""Issue 12, "Found" 1, 2, 6, 7 and 8 for the configuration: each input that once blew
up, hung, leaked or was silently misread now gives one exact line and exit 2 (or the
documented result), through the command a user types."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from blockmon.cli import main
from blockmon.config.file import MAX_BYTES, load_settings
from blockmon.config.secrets import LINE_LIMIT
from blockmon.config.settings import Settings
from blockmon.errors import ConfigError
from blockmon.postgres.engine import engine_url

SECRET = "Hunter2Secret"
BLOCKMON = str(Path(sys.executable).with_name("blockmon"))


def _alias_bomb(levels: int = 21) -> str:
    return 'x0: &x0 ["a"]\n' + "".join(
        f"x{i}: &x{i} [*x{i - 1}, *x{i - 1}]\n" for i in range(1, levels + 1)
    )


def _laughs() -> str:
    lines = ['l0: &l0 "lol"']
    for i in range(1, 10):
        lines.append(f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 9) + "]")
    return "\n".join(lines) + "\n"


def _cli(
    tmp_path: Path, text: str, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "config.yml"
    path.write_text(text)
    return subprocess.run(
        [BLOCKMON, *(args or ("config", "show")), "-c", str(path)],
        capture_output=True,
        text=True,
        timeout=60,  # the bomb took 11 s and 822 MB before; now milliseconds
        env={"PATH": "/usr/bin:/bin", **(env or {})},
    )


@pytest.mark.parametrize(
    ("text", "line"),
    [
        (_alias_bomb(), "{path}:12: more than 10000 values (an alias counts as what it repeats)"),
        (_laughs(), "{path}:6: more than 10000 values (an alias counts as what it repeats)"),
        ("a: " + "[" * 5000 + "]" * 5000 + "\n", "{path}:1: nested deeper than 20 levels"),
        (
            "a: &a " + "[" * 15 + "]" * 15 + "\nb: [[[[[[[*a]]]]]]]\n",
            "{path}:2: nested deeper than 20 levels",
        ),
        ("postgres: &p {x: [*p]}\n", "{path}:1: alias *p is inside its own anchor"),
    ],
    ids=["alias bomb", "billion laughs", "5000 deep", "deep through an alias", "recursive alias"],
)
def test_bombs_stop_with_one_line(tmp_path: Path, text: str, line: str) -> None:
    done = _cli(tmp_path, text)
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == f"blockmon: error: {line.format(path=tmp_path / 'config.yml')}\n"


def test_merge_keys_and_anchors_still_work(tmp_path: Path) -> None:
    path = tmp_path / "c.yml"
    path.write_text(
        "postgres: &pg\n  pool_size: 4\n  hosts: &h ['a:5432', 'b:5433']\n"
        "redis:\n  mode: sentinel\n  service_name: m\n  sentinels: ['s:26379', 's2:26379']\n"
    )
    settings = load_settings(path, environ={})
    assert settings.postgres.hosts == ["a:5432", "b:5433"]
    path.write_text(
        "postgres: &pg {pool_size: 4, hosts: &h ['a:5432']}\n"
        "migrations: {lock_wait: 3}\n"
        "redis: {mode: cluster, cluster_nodes: *h}\n"
    )
    settings = load_settings(path, environ={})
    assert settings.redis.cluster_nodes == settings.postgres.hosts == ["a:5432"]


@pytest.mark.parametrize(
    ("text", "line"),
    [
        (
            "postgres:\n  host: a\n  host: b\n",
            "{path}:3: invalid YAML: duplicate key 'host' (first on line 2)",
        ),
        ("redis: {db: 1, db: 2}\n", "{path}:1: invalid YAML: duplicate key 'db' (first on line 1)"),
        (
            "postgres: {}\npostgres: {}\n",
            "{path}:2: invalid YAML: duplicate key 'postgres' (first on line 1)",
        ),
        ("postgres:\n  pool_size: true\n", "postgres.pool_size: must be a number, got True"),
        ("redis:\n  socket_timeout: false\n", "redis.socket_timeout: must be a number, got False"),
        (
            "postgres:\n  max_lifetime: .inf\n",
            "postgres.max_lifetime: must be a finite number, got inf",
        ),
        ("x: 2024-02-30\n", "{path}: invalid YAML value: day is out of range for month"),
        (
            "monitoring:\n  details: token\n  details_token: x\n",
            "monitoring.details_token: must be at least 16 characters, without spaces",
        ),
        (
            "monitoring:\n  details: token\n  details_token: '                  '\n",
            "monitoring.details_token: must be at least 16 characters, without spaces",
        ),
    ],
    ids=[
        "duplicate key",
        "duplicate in flow",
        "duplicate section",
        "bool for int",
        "bool for float",
        "inf",
        "bad date",
        "one-char token",
        "blank token",
    ],
)
def test_strict_types(
    tmp_path: Path, text: str, line: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "c.yml"
    path.write_text(text)
    assert main(["config", "show", "-c", str(path)]) == 2
    assert capsys.readouterr() == ("", f"blockmon: error: {line.format(path=path)}\n")


@pytest.mark.parametrize("section", ["postgres", "redis", "migrations"])
def test_a_section_given_as_a_url_never_shows_the_password(
    tmp_path: Path,
    section: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("BM_URL", f"postgresql://bm:{SECRET}@db:5432/bm")
    path = tmp_path / "c.yml"
    path.write_text(f"{section}: ${{BM_URL}}\n")
    assert main(["config", "show", "-c", str(path)]) == 2
    expected = f"{section}: must be a mapping of settings, got a URL (write it as {section}.url)"
    assert capsys.readouterr() == ("", f"blockmon: error: {expected}\n")


def test_a_huge_value_is_cut(tmp_path: Path) -> None:
    path = tmp_path / "c.yml"
    path.write_text("postgres:\n  pool_size: ${BIG}\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(path, environ={"BIG": "9" * 20_000_000})
    line = str(caught.value)
    assert (
        line.startswith("postgres.pool_size: must be <= 1000, got ") or "must be an integer" in line
    )
    assert line.endswith("... (20000000 characters)") or len(line) < 200, line[:300]
    assert len(line) < 200


def test_a_huge_value_through_the_cli(tmp_path: Path) -> None:
    done = _cli(tmp_path, "postgres:\n  host: ${BIG}\n  port: ${BIG}\n", env={"BIG": "x" * 100_000})
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr.startswith("blockmon: error: postgres.port: must be an integer, got 'xxx")
    assert done.stderr.endswith("... (100000 characters)\n")
    assert len(done.stderr) < LINE_LIMIT


def test_a_file_over_the_size_bound(tmp_path: Path) -> None:
    done = _cli(tmp_path, "# " + "x" * MAX_BYTES + "\n")
    assert (
        done.stderr
        == f"blockmon: error: {tmp_path / 'config.yml'}: config file is larger than {MAX_BYTES} bytes\n"
    )
    assert done.returncode == 2


@pytest.mark.parametrize(
    ("url", "line"),
    [
        ("postgresql://u:{s}@db:0/x", "postgres.url: port must be a number between 1 and 65535"),
        (
            "postgresql://u:{s}@db:99999/x",
            "postgres.url: port must be a number between 1 and 65535",
        ),
        ("postgresql://u:{s}@db:abc/x", "postgres.url: port must be a number between 1 and 65535"),
        (
            "postgresql://u:{s}@TAILSECRET@db:5432/x",
            "postgres.url: the user name or password contains a raw '@': percent-encode it as %40",
        ),
        (
            "redis://u:{s}@TAILSECRET@cache/0",
            "redis.url: the user name or password contains a raw '@': percent-encode it as %40",
        ),
        (
            "redis://cache:6379/abc",
            "redis.url: database (the path) must be an integer between 0 and 1023",
        ),
        (
            "redis://cache:6379/1024",
            "redis.url: database (the path) must be an integer between 0 and 1023",
        ),
        (
            "postgresql://u:{s}@db/x?sslmode=bogus",
            "postgres.url: query option sslmode has an invalid value, got 'bogus'",
        ),
        (
            "postgresql://u:{s}@db/x?foo=bar",
            "postgres.url: unknown query option 'foo' (accepted: host, port, user, password, database, passfile, target_session_attrs, krbsrvname, gsslib, prepared_statement_cache_size, dbname, sslmode, ssl, connect_timeout, application_name, options)",
        ),
        (
            "postgresql://u@db/x?host=a:0",
            "postgres.url: query option host has an invalid value, got 'a:0'",
        ),
        ("redis://u:{s}@cache:0/0", "redis.url: port must be a number between 1 and 65535"),
        ("redis://u:{s}@cache:65536/0", "redis.url: port must be a number between 1 and 65535"),
        ("redis://u:{s}@cache/0?foo=bar", "redis.url: unknown query option 'foo' for redis://"),
        ("redis://u:{s}@cache/0?db=x", "redis.url: query option db has an invalid value, got 'x'"),
        (
            "redis://cache/0?protocol=4",
            "redis.url: query option protocol has an invalid value, got '4'",
        ),
        (
            "redis://cache/0?socket_timeout=-1",
            "redis.url: query option socket_timeout has an invalid value, got '-1'",
        ),
        (
            "unix:///run/redis.sock?socket_keepalive=true",
            "redis.url: unknown query option 'socket_keepalive' for unix://",
        ),
    ],
)
def test_urls_are_checked_like_the_drivers_would(tmp_path: Path, url: str, line: str) -> None:
    section = line.split(".")[0]
    with pytest.raises(ConfigError) as caught:
        load_settings(
            None,
            environ={
                "DATABASE_URL" if section == "postgres" else "REDIS_URL": url.format(s=SECRET)
            },
        )
    assert str(caught.value) == line
    assert SECRET not in str(caught.value)


@pytest.mark.parametrize(
    ("tree", "line"),
    [
        (
            {"migrations": {"url": "postgresql://u:{s}@TAILSECRET@db/x"}},
            "migrations.url: the user name or password contains a raw '@': percent-encode it as %40",
        ),
        (
            {"postgres": {"replicas": ["db-1:5432", "postgresql://u:{s}@TAILSECRET@db/x"]}},
            "postgres.replicas.1: the user name or password contains a raw '@': percent-encode it as %40",
        ),
        (
            {"postgres": {"replicas": ["postgresql://u:{s}@db:abc/x"]}},
            "postgres.replicas.0: port must be a number between 1 and 65535",
        ),
    ],
)
def test_every_url_setting_gets_the_url_checks(
    tmp_path: Path, tree: dict[str, Any], line: str
) -> None:
    """The CLI as typed: exit 2, one line naming the setting, no piece of the password."""
    text = yaml.safe_dump(tree).replace("{s}", SECRET)
    done = _cli(tmp_path, text, "health")
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == f"blockmon: error: {line}\n"
    assert SECRET not in done.stderr and "TAILSECRET" not in done.stderr


def test_health_says_the_same_line_instead_of_a_type_error(tmp_path: Path) -> None:
    done = _cli(
        tmp_path, "{}\n", "health", env={"DATABASE_URL": "postgresql://u@127.0.0.1/x?foo=bar"}
    )
    assert done.returncode == 2
    assert done.stderr.startswith("blockmon: error: postgres.url: unknown query option 'foo'")


def test_accepted_query_options_connect(tmp_path: Path, blockmon_settings: Settings) -> None:
    """Options the check lets through are ones asyncpg / redis-py take: a real connect."""
    pg = engine_url(blockmon_settings.postgres).set(drivername="postgresql")
    pg = pg.update_query_dict(
        {"sslmode": "disable", "target_session_attrs": "any", "prepared_statement_cache_size": "0"}
    )
    redis = blockmon_settings.redis
    base = redis.url.get_secret_value() if redis.url else f"redis://{redis.host}:{redis.port}/0"
    options = "socket_timeout=2&client_name=bm&protocol=3&health_check_interval=0"
    done = _cli(
        tmp_path,
        "{}\n",
        "health",
        env={
            "DATABASE_URL": pg.render_as_string(hide_password=False),
            "REDIS_URL": base + ("&" if "?" in base else "?") + options,
        },
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_an_override_does_not_leak_into_a_section_sharing_its_mapping(tmp_path: Path) -> None:
    path = tmp_path / "c.yml"
    path.write_text("redis: &r {}\nmonitoring: *r\n")
    settings = load_settings(path, environ={"REDIS_URL": "redis://h:6379/0"})
    assert settings.redis.url is not None and settings.monitoring.http_port == 9464


@pytest.mark.parametrize("file", ["custom.yml", "config.yml"])
def test_migrations_database_url_applies_whatever_the_file(tmp_path: Path, file: str) -> None:
    path = tmp_path / file
    path.write_text("postgres:\n  url: postgresql://app@pgbouncer:6432/app\n")
    url = f"postgresql://owner:{SECRET}@db:5432/app"
    settings = load_settings(path, environ={"MIGRATIONS_DATABASE_URL": url})
    assert settings.migrations.url is not None
    assert settings.migrations.url.get_secret_value() == url
    assert settings.postgres.url is not None
    assert settings.postgres.url.get_secret_value() == "postgresql://app@pgbouncer:6432/app"


def test_a_raw_at_in_the_password_stops_every_command_at_load(tmp_path: Path) -> None:
    """The outsider's URL: each command exits 2 before connecting, no piece of the
    password anywhere (once: ``cannot resolve host 'postgres:***@TAILSECRET@...'``)."""
    url = f"postgresql://postgres:{SECRET}@TAILSECRET@127.0.0.1:5432/db"
    line = "blockmon: error: postgres.url: the user name or password contains a raw '@': "
    for command in (["health"], ["health", "--json"], ["db", "current"], ["db", "upgrade"]):
        done = _cli(tmp_path, "{}\n", *command, env={"DATABASE_URL": url})
        assert (done.returncode, done.stdout) == (2, ""), command
        assert done.stderr == line + "percent-encode it as %40\n", command
    done = _cli(tmp_path, "{}\n", "up", "--no-embedded", env={"DATABASE_URL": url})
    assert done.returncode == 2 and "TAILSECRET" not in done.stdout + done.stderr
    assert done.stderr.endswith(line + "percent-encode it as %40\n")


def test_an_applications_dotenv_file_is_not_read(tmp_path: Path) -> None:
    """docs/core.md: blockmon reads the environment, not an application's ``.env``."""
    (tmp_path / ".env").write_text("DATABASE_URL=postgresql://app@dotenv-host:5432/app\n")
    path = tmp_path / "config.yml"
    path.write_text("{}\n")
    done = subprocess.run(
        [BLOCKMON, "config", "show", "--json", "-c", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["postgres"]["url"] is None
    assert "dotenv-host" not in done.stdout + done.stderr
