"""Errors a user sees. Each carries a message that says what was wrong and what to do.

The CLI turns these into one line on stderr and an exit code; anything else is a bug.
"""

from __future__ import annotations


class SyncdError(Exception):
    """Base for every error that is reported to the user without a traceback."""


class ConfigError(SyncdError):
    """The configuration file is missing, unreadable or invalid."""


class ExportError(SyncdError):
    """An export file is not a valid settlements export (format v1).

    `where` locates the problem for a human: "line 12", "counterparty #3 (id=…)", "payment #2".
    """

    def __init__(self, file: str, message: str, *, where: str | None = None, field: str | None = None):
        self.file = file
        self.where = where
        self.field = field
        self.message = message
        super().__init__(self.__str__())

    def __str__(self) -> str:
        parts = [self.file]
        if self.where:
            parts.append(self.where)
        if self.field:
            parts.append(f"field {self.field}")
        return ": ".join(parts) + f": {self.message}"


class StateError(ConfigError):
    """state.dir cannot be written: full, read-only, or another user's. Exit 3, like a configuration
    problem: the fix is on this host (free space, remount, chown), not in the data or the network."""


class SourceError(SyncdError):
    """The export source (SFTP, FTP or HTTP server, or folder) cannot be reached or read."""


class DatabaseError(SyncdError):
    """The Bitrix database cannot be reached, or is not what syncd expects."""


class SchemaError(DatabaseError):
    """The Bitrix database lacks tables or fields syncd needs (run `syncd migrate`)."""


class LockedError(SyncdError):
    """Another run holds the lock (or this run lost it); nothing was applied."""


# Exit codes, documented in the README and `syncd --help`. When a run has several outcomes the
# first of database, source, rejected, held wins (see runner.RunResult.exit_code).
EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_USAGE = 2  # click's own code for usage errors
EXIT_CONFIG = 3
EXIT_REJECTED = 4
EXIT_HELD = 5
EXIT_SOURCE = 6
EXIT_DATABASE = 7
EXIT_LOCKED = 8


def exit_code_for(exc: BaseException) -> int:
    """The exit code of an error that ends a command or a run."""
    if isinstance(exc, LockedError):
        return EXIT_LOCKED
    if isinstance(exc, ConfigError):
        return EXIT_CONFIG
    if isinstance(exc, DatabaseError):
        return EXIT_DATABASE
    if isinstance(exc, SourceError):
        return EXIT_SOURCE
    return EXIT_INTERNAL
