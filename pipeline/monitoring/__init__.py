"""Monitoring and continuous training: drift, data quality and performance of the
serving model on captured traffic, judged against its training baseline.

Modules, in the order data flows through them: ``capture`` (read the serving capture,
local or S3), ``labels`` (join late ground truth), ``baseline`` (the serving version and
its baseline from MLflow), ``stats`` (vectorised PSI and KS, scipy's distributions),
``drift``, ``quality``, ``performance``, ``thresholds``, ``analysis`` (the verdict),
``report``, ``tracking`` (MLflow run), ``publish`` (CloudWatch, Prometheus), ``runner``
(the wiring behind ``python -m pipeline monitor``). See docs/monitoring.md.
"""
