"""Delivery: what carries a pushed commit from tests to a canary in production.

Each module is small and owns one concern: AWS calls (SageMaker pipeline executions,
the gate outcome, ECR scan findings, CloudWatch alarm states, SNS notifications), the
canary analysis and its two drivers (Argo Rollouts through kubectl, and local servers
on 127.0.0.1), and the local rehearsal that runs the whole sequence. boto3 clients are
made where they are used, never at import time; every function that calls AWS takes an
``endpoint_url`` so tests (and a person rehearsing) can point it at moto on 127.0.0.1.
"""
