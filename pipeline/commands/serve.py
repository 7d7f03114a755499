"""``python -m pipeline serve``: serve the local store's champion in the foreground.

The same server as the container (``serving.server``), with the embedded default's
conveniences: the tracking URI defaults to the local store
(``LocalStore.default().tracking_uri``, i.e. ``.mlops/mlflow.db`` or ``$MLOPS_HOME``),
the model to ``models:/adult-income@champion``, the address to 127.0.0.1:8080 and the
capture folder to the store's ``capture/``. Stop it with Ctrl-C or SIGTERM. Exits 2
before loading anything when the store has no registry yet, the port is busy or the
capture folder cannot be written. See docs/serving.md for a curl call against it.
"""

from __future__ import annotations

import argparse
import sys

from pipeline.exit_codes import ExitCode
from pipeline.local_store import LocalStore
from pipeline import schema



def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``serve`` and its arguments (shared with ``python -m serving``)."""
    from serving.server import add_server_arguments

    parser = subparsers.add_parser(
        "serve",
        help="serve the champion on 127.0.0.1:8080 (foreground)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_server_arguments(parser, default_host="127.0.0.1")
    parser.add_argument("--no-capture", action="store_true", help="do not capture requests to the local store")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Fill the local-store defaults in, then run the server until it is stopped."""
    from serving.server import options_from_args
    from serving.server import run as run_server

    store = LocalStore.default()
    if getattr(args, "quiet", False) and args.log_level == "info":
        args.log_level = "warning"
    elif getattr(args, "verbose", False) and args.log_level == "info":
        args.log_level = "debug"
    if not args.tracking_uri:
        args.tracking_uri = store.tracking_uri
        # A moved or copied store still points MLflow at its old artifact paths.
        note = store.relocate()
        if note:
            print(f"serve: {note}", file=sys.stderr)
    if not args.model_uri and not args.model_name:
        args.model_name = schema.DEFAULT_MODEL_NAME
    if args.no_capture:
        args.capture_dir = None
    elif not args.capture_dir:
        # Not store.ensure(): the server's preflight refuses a missing registry before
        # anything is created, and creates the capture folder only once that passed.
        args.capture_dir = str(store.capture_dir)
    try:
        options = options_from_args(args)
    except ValueError as exc:
        print(f"serve: {exc}", file=sys.stderr)
        return int(ExitCode.USAGE)
    code = run_server(options)
    # The server's own codes are ExitCode's: 0 served until stopped, 1 the model failed
    # to load, 2 preflight refused the configuration.
    return int(ExitCode(code)) if code in (ExitCode.OK, ExitCode.ERROR, ExitCode.USAGE) else int(ExitCode.ERROR)
