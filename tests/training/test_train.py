"""The training entry point follows SageMaker's container conventions and says which device it used."""

from __future__ import annotations

import json
from pathlib import Path

import joblib
import pandas as pd
import pytest

from pipeline.steps.split import SplitParams, split
from training import train as train_module
from training.model import Hyperparameters, cuda_usable, resolve_device


@pytest.fixture(scope="module")
def channels(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, pd.DataFrame]:
    from pipeline.schema import DEFAULT_DATASET

    frame = pd.read_csv(DEFAULT_DATASET).sample(n=5000, random_state=3)
    parts = split(frame, SplitParams())
    root = tmp_path_factory.mktemp("channels")
    (root / "train").mkdir()
    (root / "validation").mkdir()
    parts.train.to_csv(root / "train" / "part-0.csv", index=False)
    parts.validation.to_parquet(root / "validation" / "part-0.parquet", index=False)
    return root / "train", root / "validation", parts.holdout


def test_main_reads_channels_and_hyperparameters_json(
    channels, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    train_dir, validation_dir, holdout = channels
    model_dir = tmp_path / "model"
    hp_json = tmp_path / "hyperparameters.json"
    # SageMaker writes every hyperparameter as a JSON string.
    hp_json.write_text(json.dumps({"n_estimators": "30", "max-depth": "3", "device": "cpu"}))
    monkeypatch.setattr(train_module, "HYPERPARAMETERS_JSON", hp_json)
    monkeypatch.setenv("SM_CHANNEL_TRAIN", str(train_dir))
    monkeypatch.setenv("SM_CHANNEL_VALIDATION", str(validation_dir))
    monkeypatch.setenv("SM_MODEL_DIR", str(model_dir))
    assert train_module.main(["--learning-rate", "0.2"]) == 0
    summary = json.loads((model_dir / train_module.SUMMARY_FILE).read_text())
    assert summary["device"] == "cpu"
    assert summary["hyperparameters"]["n_estimators"] == 30
    assert summary["hyperparameters"]["max_depth"] == 3
    assert summary["hyperparameters"]["learning_rate"] == 0.2
    model = joblib.load(model_dir / train_module.MODEL_FILE)
    proba = model.predict_proba(holdout.drop(columns=["label"]))[:, 1]
    assert proba.shape == (len(holdout),) and ((proba >= 0) & (proba <= 1)).all()


def test_main_finds_channels_as_sagemaker_mounts_them_without_the_toolkit(
    channels, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SageMaker's custom-container contract: channels under <input>/data/<name>, no SM_* variables."""
    train_dir, validation_dir, _ = channels
    for name in ("SM_CHANNEL_TRAIN", "SM_CHANNEL_VALIDATION", "SM_MODEL_DIR"):
        monkeypatch.delenv(name, raising=False)
    input_data = tmp_path / "input" / "data"
    input_data.mkdir(parents=True)
    (input_data / "train").symlink_to(train_dir)
    (input_data / "validation").symlink_to(validation_dir)
    hp_json = tmp_path / "hyperparameters.json"
    hp_json.write_text(json.dumps({"n_estimators": "20", "device": "cpu"}))
    model_dir = tmp_path / "model"
    monkeypatch.setattr(train_module, "SAGEMAKER_INPUT_DATA", input_data)
    monkeypatch.setattr(train_module, "SAGEMAKER_MODEL_DIR", model_dir)
    monkeypatch.setattr(train_module, "HYPERPARAMETERS_JSON", hp_json)
    assert train_module.main(["train"]) == 0
    summary = json.loads((model_dir / train_module.SUMMARY_FILE).read_text())
    assert summary["validation_rows"] > 0 and summary["hyperparameters"]["n_estimators"] == 20


def test_unknown_categories_and_missing_values_are_scored(channels, tmp_path: Path) -> None:
    train_dir, validation_dir, holdout = channels
    outcome = train_module.train(
        train_module.read_channel(train_dir), None, Hyperparameters(n_estimators=20, device="cpu"), tmp_path
    )
    rows = holdout.drop(columns=["label"]).head(4).copy()
    rows.loc[rows.index[0], "occupation"] = "Astronaut"
    rows.loc[rows.index[1], "workclass"] = None
    proba = joblib.load(outcome.model_path).predict_proba(rows)[:, 1]
    assert len(proba) == 4


def test_bad_hyperparameters_and_missing_channels_are_usage_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SM_CHANNEL_TRAIN", raising=False)
    monkeypatch.setattr(train_module, "HYPERPARAMETERS_JSON", tmp_path / "absent.json")
    monkeypatch.setattr(train_module, "SAGEMAKER_INPUT_DATA", tmp_path / "no-channels")
    assert train_module.main([]) == 2
    assert train_module.main(["--train", str(tmp_path), "--device", "tpu"]) == 2
    with pytest.raises(ValueError, match="unknown hyperparameter"):
        Hyperparameters.from_mapping({"trees": 10})
    with pytest.raises(FileNotFoundError, match="no .csv or .parquet"):
        train_module.read_channel(tmp_path)


def test_device_resolution() -> None:
    assert resolve_device("cpu") == "cpu"
    if cuda_usable():
        assert resolve_device("auto") == "cuda"
    else:
        assert resolve_device("auto") == "cpu"
        with pytest.raises(RuntimeError, match="no usable CUDA GPU"):
            resolve_device("cuda")
