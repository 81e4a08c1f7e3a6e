"""Ceilings measured in the same run: what the servers give to C clients on this
machine (pgbench -S on a scratch database, redis-benchmark on a scratch db index).
Loopback servers only."""

from __future__ import annotations

import ipaddress
import os
import re
import secrets
import shutil
import subprocess

import redis
from harness import Row

from blockmon.config.settings import Settings

PGBENCH_CLIENTS = 16  # the shared server keeps connections to spare for other users
REDIS_CLIENTS = 32
REDIS_DB = 15  # redis-benchmark writes only its own key:__rand_int__ there; deleted after
_TPS = re.compile(r"tps = ([\d.]+) \(without initial connection time\)")
_RPS = re.compile(r"^([A-Z]+): ([\d.]+) requests per second", re.MULTILINE)


def loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _run(argv: list[str], env: dict[str, str], timeout: float) -> str:
    done = subprocess.run(
        argv, capture_output=True, text=True, timeout=timeout, env=env, check=True
    )
    return done.stdout + done.stderr


def pgbench(settings: Settings, seconds: int) -> list[Row]:
    pg = settings.postgres
    if shutil.which("pgbench") is None or not loopback(pg.host):
        return [
            Row("ceiling", "pgbench -S", None, "tps", "not available (no pgbench or not loopback)")
        ]
    env = {**os.environ}
    if pg.password is not None:
        env["PGPASSWORD"] = pg.password.get_secret_value()
    conn = ["-h", pg.host, "-p", str(pg.port), "-U", pg.user]
    name = f"blockmon_bench_pgbench_{secrets.token_hex(4)}"
    _run(["createdb", *conn, name], env, 60)
    try:
        _run(["pgbench", *conn, "-i", "-q", "-s", "1", name], env, 120)
        out = _run(
            [
                "pgbench",
                *conn,
                "-S",
                "-n",
                "-c",
                str(PGBENCH_CLIENTS),
                "-j",
                "2",
                "-T",
                str(seconds),
                name,
            ],
            env,
            seconds + 60,
        )
    finally:
        _run(["dropdb", *conn, "--force", "--if-exists", name], env, 60)
    match = _TPS.search(out)
    value = float(match.group(1)) if match else None
    return [Row("ceiling", f"pgbench -S -c {PGBENCH_CLIENTS} -j 2", value, "tps")]


def redis_benchmark(settings: Settings, requests: int) -> list[Row]:
    rs = settings.redis
    if shutil.which("redis-benchmark") is None or not loopback(rs.host) or rs.password is not None:
        return [Row("ceiling", "redis-benchmark", None, "req/s", "not available")]
    base = [
        "redis-benchmark",
        "-h",
        rs.host,
        "-p",
        str(rs.port),
        "--dbnum",
        str(REDIS_DB),
        "-d",
        "100",
        "-q",
    ]
    rows = []
    for label, extra in (("", []), (" -P 100", ["-P", "100"])):
        out = _run(
            [
                *base,
                "-t",
                "get,set",
                "-c",
                str(REDIS_CLIENTS),
                "-n",
                str(requests * (10 if extra else 1)),
                *extra,
            ],
            dict(os.environ),
            120,
        )
        for command, rps in _RPS.findall(out):
            rows.append(
                Row(
                    "ceiling",
                    f"redis-benchmark {command} -c {REDIS_CLIENTS}{label}",
                    float(rps),
                    "req/s",
                )
            )
    client = redis.Redis(host=rs.host, port=rs.port, db=REDIS_DB)
    try:
        client.delete("key:__rand_int__")
    finally:
        client.close()
    return rows
