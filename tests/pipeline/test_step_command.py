"""``python -m pipeline step``: each SageMaker Processing step runs from folders, as the compiler wires them."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from pipeline.cli import main


@pytest.fixture(scope="module")
def chain(adult_sample: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("processing")
    (root / "input" / "data").mkdir(parents=True)
    adult_sample.to_csv(root / "input" / "data" / "adult.csv", index=False)
    assert main(["step", "validate", "--input", str(root / "input/data"), "--output", str(root / "validated")]) == 0
    assert main(["step", "split", "--input", str(root / "validated"), "--output", str(root / "split")]) == 0
    assert main([
        "step", "train", "--input", str(root / "split/train"), "--input", str(root / "split/validation"),
        "--output", str(root / "model"), "--param", "n_estimators=60", "--param", "device=cpu",
    ]) == 0
    return root


def test_validate_split_train_outputs(chain: Path) -> None:
    assert json.loads((chain / "validated/validation.json").read_text())["passed"] is True
    assert (chain / "validated/data.parquet").is_file()
    split = json.loads((chain / "split/split.json").read_text())
    assert split["rows"]["holdout"] == len(pd.read_parquet(chain / "split/holdout/holdout.parquet"))
    assert json.loads((chain / "model/training.json").read_text())["device"] == "cpu"


def test_gate_writes_evaluation_json_for_the_condition_step(chain: Path) -> None:
    out = chain / "evaluation"
    # The compiler passes thresholds with repr(): plain numbers.
    assert main(["step", "gate", "--input", str(chain / "model"), "--input", str(chain / "split/holdout"),
                 "--output", str(out), "--param", "min_roc_auc=0.85", "--param", "bootstrap_samples=200"]) == 0
    evaluation = json.loads((out / "evaluation.json").read_text())
    assert evaluation["gate"]["passed"] is True
    assert evaluation["metrics"]["roc_auc"] > 0.85
    refused = chain / "evaluation-refused"
    assert main(["step", "gate", "--input", str(chain / "model"), "--input", str(chain / "split/holdout"),
                 "--output", str(refused), "--param", "min_roc_auc=0.99"]) == 0
    evaluation = json.loads((refused / "evaluation.json").read_text())
    assert evaluation["gate"]["passed"] is False and evaluation["gate"]["reasons"][0].startswith("floor:")


def test_gate_against_a_champion_model_folder(chain: Path) -> None:
    out = chain / "evaluation-vs-champion"
    assert main(["step", "gate", "--input", str(chain / "model"), "--input", str(chain / "split/holdout"),
                 "--input", str(chain / "model"), "--output", str(out), "--param", "bootstrap_samples=200"]) == 0
    report = json.loads((out / "evaluation.json").read_text())["report"]
    assert report["bootstrap"]["ci_low"] == pytest.approx(0.0)


def test_invalid_data_and_usage_errors(adult_sample: pd.DataFrame, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "data").mkdir()
    adult_sample.drop(columns=["age"]).head(500).to_csv(tmp_path / "data/bad.csv", index=False)
    assert main(["step", "validate", "--input", str(tmp_path / "data"), "--output", str(tmp_path / "v")]) == 4
    assert "age" in (tmp_path / "v/validation.md").read_text()
    assert main(["step", "split", "--output", str(tmp_path / "s")]) == 2
    assert main(["step", "gate", "--input", str(tmp_path), "--input", str(tmp_path), "--output", str(tmp_path / "g"),
                 "--param", "nonsense=1"]) == 2
    assert "unknown --param nonsense" in capsys.readouterr().err


@pytest.mark.slow
def test_register_makes_a_candidate_never_the_champion(chain: Path, tmp_path: Path) -> None:
    """The SageMaker register step is the delivery path's: a version that passed the gate
    becomes ``candidate``; ``champion`` moves only at the end of the release."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert main(["step", "gate", "--input", str(chain / "model"), "--input", str(chain / "split/holdout"),
                 "--output", str(chain / "eval-reg"), "--param", "bootstrap_samples=200"]) == 0
    code = main(["step", "register", "--input", str(chain / "model"), "--input", str(chain / "eval-reg"),
                 "--input", str(chain / "validated"), "--output", str(tmp_path / "registered"),
                 "--param", f"tracking_uri={uri}", "--param", "create_registry=true", "--param", "git_commit=0123abc",
                 "--param", "image_digest=sha256:" + "0" * 64])
    assert code == 0
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    version = client.get_model_version_by_alias("adult-income", "candidate")
    assert version.tags["git_commit"] == "0123abc"
    assert version.tags["image_digest"] == "sha256:" + "0" * 64
    assert version.tags["gate_champion"] == "none"
    with pytest.raises(MlflowException):
        client.get_model_version_by_alias("adult-income", "champion")
    registration = json.loads((tmp_path / "registered/registration.json").read_text())
    assert registration["promoted"] is True and registration["alias"] == "candidate"
    # The SageMaker path writes the same card from the full gate report, in the create call.
    assert "commit `0123abc`" in version.description and "## Slices" in version.description
    assert "became the release `candidate`" in version.description
    assert "plots/roc_curve.png" in {a.path for a in client.list_artifacts(version.run_id, "plots")}


def test_register_refuses_a_registry_that_does_not_exist(tmp_path: Path, capsys) -> None:
    inputs = [tmp_path / name for name in ("model", "evaluation", "data")]
    for folder in inputs:
        folder.mkdir()
    typo = tmp_path / "no-such" / "mlflow.db"
    argv = ["step", "register", *[a for folder in inputs for a in ("--input", str(folder))],
            "--output", str(tmp_path / "out"), "--param", f"tracking_uri=sqlite:///{typo}"]
    assert main(argv) == 2
    assert str(typo) in capsys.readouterr().err
    assert not typo.parent.exists(), "a registry was created from a typo"
