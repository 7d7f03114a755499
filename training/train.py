"""Training entry point, following SageMaker's training-container conventions.

SageMaker starts a custom training image as ``docker run IMAGE train`` with nothing but
``TRAINING_JOB_NAME``/``TRAINING_JOB_ARN`` in the environment: each input channel is a
folder ``/opt/ml/input/data/<channel>``, the hyperparameters are in
``/opt/ml/input/config/hyperparameters.json`` (every value a string), and whatever is
left in ``/opt/ml/model`` is uploaded. The ``SM_CHANNEL_*``/``SM_MODEL_DIR`` variables
exist only where the sagemaker-training toolkit is installed (SageMaker's framework
images); they are honoured when set, never required. The pipeline's train step calls
``train`` in-process with the same arguments, so the laptop and the training job run
identical code. The model directory
gets ``model.joblib`` (the fitted sklearn ``Pipeline``) and ``training.json`` (device,
best iteration, hyperparameters).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline import schema
from training.entry_point import TrainerError
from training.model import Hyperparameters, project_hyperparameters

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger("training.train")

HYPERPARAMETERS_JSON = Path("/opt/ml/input/config/hyperparameters.json")
SAGEMAKER_INPUT_DATA = Path("/opt/ml/input/data")
"""SageMaker's custom-container contract: one folder per input channel under here."""
SAGEMAKER_MODEL_DIR = Path("/opt/ml/model")
MODEL_FILE = "model.joblib"
SUMMARY_FILE = "training.json"


@dataclass(frozen=True)
class TrainOutcome:
    """Where the model was written and how it was fitted."""

    model_path: Path
    summary: dict[str, Any]


def read_channel(directory: Path) -> pd.DataFrame:
    """Concatenate every CSV/Parquet file in a SageMaker channel directory, in name order."""
    import pandas as pd

    from pipeline.data import CSV_SUFFIXES, PARQUET_SUFFIXES, load_dataset

    if not directory.is_dir():
        raise FileNotFoundError(f"channel directory {directory} does not exist")
    files = sorted(
        p for p in directory.iterdir() if p.is_file() and p.name.lower().endswith(CSV_SUFFIXES + PARQUET_SUFFIXES)
    )
    if not files:
        raise FileNotFoundError(f"channel directory {directory} holds no .csv or .parquet file")
    return pd.concat([load_dataset(p) for p in files], ignore_index=True)


def train(
    train_frame: pd.DataFrame,
    validation_frame: pd.DataFrame | None,
    params: Hyperparameters,
    model_dir: Path,
) -> TrainOutcome:
    """Fit the model and write ``model.joblib`` + ``training.json`` into ``model_dir``."""
    import joblib

    from training.model import fit

    result = fit(train_frame, validation_frame, params)
    model_dir.mkdir(parents=True, exist_ok=True)
    model_path = model_dir / MODEL_FILE
    joblib.dump(result.model, model_path)
    summary = {
        "device": result.device,
        "best_iteration": result.best_iteration,
        "validation_logloss": result.validation_logloss,
        "trainer": result.trainer,
        "train_rows": int(len(train_frame)),
        "validation_rows": int(len(validation_frame)) if validation_frame is not None else 0,
        "hyperparameters": params.to_dict() if result.trainer == "xgboost" else dict(schema.HYPERPARAMETERS),
    }
    (model_dir / SUMMARY_FILE).write_text(json.dumps(summary, indent=2))
    return TrainOutcome(model_path=model_path, summary=summary)


def channel_default(name: str, input_root: Path | None = None) -> Path | None:
    """The folder of channel ``name``: ``SM_CHANNEL_<NAME>`` when the toolkit set it, else
    SageMaker's own ``/opt/ml/input/data/<name>`` when that folder exists, else ``None``."""
    from_toolkit = os.environ.get(f"SM_CHANNEL_{name.upper()}")
    if from_toolkit:
        return Path(from_toolkit)
    folder = (input_root or SAGEMAKER_INPUT_DATA) / name
    return folder if folder.is_dir() else None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Train the project's model (SageMaker conventions): the trainer, "
                                     "data contract and hyperparameters of its project.yaml.")
    for name, field in Hyperparameters.__dataclass_fields__.items():
        default = field.default
        parser.add_argument(f"--{name.replace('_', '-')}", dest=name, type=type(default), default=None)
    parser.add_argument("--train", type=Path, default=channel_default("train"))
    parser.add_argument("--validation", type=Path, default=channel_default("validation"))
    parser.add_argument("--model-dir", type=Path, default=Path(os.environ.get("SM_MODEL_DIR", SAGEMAKER_MODEL_DIR)))
    return parser


def resolve_hyperparameters(args: argparse.Namespace, json_path: Path | None = None) -> Hyperparameters:
    """Hyperparameters from SageMaker's JSON file when present, overridden by explicit CLI arguments."""
    json_path = json_path or HYPERPARAMETERS_JSON
    values: dict[str, Any] = {}
    if json_path.is_file():
        # SageMaker writes every value as a JSON string, with dashes or underscores as given.
        values.update({k.replace("-", "_"): v for k, v in json.loads(json_path.read_text()).items()})
    for name in Hyperparameters.__dataclass_fields__:
        if getattr(args, name, None) is not None:
            values[name] = getattr(args, name)
    return project_hyperparameters(values)


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry: read the channels, train, write the model; 0 on success."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["train"]:
        # `docker run IMAGE train` passes the word through when train is an entrypoint.
        argv = argv[1:]
    args = _parser().parse_args(argv)
    if args.train is None:
        print(f"no training channel: {SAGEMAKER_INPUT_DATA / 'train'} does not exist "
              "(give the job a 'train' channel, or pass --train)", file=sys.stderr)
        return 2
    try:
        params = resolve_hyperparameters(args)
    except ValueError as exc:
        print(f"bad hyperparameters: {exc}", file=sys.stderr)
        return 2
    validation = read_channel(args.validation) if args.validation is not None else None
    try:
        outcome = train(read_channel(args.train), validation, params, args.model_dir)
    except TrainerError as exc:
        print(f"bad trainer: {exc}", file=sys.stderr)
        return 2
    log.info("device=%s best_iteration=%s model=%s", outcome.summary["device"], outcome.summary["best_iteration"], outcome.model_path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
