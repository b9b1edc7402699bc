"""The `syncd` command. Each command loads the config, calls one public function and maps errors to exit codes."""

from __future__ import annotations

import click

from syncd import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="syncd")
def cli() -> None:
    """Apply 1C settlements exports to Bitrix HL-blocks."""


def main() -> None:
    cli()
