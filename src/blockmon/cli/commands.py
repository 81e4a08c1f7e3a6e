"""The list of sub-commands; each module adds its parser and handler."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from blockmon.cli import config_cmd, db_cmd, doctor_cmd, health_cmd, serve_cmd, up_cmd

Register = Callable[[Any, argparse.ArgumentParser], None]

REGISTRY: list[Register] = [
    up_cmd.register,
    config_cmd.register,
    health_cmd.register,
    serve_cmd.register,
    db_cmd.register,
    doctor_cmd.register,
]
