"""The datasets the register step logs carry the contract's schema without MLflow
inferring it value by value (issue 15: register spent seconds on that inference)."""

from __future__ import annotations

import pandas as pd
import pytest

from pipeline import schema
from pipeline.steps.register import contract_dataset, dataset_schema


def test_the_contract_schema_is_what_mlflow_would_infer(adult_sample: pd.DataFrame) -> None:
    from mlflow.types.utils import _infer_schema

    frame = adult_sample.loc[:, [*schema.FEATURES, schema.LABEL]]
    with pytest.warns(UserWarning):  # MLflow's integer-column hint
        inferred = _infer_schema(frame)
    assert dataset_schema() == inferred


@pytest.mark.filterwarnings("ignore:The specified dataset source:UserWarning")
def test_logging_a_split_never_infers_its_schema(adult_sample: pd.DataFrame, monkeypatch: pytest.MonkeyPatch) -> None:
    import mlflow.data.pandas_dataset

    def refuse(frame: object) -> None:
        raise AssertionError("the schema was inferred from the data")

    monkeypatch.setattr(mlflow.data.pandas_dataset, "_infer_schema", refuse)
    frame = adult_sample.loc[:, [*schema.FEATURES, schema.LABEL]]
    dataset = contract_dataset(frame, source="/data/adult.csv.gz", name="adult-training")
    entity = dataset._to_mlflow_entity()
    assert '"name": "age"' in entity.schema and entity.name == "adult-training"
    assert dataset.profile == {"num_rows": len(frame), "num_elements": int(frame.size)}
    assert dataset.targets == schema.LABEL
