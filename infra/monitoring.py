"""Monitoring: the alarm topic, the alarms, the dashboard and the retrain trigger.

Alarms read exactly the metric names in ``pipeline/metric_names.py`` (published by the
serving metrics exporter and by ``python -m pipeline monitor``), with the ``ModelName``
and ``Stack`` dimensions every datapoint carries. Idle GPUs are read from Container
Insights (``ContainerInsights``/``node_gpu_utilization``, published by the cluster's
CloudWatch observability add-on). Failed pipeline runs are not a metric: EventBridge
rules on CodePipeline's and SageMaker's execution-state events publish them to the
topic. Every alarm notifies the KMS-encrypted topic on ALARM and OK. The retrain loop:
when a drift or performance alarm enters ALARM, an EventBridge rule starts the
delivery pipeline (a role that may start only that pipeline), which retrains on fresh
data and goes through the same gate.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from infra import policies
from infra.common import kms_key, role
from infra.config import AlarmSettings
from pipeline import metric_names as mn

CONTAINER_INSIGHTS = "ContainerInsights"
SERVING_ALARM_KEYS: tuple[str, ...] = ("serving-5xx", "serving-4xx", "latency-p99")
"""The alarms the deploy stage watches during the canary bake."""
GPU_UTILIZATION = "node_gpu_utilization"


@dataclass(frozen=True)
class AlarmSpec:
    """One CloudWatch alarm, as data (tested without Pulumi)."""

    key: str
    description: str
    namespace: str
    metric: str
    dimensions: dict[str, str]
    threshold: float
    comparison: str
    period: int
    evaluation_periods: int
    statistic: str | None = None
    extended_statistic: str | None = None
    treat_missing_data: str = "notBreaching"
    retrain: bool = False


def alarm_specs(a: AlarmSettings, *, model_name: str, stack: str, cluster_name: str) -> list[AlarmSpec]:
    """Every alarm the platform raises, with its metric, statistic and threshold.

    Serving alarms evaluate 5-minute windows; the monitor publishes once per run, so its
    alarms use hourly periods and treat a missing run as not breaching (a monitor that
    stops is visible on the dashboard, not a drift). ``retrain`` marks the alarms that
    start the delivery pipeline.
    """
    dims = {mn.DIM_MODEL_NAME: model_name, mn.DIM_STACK: stack}
    gt = "GreaterThanThreshold"
    return [
        AlarmSpec("serving-5xx", "Model server 5xx responses (model or server failures)",
                  mn.SERVING_NAMESPACE, mn.INVOCATION_5XX_ERRORS, dims, a.errors_5xx, gt, 300, 1,
                  statistic="Sum"),
        AlarmSpec("serving-4xx", "Model server 4xx responses (a model exception must not hide as a 4xx)",
                  mn.SERVING_NAMESPACE, mn.INVOCATION_4XX_ERRORS, dims, a.errors_4xx, gt, 300, 2,
                  statistic="Sum"),
        AlarmSpec("latency-p99", "Model latency p99 in milliseconds",
                  mn.SERVING_NAMESPACE, mn.MODEL_LATENCY_MS, dims, a.latency_p99_ms, gt, 300, 3,
                  extended_statistic="p99"),
        AlarmSpec("feature-drift", "Largest per-feature PSI of live inputs against the training baseline",
                  mn.MONITORING_NAMESPACE, mn.FEATURE_DRIFT_SCORE, dims, a.feature_drift_psi, gt,
                  3600, 1, statistic="Maximum", retrain=True),
        AlarmSpec("prediction-drift", "PSI of live predicted probabilities against the baseline",
                  mn.MONITORING_NAMESPACE, mn.PREDICTION_DRIFT_SCORE, dims, a.prediction_drift_psi,
                  gt, 3600, 1, statistic="Maximum", retrain=True),
        AlarmSpec("performance-drop", "Baseline ROC AUC minus live ROC AUC on labelled requests",
                  mn.MONITORING_NAMESPACE, mn.PERFORMANCE_DROP, dims, a.performance_drop, gt,
                  3600, 1, statistic="Maximum", retrain=True),
        AlarmSpec("gpu-idle", "GPU nodes running under 5 % utilisation (paying for idle GPUs)",
                  CONTAINER_INSIGHTS, GPU_UTILIZATION, {"ClusterName": cluster_name}, 5.0,
                  "LessThanThreshold", 300, max(1, a.gpu_idle_minutes // 5), statistic="Average"),
    ]


def alarm_name(prefix: str, key: str) -> str:
    """An alarm's name, known before it exists (the deploy stage is told which to watch)."""
    return f"{prefix}-{key}"


def retrain_event_pattern(alarm_arns: list[str]) -> str:
    """EventBridge pattern: one of these alarms moved into ALARM."""
    return json.dumps({"source": ["aws.cloudwatch"], "detail-type": ["CloudWatch Alarm State Change"],
                       "resources": sorted(alarm_arns), "detail": {"state": {"value": ["ALARM"]}}})


def pipeline_failure_patterns(codepipeline_name: str, sagemaker_pipeline_arn: str) -> dict[str, str]:
    """EventBridge patterns for a failed delivery run and a failed SageMaker run."""
    return {
        "codepipeline-failed": json.dumps({
            "source": ["aws.codepipeline"],
            "detail-type": ["CodePipeline Pipeline Execution State Change"],
            "detail": {"state": ["FAILED"], "pipeline": [codepipeline_name]}}),
        "sagemaker-failed": json.dumps({
            "source": ["aws.sagemaker"],
            "detail-type": ["SageMaker Model Building Pipeline Execution Status Change"],
            "detail": {"currentPipelineExecutionStatus": ["Failed"],
                       "pipelineArn": [sagemaker_pipeline_arn]}}),
    }


def topic_policy(topic_arn: str, account_id: str) -> str:
    """Let CloudWatch alarms and EventBridge rules of this account publish to the topic."""
    return json.dumps({"Version": "2012-10-17", "Statement": [
        {"Sid": f"Allow{svc.split('.')[0].capitalize()}", "Effect": "Allow",
         "Principal": {"Service": svc}, "Action": "sns:Publish", "Resource": topic_arn,
         "Condition": {"StringEquals": {"aws:SourceAccount": account_id}}}
        for svc in ("cloudwatch.amazonaws.com", "events.amazonaws.com")]})


def dashboard_body(specs: list[AlarmSpec], region: str) -> str:
    """One graph per alarm's metric with its threshold drawn as a horizontal line."""
    widgets: list[dict[str, Any]] = []
    for index, spec in enumerate(specs):
        metric: list[Any] = [spec.namespace, spec.metric]
        for key, value in spec.dimensions.items():
            metric += [key, value]
        stat = spec.extended_statistic or spec.statistic
        widgets.append({"type": "metric", "x": (index % 3) * 8, "y": (index // 3) * 6,
                        "width": 8, "height": 6, "properties": {
                            "title": spec.description, "region": region, "view": "timeSeries",
                            "metrics": [metric + [{"stat": stat, "period": spec.period}]],
                            "annotations": {"horizontal": [{"value": spec.threshold,
                                                            "label": "alarm threshold"}]}}})
    return json.dumps({"widgets": widgets})


@dataclass
class MonitoringArgs:
    """Alarm thresholds and what the alarms and rules point at."""

    settings: AlarmSettings
    prefix: str
    stack: str
    region: str
    account_id: pulumi.Input[str]
    model_name: str
    cluster_name: pulumi.Input[str]
    codepipeline_name: pulumi.Input[str]
    codepipeline_arn: pulumi.Input[str]
    sagemaker_pipeline_arn: pulumi.Input[str]
    tags: dict[str, str]


class Monitoring(pulumi.ComponentResource):
    """SNS topic, alarms, pipeline-failure rules, dashboard and retrain trigger."""

    topic_arn: pulumi.Output[str]
    topic_kms_key_arn: pulumi.Output[str]
    """Publishers to the encrypted topic need GenerateDataKey/Decrypt on this key."""
    dashboard_name: pulumi.Output[str]
    alarm_arns: dict[str, pulumi.Output[str]]

    def __init__(self, name: str, args: MonitoringArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("mlops:monitoring:Monitoring", name, None, opts)
        tags = args.tags
        here = pulumi.ResourceOptions(parent=self)
        # CloudWatch and EventBridge must be able to use the key, or their
        # notifications to the encrypted topic are silently dropped.
        key = kms_key(f"{name}-key", description=f"{name} alarm topic",
                      account_id=args.account_id, region=args.region,
                      services=["cloudwatch.amazonaws.com", "events.amazonaws.com"],
                      tags=tags, opts=here)
        topic = aws.sns.Topic(f"{name}-alarms", kms_master_key_id=key.arn, tags=tags, opts=here)
        aws.sns.TopicPolicy(f"{name}-alarms-policy", arn=topic.arn,
                            policy=pulumi.Output.all(topic.arn, args.account_id).apply(
                                lambda v: topic_policy(v[0], v[1])), opts=here)
        if args.settings.email:
            aws.sns.TopicSubscription(f"{name}-email", topic=topic.arn, protocol="email",
                                      endpoint=args.settings.email, opts=here)

        specs_out = pulumi.Output.from_input(args.cluster_name).apply(
            lambda cluster: alarm_specs(args.settings, model_name=args.model_name,
                                        stack=args.stack, cluster_name=cluster))
        # The specs' shape never depends on the cluster name, so the resources are
        # declared from a plain list; only the dimension value flows through Outputs.
        shapes = alarm_specs(args.settings, model_name=args.model_name, stack=args.stack,
                             cluster_name="")
        self.alarm_arns = {}
        for index, spec in enumerate(shapes):
            dimensions: pulumi.Input[dict[str, str]] = spec.dimensions
            if spec.namespace == CONTAINER_INSIGHTS:
                dimensions = specs_out[index].dimensions  # Output lifts [] and ., binding this index now
            alarm = aws.cloudwatch.MetricAlarm(
                f"{name}-{spec.key}", name=alarm_name(args.prefix, spec.key),
                alarm_description=spec.description, namespace=spec.namespace,
                metric_name=spec.metric, dimensions=dimensions, statistic=spec.statistic,
                extended_statistic=spec.extended_statistic, threshold=spec.threshold,
                comparison_operator=spec.comparison, period=spec.period,
                evaluation_periods=spec.evaluation_periods,
                treat_missing_data=spec.treat_missing_data, actions_enabled=True,
                alarm_actions=[topic.arn], ok_actions=[topic.arn], tags=tags, opts=here)
            self.alarm_arns[spec.key] = alarm.arn

        patterns = pulumi.Output.all(args.codepipeline_name, args.sagemaker_pipeline_arn).apply(
            lambda v: pipeline_failure_patterns(v[0], v[1]))
        for rule_key in ("codepipeline-failed", "sagemaker-failed"):
            rule = aws.cloudwatch.EventRule(
                f"{name}-{rule_key}", description=f"Notify on {rule_key.replace('-', ' ')} runs",
                event_pattern=patterns[rule_key], tags=tags, opts=here)
            aws.cloudwatch.EventTarget(f"{name}-{rule_key}-to-sns", rule=rule.name,
                                       arn=topic.arn, opts=here)

        retrain_keys = [spec.key for spec in shapes if spec.retrain]
        if args.settings.retrain_on_drift:
            rule = aws.cloudwatch.EventRule(
                f"{name}-retrain", description="Drift or performance alarm -> retrain through the gate",
                event_pattern=pulumi.Output.all(*[self.alarm_arns[k] for k in retrain_keys]).apply(
                    lambda arns: retrain_event_pattern(list(arns))),
                tags=tags, opts=here)
            starter = role(f"{name}-retrain-role", trust=policies.service_trust("events.amazonaws.com"),
                           policy_inputs=[args.codepipeline_arn],
                           policy=policies.start_pipeline_policy, tags=tags, opts=here)
            aws.cloudwatch.EventTarget(f"{name}-retrain-target", rule=rule.name,
                                       arn=args.codepipeline_arn, role_arn=starter.arn, opts=here)

        dashboard = aws.cloudwatch.Dashboard(
            f"{name}-dashboard", dashboard_name=f"{args.prefix}-platform",
            dashboard_body=specs_out.apply(lambda specs: dashboard_body(specs, args.region)),
            opts=here)
        self.topic_arn = topic.arn
        self.topic_kms_key_arn = key.arn
        self.dashboard_name = dashboard.dashboard_name
        self.register_outputs({"topic_arn": topic.arn, "dashboard_name": dashboard.dashboard_name})
