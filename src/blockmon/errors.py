"""Every exception blockmon raises on purpose, one hierarchy under `BlockmonError`; each
message is fit for a user."""

from __future__ import annotations


class BlockmonError(Exception):
    """Base class: the message is one line, names what is wrong, and holds no secret."""


class ConfigError(BlockmonError):
    """A setting is missing, malformed or out of range; the CLI exits 2 on it."""


class UsageError(BlockmonError):
    """A command was called with arguments it cannot take; the CLI exits 2 on it."""


class MigrationError(BlockmonError):
    """Alembic refused or failed: schema drift, database behind head, and the like."""


class RevisionFailed(MigrationError):
    """A revision raised; its transaction was rolled back, earlier revisions stay."""


class MigrationLockTimeout(MigrationError):
    """Another migration held the lock for longer than ``migrations.lock_wait``."""


class Disabled(BlockmonError):
    """PostgreSQL or Redis was used while its section says ``enabled: false``."""


class NoHealthyReplica(BlockmonError):
    """No replica accepts connections and falling back to the writer is switched off."""


class EmbeddedUnavailable(BlockmonError):
    """The ``embedded`` extra is not installed or an embedded server would not start."""


class ServerStartError(BlockmonError):
    """A throwaway test server did not start or did not reach the expected state in time."""


class CredentialError(BlockmonError):
    """A password source (file, command, provider) could not give a password; the
    message names the setting and never holds the command's output."""
