"""Point MLflow's process-wide fluent API at one tracking/registry URI, for a block only.

``mlflow.set_tracking_uri`` also writes ``MLFLOW_TRACKING_URI`` into ``os.environ`` (so
that child processes inherit it). Left in place, that leaks one run's store into the
next run in the same process, which then resolves its tracking URI from the
environment and registers into the wrong registry. Every fluent MLflow use in the
pipeline goes through :func:`mlflow_uris`, which restores both the URIs and the
environment afterwards.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

_ENV_KEYS = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")


@contextmanager
def mlflow_uris(tracking_uri: str, registry_uri: str | None = None) -> Iterator[None]:
    """Within the block, fluent MLflow calls use ``tracking_uri`` (and ``registry_uri``,
    default the same); on exit the previous URIs and environment variables come back."""
    import mlflow
    from mlflow.tracking import _tracking_service
    from mlflow.tracking._model_registry import utils as registry_utils

    from pipeline.console import quiet_mlflow_prints

    quiet_mlflow_prints()
    saved_env = {key: os.environ.get(key) for key in _ENV_KEYS}
    saved_tracking = _tracking_service.utils._tracking_uri
    saved_registry = registry_utils._registry_uri
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(registry_uri or tracking_uri)
    try:
        yield
    finally:
        _tracking_service.utils._tracking_uri = saved_tracking
        registry_utils._registry_uri = saved_registry
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
