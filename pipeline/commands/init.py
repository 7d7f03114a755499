"""``python -m pipeline init``: profile a dataset and write its project configuration.

The first step of bringing a new dataset (issue 14): read the file the way the pipeline
does (``pipeline.data.load_dataset``), infer every column's type, range, allowed values
and nullability (``pipeline.project.profile``), and write a commented YAML a person
reviews and edits (slices, sensitive attribute, gate thresholds). An existing file is
never overwritten without ``--force``; a label that is missing, null, non-numeric for
regression or not two-valued for binary is refused (exit 2) and nothing is written, as is
a text column with so many distinct values that it is an identifier or free text
(``--exclude`` leaves such a column out).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from pipeline.exit_codes import ExitCode


def add_parser(subparsers: Any) -> None:
    """Register the ``init`` subcommand."""
    from pipeline.project import TASKS

    parser = subparsers.add_parser("init", help="profile a dataset and write its project configuration",
                                   description=__doc__)
    parser.add_argument("--data", type=Path, required=True, help="the dataset: .csv (optionally compressed) or .parquet")
    parser.add_argument("--label", required=True, help="the column the model predicts")
    parser.add_argument("--task", choices=tuple(TASKS), default="binary", help="what the model predicts (default binary)")
    parser.add_argument("--out", type=Path, default=Path("project.yaml"),
                        help="the configuration to write (default project.yaml)")
    parser.add_argument("--model-name", default=None,
                        help="the registered model's name (default: the data file's name, e.g. adult for adult.csv.gz)")
    parser.add_argument("--exclude", action="append", default=[], metavar="COLUMN",
                        help="leave COLUMN out of the contract (an identifier, free text); repeatable. The "
                             "pipeline ignores columns the contract does not declare")
    parser.add_argument("--force", action="store_true", help="overwrite --out if it exists")
    parser.set_defaults(func=init_command)


def _write_atomically(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` whole or not at all (a killed init leaves the old file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def init_command(args: argparse.Namespace) -> int:
    """Profile ``--data`` and write ``--out``; usage errors exit 2, an unreadable file 4."""
    from pipeline import console
    from pipeline.data import DataLoadError, load_dataset
    from pipeline.project import ProjectConfigError, check_data, default_model_name, loads, profile, render

    out: Path = args.out
    if out.exists() and not args.force:
        print(f"error: {out} already exists; pass --force to overwrite it", file=sys.stderr)
        return int(ExitCode.USAGE)
    if out.exists() and not out.is_file():
        print(f"error: {out} exists and is not a file", file=sys.stderr)
        return int(ExitCode.USAGE)
    try:
        frame = load_dataset(args.data)
    except DataLoadError as exc:
        print(f"invalid data: {exc}", file=sys.stderr)
        return int(ExitCode.INVALID_DATA)
    model_name = args.model_name or default_model_name(args.data.name)
    unknown = sorted(set(args.exclude) - {str(c) for c in frame.columns})
    if unknown or args.label in args.exclude:
        why = f"--exclude names no column of the data: {', '.join(unknown)}" if unknown else f"--exclude names the label {args.label!r}"
        print(f"error: {args.data}: {why}", file=sys.stderr)
        return int(ExitCode.USAGE)
    try:
        project = profile(frame.drop(columns=args.exclude), args.label, args.task, model_name=model_name)
        text = render(project, source=str(args.data))
        # What is written must load back to what was profiled and agree with its data.
        written = loads(text, source=str(out))
        problems = check_data(written, frame)
        if problems:
            raise ProjectConfigError(problems, source=str(out))
    except ValueError as exc:  # ProjectConfigError included (an invalid --model-name)
        print(f"error: {args.data}: {exc}", file=sys.stderr)
        return int(ExitCode.USAGE)
    _write_atomically(out, text)
    summary = {"exit_code": int(ExitCode.OK), "path": str(out), "data": str(args.data), "rows": len(frame),
               "columns": len(project.data.columns), "label": project.data.label, "task": project.task,
               "positive_class": project.data.positive_class, "model_name": project.model_name}
    if getattr(args, "json", False):
        console.emit_json(summary)
    else:
        positive = "" if project.data.positive_class is None else f", positive class {project.data.positive_class!r}"
        print(f"wrote {out}: {len(project.data.columns)} columns from {len(frame)} rows of {args.data}, "
              f"label {project.data.label!r} ({project.task}{positive}), model {project.model_name!r}")
        console.info("review it: choose slices and a sensitive attribute, check the ranges and the gate's thresholds")
    return int(ExitCode.OK)
