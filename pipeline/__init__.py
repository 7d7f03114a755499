"""The commit pipeline: pure, typed steps, their wiring, the local runner, the SageMaker
compiler and the CLI (``python -m pipeline --help``).

The same step functions run in the local runner (the embedded default: local MLflow,
no cloud account) and inside SageMaker pipeline steps, so what a data scientist runs on
a laptop is what production runs.
"""
