"""``blockmon doctor``: what will break first, from the servers' own limits against the
settings x processes. Exit 0 fine, 1 warnings, 2 will break (or a bad argument)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from blockmon.cli.arguments import positive_int

if TYPE_CHECKING:
    from blockmon.cli.doctor.facts import Deployment
    from blockmon.config.settings import Settings

READ_TIMEOUT = 5.0  # seconds for each server to connect and answer


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    doctor = sub.add_parser(
        "doctor",
        help="check the servers' limits against the settings x processes",
        parents=[common],
    )
    doctor.add_argument(
        "--workers",
        type=positive_int,
        metavar="N",
        help="processes per replica (default: the live workers in monitoring.multiprocess_dir, else 1)",
    )
    doctor.add_argument(
        "--replicas", type=positive_int, default=1, metavar="N", help="replicas (default 1)"
    )
    doctor.add_argument(
        "--db-cores",
        type=positive_int,
        metavar="N",
        help="the database host's cores, for HikariCP's sizing formula (default: this "
        "host's when the database is local)",
    )
    doctor.add_argument("--json", action="store_true", help="print one JSON document")
    doctor.set_defaults(handler=run_doctor)


def run_doctor(args: argparse.Namespace) -> int:
    import json

    from blockmon.cli.doctor.facts import Facts
    from blockmon.cli.doctor.report import document, text
    from blockmon.cli.doctor.rules import check, exit_code
    from blockmon.cli.loop import run
    from blockmon.cli.settings import command_settings
    from blockmon.config.log import configure_logging

    settings = command_settings(args)
    configure_logging(settings.log)
    facts = Facts(deployment(args, settings))
    run(_read(settings, facts))
    findings = check(settings, facts)
    if args.json:
        print(json.dumps(document(facts, findings), indent=2))
    else:
        from blockmon.cli.target import say_target

        say_target(args, settings, lambda line: print(f"blockmon: {line}", flush=True))
        print(text(facts, findings))
    return exit_code(findings)


async def _read(settings: Settings, facts: Any) -> None:
    import asyncio

    from blockmon.cli.doctor.read_postgres import read_postgres
    from blockmon.cli.doctor.read_redis import read_redis

    await asyncio.gather(
        read_postgres(settings.postgres, facts, READ_TIMEOUT),
        read_redis(settings.redis, facts, READ_TIMEOUT),
    )


def deployment(args: argparse.Namespace, settings: Settings) -> Deployment:
    import os

    from blockmon.cli.doctor.facts import Deployment
    from blockmon.cli.doctor.rules import local_database

    workers, source = args.workers, "--workers"
    directory = settings.monitoring.multiprocess_dir
    if workers is None and directory is not None:
        from blockmon._compat.prometheus import live_gauge_pids

        live = [pid for pid in live_gauge_pids(directory) if _alive(pid)]
        workers, source = max(1, len(live)), f"{len(live)} live in {directory}"
    if workers is None:
        workers, source = 1, "default; pass --workers N"
    cores, cores_from = args.db_cores, "--db-cores"
    if cores is None and local_database(settings.postgres):
        cores, cores_from = os.cpu_count(), "this host's, the database is local"
    return Deployment(workers, args.replicas, source, cores, cores_from if cores else "unknown")


def _alive(pid: int) -> bool:
    import os

    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
