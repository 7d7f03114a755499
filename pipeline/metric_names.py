"""CloudWatch metric names shared by the code that publishes them and the alarms that
watch them.

The monitor (``pipeline.monitoring``) and the serving metrics exporter publish under
these names; the ``Monitoring`` Pulumi component's alarms read exactly these names, so a
rename here moves both sides at once. Tests check the two agree.
"""

from __future__ import annotations

from typing import Final

SERVING_NAMESPACE: Final = "MLOps/Serving"
MONITORING_NAMESPACE: Final = "MLOps/Monitoring"

DIM_MODEL_NAME: Final = "ModelName"
DIM_STACK: Final = "Stack"
"""Every published datapoint carries both dimensions: model name and stack (dev, prod)."""

# Serving (published from the server's Prometheus metrics by the CloudWatch agent).
INVOCATIONS: Final = "Invocations"
INVOCATION_4XX_ERRORS: Final = "Invocation4XXErrors"
INVOCATION_5XX_ERRORS: Final = "Invocation5XXErrors"
MODEL_LATENCY_MS: Final = "ModelLatency"
"""Milliseconds per request; alarms read its p99 extended statistic."""

# Monitoring (published by `python -m pipeline monitor`).
FEATURE_DRIFT_SCORE: Final = "FeatureDriftScore"
"""Largest per-feature population stability index (PSI) in the window."""
PREDICTION_DRIFT_SCORE: Final = "PredictionDriftScore"
"""PSI of the predicted probabilities, live against the training baseline."""
DRIFTED_FEATURE_COUNT: Final = "DriftedFeatureCount"
LIVE_ROC_AUC: Final = "LiveRocAuc"
"""ROC AUC on the window's rows for which ground-truth labels have arrived."""
PERFORMANCE_DROP: Final = "PerformanceDrop"
"""Baseline ROC AUC minus live ROC AUC; positive means worse than at training."""
