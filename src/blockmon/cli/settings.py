"""The settings a command runs with: its ``-c FILE`` and ``--log-level``, passed as
arguments (the process environment is read, never written). The command owns its
process, so its logging takes over the root logger (``log.configure_root``)."""

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
    settings = load_settings(args.config, environ)
    log = settings.log.model_copy(update={"configure_root": True})
    return settings.model_copy(update={"log": log})
