"""The ``python -m pipeline`` command line: one subcommand per module in
``pipeline.commands``, so each command's arguments live beside the code they drive.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from pipeline.exit_codes import ExitCode

COMMAND_MODULES: tuple[str, ...] = (
    "pipeline.commands.run",
    "pipeline.commands.serve",
    "pipeline.commands.step",
    "pipeline.commands.synth",
    "pipeline.commands.monitor",
    "pipeline.commands.deliver",
)
"""Subcommand modules, in the order ``--help`` lists them."""


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The argument parser with every subcommand registered (or only the module ``only``).

    Registering one subcommand imports one command module: a cached ``run`` must not pay
    for the server's or the delivery tooling's imports (its target is under 3 s).
    """
    parser = argparse.ArgumentParser(
        prog="python -m pipeline",
        description="Run the commit pipeline, serve the champion, monitor it, rehearse delivery.",
        epilog="Exit codes: " + ", ".join(f"{c.value} {c.name.lower()}" for c in ExitCode),
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module_name in COMMAND_MODULES if only is None else (only,):
        importlib.import_module(module_name).add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` and run the chosen subcommand; returns its exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    # A module's last name is its command's name (pipeline.commands.run -> run).
    chosen = next((m for m in COMMAND_MODULES if argv and m.rsplit(".", 1)[-1] == argv[0]), None)
    args = build_parser(chosen).parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
