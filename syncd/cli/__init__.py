"""The `syncd` command. Each command loads the config, calls one public function of the run or admin rooms
and maps errors to exit codes.

`base`: the group, the shared options and the error handling; `commands`: run-once, daemon, status, check,
migrate, demo, config check and validate; `links`: the `links` group.
"""

from syncd.cli import links as _links  # noqa: F401 - registers the links group on `cli`
from syncd.cli.base import cli
from syncd.cli.commands import main

__all__ = ["cli", "main"]
