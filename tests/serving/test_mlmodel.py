"""Reading a model directory without MLflow must give what mlflow.sklearn gives, and refuse
what MLflow would refuse."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from serving.mlmodel import ModelFileError, load_sklearn, read_model_files, signature_columns
from serving.model import ModelLoadError, load_model
from tests.serving.model_factory import load_sample

pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def model_dir(registered: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The fixture champion downloaded as a plain model directory (what SageMaker mounts)."""
    import mlflow.artifacts

    from pipeline.mlflow_scope import mlflow_uris

    with mlflow_uris(registered.tracking_uri):
        return Path(mlflow.artifacts.download_artifacts(
            artifact_uri=registered.model_uri, dst_path=str(tmp_path_factory.mktemp("model")),
            tracking_uri=registered.tracking_uri))


def _copy(model_dir: Path, into: Path, edit: Any) -> Path:
    """A copy of the model directory whose MLmodel YAML went through ``edit``."""
    import shutil

    target = into / "edited"
    shutil.copytree(model_dir, target)
    meta = yaml.safe_load((target / "MLmodel").read_text())
    edit(meta)
    (target / "MLmodel").write_text(yaml.safe_dump(meta))
    return target


def test_columns_and_model_equal_mlflows_own_reading(model_dir: Path) -> None:
    import mlflow.sklearn
    from mlflow.models import Model

    files = read_model_files(model_dir)
    expected = [(c.name, c.type.name, c.required) for c in Model.load(str(model_dir)).signature.inputs.inputs]
    assert [(c.name, c.kind, c.required) for c in signature_columns(files.signature_inputs)] == expected
    rows = load_sample(300, seed=11)
    ours, theirs = load_sklearn(files), mlflow.sklearn.load_model(str(model_dir))
    np.testing.assert_array_equal(ours.predict_proba(rows), theirs.predict_proba(rows))


def test_a_model_directory_loads_without_importing_mlflow(model_dir: Path) -> None:
    # MLflow's import is seconds before /ping; the SageMaker path (a mounted directory) never needs it.
    script = ("import sys; from serving.model import load_model; m = load_model(sys.argv[1]); "
              "print(m.fast_path, sorted(k for k in sys.modules if k == 'mlflow' or k.startswith('mlflow.')))")
    done = subprocess.run([sys.executable, "-c", script, str(model_dir)], cwd=REPO_ROOT, capture_output=True,
                          text=True, check=True, timeout=120)
    assert done.stdout.split() == ["True", "[]"]


def test_a_tensor_signature_is_refused(model_dir: Path, tmp_path: Path) -> None:
    def tensor(meta: dict[str, Any]) -> None:
        meta["signature"]["inputs"] = json.dumps([{"type": "tensor", "tensor-spec": {"dtype": "float64", "shape": [-1, 4]}}])

    with pytest.raises(ModelLoadError, match="only column"):
        load_model(str(_copy(model_dir, tmp_path, tensor)))


def test_a_directory_without_the_sklearn_flavor_is_refused(model_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="no sklearn flavor"):
        load_model(str(_copy(model_dir, tmp_path, lambda meta: meta["flavors"].pop("sklearn"))))


def test_a_missing_serialized_model_is_named(model_dir: Path, tmp_path: Path) -> None:
    def elsewhere(meta: dict[str, Any]) -> None:
        meta["flavors"]["sklearn"]["pickled_model"] = "gone.skops"

    with pytest.raises(ModelLoadError, match="gone.skops"):
        load_model(str(_copy(model_dir, tmp_path, elsewhere)))


def test_an_mlmodel_file_that_is_not_one_is_refused(tmp_path: Path) -> None:
    (tmp_path / "MLmodel").write_text("- just\n- a list\n")
    with pytest.raises(ModelFileError, match="no 'flavors'"):
        read_model_files(tmp_path)


def test_mlflows_deserialization_switch_is_honoured(model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "false")
    with pytest.raises(ModelLoadError, match="MLFLOW_ALLOW_PICKLE_DESERIALIZATION"):
        load_model(str(model_dir))


def test_skops_trusted_types_come_from_the_flavor(model_dir: Path, tmp_path: Path) -> None:
    from skops.io.exceptions import UntrustedTypesFoundException

    files = read_model_files(_copy(model_dir, tmp_path, lambda meta: meta["flavors"]["sklearn"].pop("skops_trusted_types")))
    with pytest.raises(UntrustedTypesFoundException):
        load_sklearn(files)
