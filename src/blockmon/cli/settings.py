"""The settings a command runs with: its ``-c FILE`` and ``--log-level``, passed as
arguments (the process environment is read, never written)."""

from __future__ import annotations

import argparse
import os

from blockmon.config.file import load_settings
from blockmon.config.settings import Settings


def command_settings(args: argparse.Namespace) -> Settings:
    """Load and validate the configuration the command line names."""
    environ = dict(os.environ)
    if args.log_level:
        environ["BLOCKMON_LOG_LEVEL"] = args.log_level
    return load_settings(args.config, environ)
