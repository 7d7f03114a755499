"""``python -m pipeline synth``: write synthetic rows of the active contract (CSV or Parquet by suffix).

For benchmarks at sizes the real data does not reach and for drift scenarios
(``--drift`` in [0, 1]); see ``pipeline.synthetic``. Rows are drawn from a reference
sample of real data: ``--data FILE`` (any project), or the shipped dataset while the
shipped project is active.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from pipeline.exit_codes import ExitCode


def add_parser(subparsers: Any) -> None:
    """Register the ``synth`` subcommand."""
    parser = subparsers.add_parser("synth", help="write synthetic rows of the contract, optionally drifted",
                                   description=__doc__)
    parser.add_argument("--rows", type=int, required=True, help="number of rows")
    parser.add_argument("--drift", type=float, default=0.0, help="drift strength in [0, 1] (default 0)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--out", type=Path, required=True, help="output file: .csv, .csv.gz or .parquet")
    parser.add_argument("--data", type=Path, default=None,
                        help="reference data the rows are drawn from (default: the shipped dataset, "
                             "only while the shipped project is active)")
    parser.set_defaults(func=synth_command)


def synth_command(args: argparse.Namespace) -> int:
    """Generate and write the data; usage errors (bad rows, drift, suffix) exit 2."""
    from pipeline.data import DataLoadError, load_dataset, write_dataset
    from pipeline.synthetic import generate_synthetic

    try:
        reference = None if args.data is None else load_dataset(args.data)
        frame = generate_synthetic(args.rows, seed=args.seed, drift=args.drift, reference=reference)
        path = write_dataset(frame, args.out)
    except (ValueError, DataLoadError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return int(ExitCode.USAGE)
    if getattr(args, "json", False):
        from pipeline import console

        console.emit_json({"exit_code": int(ExitCode.OK), "rows": len(frame), "drift": args.drift,
                           "seed": args.seed, "path": str(path)})
    else:
        print(f"wrote {len(frame)} rows (drift={args.drift}, seed={args.seed}) to {path}")
    return int(ExitCode.OK)
