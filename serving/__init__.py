"""The inference server: SageMaker's container contract over an MLflow sklearn model.

``python -m serving`` (or ``serve`` in the container) loads a model by registry alias or
from a local directory and answers ``/ping``, ``/invocations``, ``/metrics``, ``/version``
and ``/openapi.json`` as docs/contracts.md ("Serving") fixes them. Importing this package
does no work: the heavy libraries load only when a server or a loader is built.
"""
