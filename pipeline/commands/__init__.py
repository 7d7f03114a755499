"""One module per ``python -m pipeline`` subcommand.

Each module defines ``add_parser(subparsers) -> None`` (which sets ``func`` on its parser
with ``set_defaults(func=...)``); ``func(args) -> int`` returns an ``ExitCode``.
"""
