"""The inference server: SageMaker's container contract over an MLflow sklearn model.

``python -m serving`` (or ``serve`` in the container) loads a model by registry alias or
from a local directory and answers ``/ping``, ``/livez``, ``/invocations``,
``/execution-parameters``, ``/metrics``, ``/version`` and ``/openapi.json`` as
docs/contracts.md ("Serving") fixes them. Modules: ``server`` (process lifecycle),
``transport`` (connection guards), ``app`` (routes), ``scoring`` (one request's work),
``workers`` (that work in forked processes), ``payload``, ``model``, ``capture``,
``metrics``, ``emf``, ``openapi``, ``process`` (run a server as a child). Importing this package
does no work: the heavy libraries load only when a server or a loader is built.
"""
