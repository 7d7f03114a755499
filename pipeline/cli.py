"""The ``python -m pipeline`` command line: one subcommand per module in
``pipeline.commands``, so each command's arguments live beside the code they drive.

The conventions every command shares are added here, not in each module: ``--version``,
``--quiet``, ``--verbose`` and, on each command that prints a result, ``--json``
(``pipeline.console`` says what each does).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from pathlib import Path

from pipeline import console
from pipeline.exit_codes import ExitCode

COMMAND_MODULES: tuple[str, ...] = (
    "pipeline.commands.init",
    "pipeline.commands.run",
    "pipeline.commands.serve",
    "pipeline.commands.step",
    "pipeline.commands.synth",
    "pipeline.commands.monitor",
    "pipeline.commands.deliver",
)
"""Subcommand modules, in the order ``--help`` lists them."""
NO_RESULT: frozenset[str] = frozenset({"serve"})
"""Commands that print no result to put in ``--json`` (``serve`` runs until stopped, logging)."""
DIST_NAME = "gpu-mlops-platform"


def version() -> str:
    """This package's installed version (pyproject's), or "unknown" from a bare checkout."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as dist_version

    try:
        return dist_version(DIST_NAME)
    except PackageNotFoundError:
        return "unknown"


def _leaf_parsers(parser: argparse.ArgumentParser) -> list[tuple[str, argparse.ArgumentParser]]:
    """Every runnable (sub)command parser under ``parser``, with its top-level command name."""
    found: list[tuple[str, argparse.ArgumentParser]] = []
    for action in parser._actions:  # argparse offers no public walk of its subparsers
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                nested = _leaf_parsers(sub)
                found.extend((name, leaf) for _, leaf in nested) if nested else found.append((name, sub))
    return found


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
    parser.add_argument("--version", action="version", version=f"%(prog)s {version()}")
    parser.add_argument("--project", type=Path, metavar="FILE",
                        help="the project configuration (default: $MLOPS_PROJECT, else ./project.yaml, "
                             "else the shipped Adult example); docs/contracts.md documents it")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module_name in COMMAND_MODULES if only is None else (only,):
        importlib.import_module(module_name).add_parser(subparsers)
    for command, leaf in _leaf_parsers(parser):
        console.add_common_options(leaf, result=command not in NO_RESULT)
    return parser


def _activate_project(argv: list[str]) -> list[str] | int:
    """Load the project configuration ``--project`` names (or the default one) before any
    command module is imported; returns ``argv`` without ``--project FILE``, or exit 2 when
    the file is refused (every problem named, by key)."""
    from pipeline import schema
    from pipeline.project import ProjectConfigError

    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--project", type=Path)
    command = next((i for i, a in enumerate(argv) if not a.startswith("-") and argv[i - 1:i] != ["--project"]), len(argv))
    known, rest = pre.parse_known_args(argv[:command])
    if "-h" in argv or "--help" in argv or "--version" in argv or argv[:1] == ["init"]:
        # Help, the version and ``init`` (which writes the file) need no valid configuration.
        return rest + argv[command:]
    try:
        schema.activate(known.project)
    except ProjectConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return int(ExitCode.USAGE)
    return rest + argv[command:]


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` and run the chosen subcommand; returns its exit code."""
    activated = _activate_project(list(sys.argv[1:] if argv is None else argv))
    if isinstance(activated, int):
        return activated
    argv = activated
    # A module's last name is its command's name (pipeline.commands.run -> run).
    chosen = next((m for m in COMMAND_MODULES if argv and m.rsplit(".", 1)[-1] == argv[0]), None)
    args = build_parser(chosen).parse_args(argv)
    console.configure(console.verbosity_of(args))
    if getattr(args, "json", False):
        console.divert_stdout_for_json()
    try:
        code = int(args.func(args))
        if getattr(args, "json", False) and not console.emitted():
            # A command without a document of its own still answers --json with its outcome.
            what = {k: getattr(args, k) for k in ("command", "stage", "name") if getattr(args, k, None)}
            status = ExitCode(code).name.lower() if code in ExitCode._value2member_map_ else "terminated"
            console.emit_json({**what, "exit_code": code, "status": status})
        return code
    finally:
        console.reset()


if __name__ == "__main__":
    sys.exit(main())
