"""One typed, validated settings object built from the stack's Pulumi config.

Every project key is declared in ``Pulumi.yaml`` (type, description, default); this
module reads those declarations, coerces the stack's values, checks them against the
safety rules (docs/infra.md, "Deploying a stack": what prod must hold, what dev may
relax) and returns a frozen
``Settings``. Bad config fails here, before any resource exists, with one error that
lists every problem and names each key, so a reviewer fixes a stack file in one pass.
``parse_settings`` is pure (tested without Pulumi); ``load_settings`` is the thin
Pulumi-facing wrapper the program calls.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulumi

from pipeline import schema
import yaml

from infra import eks_versions

PROJECT_FILE = Path(__file__).resolve().parent.parent / "Pulumi.yaml"
SECRET_KEYS: tuple[str, ...] = ("mlflowAdminPassword",)

GPU_FAMILIES: frozenset[str] = frozenset(
    {"g4dn", "g5", "g6", "g6e", "gr6", "p4d", "p4de", "p5", "p5e", "p5en"}
)
"""NVIDIA x86 families that run EKS's AL2023_x86_64_NVIDIA AMI (g5g is Arm, p3 is retired)."""
SAGEMAKER_GPU_FAMILIES: frozenset[str] = frozenset(f"ml.{f}" for f in GPU_FAMILIES)
DOCUMENTATION_NETWORKS: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = (
    ipaddress.ip_network("192.0.2.0/24"), ipaddress.ip_network("198.51.100.0/24"),
    ipaddress.ip_network("203.0.113.0/24"), ipaddress.ip_network("2001:db8::/32"))
"""RFC 5737 / RFC 3849 ranges, reserved for examples: no operator's traffic comes from them,
so an allow-list naming them admits nobody while looking configured."""
LOG_RETENTION_DAYS: frozenset[int] = frozenset(
    {1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192,
     2557, 2922, 3288, 3653}
)
"""The only values CloudWatch Logs accepts for retentionInDays."""
_INSTANCE_TYPE = re.compile(r"^(?P<family>[a-z0-9]+)\.(?P<size>metal|\d*x?large|\d+xlarge)$")
_QUANTITY = re.compile(r"^\d+(\.\d+)?(m|Ki|Mi|Gi|Ti)?$")
_GITHUB_REPO = re.compile(r"^[A-Za-z0-9-]+/[A-Za-z0-9._-]+$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


class ConfigError(ValueError):
    """Stack config that the platform refuses; the message names every offending key."""


@dataclass(frozen=True)
class Declaration:
    """One key declared in Pulumi.yaml: its type, whether it is secret, and its default."""

    key: str
    type: str
    secret: bool
    default: Any
    required: bool


@dataclass(frozen=True)
class NetworkSettings:
    cidr: str
    availability_zones: tuple[str, ...]
    nat_gateway_per_az: bool


@dataclass(frozen=True)
class ClusterSettings:
    version: str
    endpoint_public: bool
    public_access_cidrs: tuple[str, ...]
    system_instance_type: str
    system_min: int
    system_max: int
    gpu_instance_types: tuple[str, ...]
    gpu_min: int
    gpu_max: int
    gpu_capacity_type: str


@dataclass(frozen=True)
class DatabaseSettings:
    instance_class: str
    allocated_storage_gb: int
    max_allocated_storage_gb: int
    multi_az: bool
    backup_retention_days: int
    postgres_version: str


@dataclass(frozen=True)
class ServingSettings:
    pool: str
    namespace: str
    min_replicas: int
    max_replicas: int
    cpu: str
    memory: str
    canary_weight: int
    bake_minutes: int
    max_error_rate: float
    max_latency_p99_ms: int
    max_drift_psi: float
    monitor_schedule: str = "0 * * * *"


@dataclass(frozen=True)
class AlarmSettings:
    errors_5xx: int
    errors_4xx: int
    latency_p99_ms: int
    feature_drift_psi: float
    prediction_drift_psi: float
    performance_drop: float
    gpu_idle_minutes: int
    email: str
    retrain_on_drift: bool


@dataclass(frozen=True)
class Settings:
    """Everything the program needs, validated; components take their part of it."""

    project: str
    stack: str
    environment: str
    region: str
    network: NetworkSettings
    cluster: ClusterSettings
    database: DatabaseSettings
    serving: ServingSettings
    alarms: AlarmSettings
    log_retention_days: int
    mlflow_admin_user: str
    mlflow_admin_password: pulumi.Input[str]
    model_name: str
    training_instance_type: str
    github_repository: str
    github_branch: str
    approval_required: bool

    @property
    def is_prod(self) -> bool:
        """Prod turns on deletion protection, multi-AZ and the approval stage."""
        return self.environment == "prod"

    @property
    def prefix(self) -> str:
        """Name prefix of every resource: short, DNS-safe, unique per stack."""
        return f"mlops-{self.stack}"

    @property
    def tags(self) -> dict[str, str]:
        """Tags every taggable AWS resource carries, for cost and ownership."""
        return {"project": self.project, "stack": self.stack, "environment": self.environment,
                "managed-by": "pulumi"}


def load_declarations(project_file: Path = PROJECT_FILE) -> dict[str, Declaration]:
    """Read the config keys Pulumi.yaml declares.

    The declarations are the single home of each key's type and default: the Pulumi CLI
    applies the same defaults, and the offline plan (which has no CLI) applies them here.
    """
    data = yaml.safe_load(project_file.read_text())
    declared: dict[str, Declaration] = {}
    for key, spec in (data.get("config") or {}).items():
        declared[key] = Declaration(
            key=key,
            type=str(spec.get("type", "string")),
            secret=bool(spec.get("secret", False)),
            default=spec.get("default"),
            required="default" not in spec,
        )
    return declared


def _coerce(decl: Declaration, raw: Any) -> Any:
    """Turn a config value (Pulumi hands over strings; arrays as JSON) into its type."""
    if decl.type == "array":
        value = json.loads(raw) if isinstance(raw, str) else raw
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ValueError(f"expected a list of strings, got {raw!r}")
        return tuple(value)
    if decl.type == "boolean":
        if isinstance(raw, bool):
            return raw
        if str(raw).lower() in ("true", "false"):
            return str(raw).lower() == "true"
        raise ValueError(f"expected true or false, got {raw!r}")
    if decl.type == "integer":
        if isinstance(raw, bool):
            raise ValueError(f"expected an integer, got {raw!r}")
        try:
            return int(str(raw))
        except ValueError:
            raise ValueError(f"expected an integer, got {raw!r}") from None
    return str(raw)


def _float(raw: str) -> float:
    try:
        return float(raw)
    except ValueError:
        raise ValueError(f"expected a number, got {raw!r}") from None


def gpu_family(instance_type: str) -> str:
    """The family of an EC2 or SageMaker instance type (``g5.xlarge`` -> ``g5``).

    Raises ValueError for a string that is not an instance type at all.
    """
    bare = instance_type.removeprefix("ml.")
    match = _INSTANCE_TYPE.match(bare)
    if not match:
        raise ValueError(f"{instance_type!r} is not an instance type")
    return match.group("family")


def parse_settings(
    *,
    project: str,
    stack: str,
    region: str,
    values: Mapping[str, Any],
    mlflow_admin_password: pulumi.Input[str] | None,
    declarations: Mapping[str, Declaration] | None = None,
    today: dt.date | None = None,
) -> Settings:
    """Validate a stack's config values and build the frozen Settings.

    ``values`` maps bare project keys to their raw values (strings as Pulumi stores
    them, or native YAML values); missing keys take Pulumi.yaml's default. The secret
    password arrives separately so that it stays an Output secret at runtime. ``today``
    (default: the UTC date of the run) decides which EKS versions are in standard
    support. Raises ConfigError listing every problem, each prefixed with ``project:key``.
    """
    decls = dict(declarations if declarations is not None else load_declarations())
    errors: list[str] = []

    def err(key: str, message: str) -> None:
        errors.append(f"{project}:{key}: {message}")

    for key in values:
        if key not in decls:
            err(key, "is not declared in Pulumi.yaml (typo?)")
        elif decls[key].secret:
            err(key, "is a secret: set it with `pulumi config set --secret`, not in plain text")

    v: dict[str, Any] = {}
    for key, decl in decls.items():
        if decl.secret:
            continue
        raw = values.get(key, decl.default)
        if raw is None:
            err(key, "is required and has no default")
            continue
        try:
            v[key] = _coerce(decl, raw)
        except ValueError as exc:
            err(key, str(exc))
    if errors:
        raise ConfigError("invalid stack config:\n  " + "\n  ".join(errors))

    floats: dict[str, float] = {}
    for key in ("analysisMaxErrorRate", "analysisMaxDriftPsi", "alarmFeatureDriftPsi",
                "alarmPredictionDriftPsi", "alarmPerformanceDrop"):
        try:
            floats[key] = _float(v[key])
        except ValueError as exc:
            err(key, str(exc))

    env = v["environment"]
    prod = env == "prod"
    if env not in ("dev", "prod"):
        err("environment", f"must be dev or prod, got {env!r}")

    if not re.fullmatch(r"[a-z]{2}(-gov)?-[a-z]+-\d", region):
        errors.append(f"aws:region: {region!r} is not an AWS region")

    try:
        vpc = ipaddress.IPv4Network(v["vpcCidr"], strict=True)
        if not 16 <= vpc.prefixlen <= 20:
            err("vpcCidr", f"{vpc} must be a /16 to /20 to fit the subnets")
        if not vpc.is_private:
            err("vpcCidr", f"{vpc} is not a private (RFC 1918) range")
    except ValueError as exc:
        err("vpcCidr", f"does not parse as an IPv4 network: {exc}")

    zones = v["availabilityZones"]
    if not 2 <= len(zones) <= 3:
        err("availabilityZones", f"needs 2 or 3 zones, got {len(zones)}")
    if len(set(zones)) != len(zones):
        err("availabilityZones", "lists a zone twice")
    for zone in zones:
        if not re.fullmatch(re.escape(region) + r"[a-z]", zone):
            err("availabilityZones", f"{zone!r} is not a zone of {region}")

    version_problem = eks_versions.refusal(v["clusterVersion"], today or eks_versions.today_utc())
    if version_problem:
        err("clusterVersion", version_problem)

    cidrs = v["clusterPublicAccessCidrs"]
    for cidr in cidrs:
        try:
            net = ipaddress.ip_network(cidr, strict=True)
        except ValueError as exc:
            err("clusterPublicAccessCidrs", f"{cidr!r} does not parse: {exc}")
            continue
        if net.prefixlen == 0:
            err("clusterPublicAccessCidrs", f"{cidr} opens the API endpoint to the internet")
        elif any(net.version == doc.version and net.subnet_of(doc)  # type: ignore[arg-type]
                 for doc in DOCUMENTATION_NETWORKS):
            err("clusterPublicAccessCidrs", f"{cidr} is a documentation range (RFC 5737/3849): "
                "no client has such an address; list your real egress CIDRs")
        elif not net.is_global:
            err("clusterPublicAccessCidrs", f"{cidr} is not a public range: the public endpoint "
                "only ever sees public source addresses (use the private endpoint from the VPC)")
    if v["clusterEndpointPublic"]:
        if prod:
            err("clusterEndpointPublic", "prod keeps the EKS API endpoint private")
        if not cidrs:
            err("clusterPublicAccessCidrs", "a public endpoint needs at least one allowed CIDR")
    elif cidrs:
        err("clusterPublicAccessCidrs", "is set but clusterEndpointPublic is false")

    try:
        gpu_family(v["systemNodeInstanceType"])
    except ValueError as exc:
        err("systemNodeInstanceType", str(exc))
    if not 1 <= v["systemNodeMin"] <= v["systemNodeMax"]:
        err("systemNodeMin", f"must be between 1 and systemNodeMax ({v['systemNodeMax']}), "
            f"got {v['systemNodeMin']}")

    if not v["gpuInstanceTypes"]:
        err("gpuInstanceTypes", "needs at least one instance type")
    for itype in v["gpuInstanceTypes"]:
        try:
            family = gpu_family(itype)
        except ValueError as exc:
            err("gpuInstanceTypes", str(exc))
            continue
        if family not in GPU_FAMILIES:
            err("gpuInstanceTypes", f"{itype!r}: unknown GPU family {family!r} "
                f"(known: {', '.join(sorted(GPU_FAMILIES))})")
    if v["gpuNodeMin"] < 0:
        err("gpuNodeMin", f"must be >= 0, got {v['gpuNodeMin']}")
    if v["gpuNodeMax"] < 1:
        err("gpuNodeMax", f"must be >= 1, got {v['gpuNodeMax']}")
    if v["gpuNodeMin"] > v["gpuNodeMax"]:
        err("gpuNodeMin", f"{v['gpuNodeMin']} is above gpuNodeMax ({v['gpuNodeMax']})")
    if v["gpuCapacityType"] not in ("ON_DEMAND", "SPOT"):
        err("gpuCapacityType", f"must be ON_DEMAND or SPOT, got {v['gpuCapacityType']!r}")

    if not v["dbInstanceClass"].startswith("db."):
        err("dbInstanceClass", f"{v['dbInstanceClass']!r} is not an RDS instance class")
    if v["dbAllocatedStorageGb"] < 20:
        err("dbAllocatedStorageGb", f"RDS PostgreSQL needs at least 20 GiB, got {v['dbAllocatedStorageGb']}")
    if v["dbMaxAllocatedStorageGb"] < v["dbAllocatedStorageGb"]:
        err("dbMaxAllocatedStorageGb", "is below dbAllocatedStorageGb")
    if not 1 <= v["dbBackupRetentionDays"] <= 35:
        err("dbBackupRetentionDays", f"must be 1-35, got {v['dbBackupRetentionDays']}")
    if prod and v["dbBackupRetentionDays"] < 7:
        err("dbBackupRetentionDays", "prod keeps at least 7 days of backups")
    if prod and not v["dbMultiAz"]:
        err("dbMultiAz", "prod runs the database multi-AZ")
    if not re.fullmatch(r"1[4-7](\.\d+)?", v["postgresVersion"]):
        err("postgresVersion", f"{v['postgresVersion']!r} is not a supported PostgreSQL version (14-17)")

    if v["logRetentionDays"] not in LOG_RETENTION_DAYS:
        err("logRetentionDays", f"{v['logRetentionDays']} is not a value CloudWatch Logs accepts")
    elif prod and v["logRetentionDays"] < 365:
        err("logRetentionDays", "prod keeps logs at least 365 days")

    if not _DNS_LABEL.match(v["mlflowAdminUser"]):
        err("mlflowAdminUser", "must be a lowercase DNS label")
    if mlflow_admin_password is None:
        err("mlflowAdminPassword", "is required: `pulumi config set --secret mlflowAdminPassword`")
    elif isinstance(mlflow_admin_password, str) and len(mlflow_admin_password) < 16:
        err("mlflowAdminPassword", "must be at least 16 characters")

    if not _DNS_LABEL.match(v["modelName"]):
        err("modelName", f"{v['modelName']!r} must be a lowercase DNS label")
    elif v["modelName"] != schema.MODEL_NAME:
        # The image's project file names the model the pipeline registers; a stack that
        # served or monitored another name would wait for a champion that never comes.
        err("modelName", f"{v['modelName']!r} is not model_name of the project configuration "
            f"({schema.PROJECT_PATH.name}: {schema.MODEL_NAME!r}); set one to the other")
    try:
        family = gpu_family(v["trainingInstanceType"])
        if not v["trainingInstanceType"].startswith("ml.") or family not in GPU_FAMILIES:
            err("trainingInstanceType", f"{v['trainingInstanceType']!r} is not an ml.* NVIDIA GPU type")
    except ValueError as exc:
        err("trainingInstanceType", str(exc))

    if not _GITHUB_REPO.match(v["githubRepository"]):
        err("githubRepository", f"{v['githubRepository']!r} is not owner/name")
    if not v["githubBranch"] or " " in v["githubBranch"]:
        err("githubBranch", f"{v['githubBranch']!r} is not a branch name")
    if prod and not v["approvalRequired"]:
        err("approvalRequired", "prod deploys only after a manual approval")

    if v["servingPool"] not in ("gpu", "cpu"):
        err("servingPool", f"must be gpu or cpu, got {v['servingPool']!r}")
    if not _DNS_LABEL.match(v["servingNamespace"]) or v["servingNamespace"] in ("default", "kube-system"):
        err("servingNamespace", f"{v['servingNamespace']!r} must be a DNS label other than default/kube-system")
    min_floor = 2 if prod else 1
    if v["servingMinReplicas"] < min_floor:
        err("servingMinReplicas", f"must be >= {min_floor} in {env}, got {v['servingMinReplicas']}")
    if v["servingMaxReplicas"] < v["servingMinReplicas"]:
        err("servingMaxReplicas", "is below servingMinReplicas")
    for key in ("servingCpu", "servingMemory"):
        if not _QUANTITY.match(v[key]):
            err(key, f"{v[key]!r} is not a Kubernetes quantity")
    if not 10 <= v["canaryWeight"] <= 25:
        err("canaryWeight", f"the first canary step takes 10-25 % of traffic, got {v['canaryWeight']}")
    if v["canaryBakeMinutes"] < (5 if prod else 1):
        err("canaryBakeMinutes", f"bake time too short for {env}: {v['canaryBakeMinutes']} min")
    if "analysisMaxErrorRate" in floats and not 0 < floats["analysisMaxErrorRate"] < 1:
        err("analysisMaxErrorRate", "must be between 0 and 1")
    for key in ("analysisMaxDriftPsi", "alarmFeatureDriftPsi", "alarmPredictionDriftPsi",
                "alarmPerformanceDrop"):
        if key in floats and not 0 < floats[key] <= 1:
            err(key, f"must be in (0, 1], got {floats[key]}")
    for key in ("analysisMaxLatencyP99Ms", "alarmLatencyP99Ms", "alarm5xxCount", "alarm4xxCount",
                "gpuIdleMinutes"):
        if v[key] < 1:
            err(key, f"must be >= 1, got {v[key]}")
    if not re.fullmatch(r"(\S+\s+){4}\S+", v["monitorSchedule"]):
        err("monitorSchedule", f"{v['monitorSchedule']!r} is not a five-field cron schedule")
    if v["alarmEmail"] and not _EMAIL.match(v["alarmEmail"]):
        err("alarmEmail", f"{v['alarmEmail']!r} is not an e-mail address")

    if errors:
        raise ConfigError("invalid stack config:\n  " + "\n  ".join(errors))

    return Settings(
        project=project,
        stack=stack,
        environment=env,
        region=region,
        network=NetworkSettings(cidr=v["vpcCidr"], availability_zones=zones,
                                nat_gateway_per_az=v["natGatewayPerAz"]),
        cluster=ClusterSettings(
            version=v["clusterVersion"], endpoint_public=v["clusterEndpointPublic"],
            public_access_cidrs=cidrs, system_instance_type=v["systemNodeInstanceType"],
            system_min=v["systemNodeMin"], system_max=v["systemNodeMax"],
            gpu_instance_types=v["gpuInstanceTypes"], gpu_min=v["gpuNodeMin"],
            gpu_max=v["gpuNodeMax"], gpu_capacity_type=v["gpuCapacityType"]),
        database=DatabaseSettings(
            instance_class=v["dbInstanceClass"], allocated_storage_gb=v["dbAllocatedStorageGb"],
            max_allocated_storage_gb=v["dbMaxAllocatedStorageGb"], multi_az=v["dbMultiAz"],
            backup_retention_days=v["dbBackupRetentionDays"], postgres_version=v["postgresVersion"]),
        serving=ServingSettings(
            pool=v["servingPool"], namespace=v["servingNamespace"],
            min_replicas=v["servingMinReplicas"], max_replicas=v["servingMaxReplicas"],
            cpu=v["servingCpu"], memory=v["servingMemory"], canary_weight=v["canaryWeight"],
            bake_minutes=v["canaryBakeMinutes"], max_error_rate=floats["analysisMaxErrorRate"],
            max_latency_p99_ms=v["analysisMaxLatencyP99Ms"],
            max_drift_psi=floats["analysisMaxDriftPsi"],
            monitor_schedule=v["monitorSchedule"]),
        alarms=AlarmSettings(
            errors_5xx=v["alarm5xxCount"], errors_4xx=v["alarm4xxCount"],
            latency_p99_ms=v["alarmLatencyP99Ms"],
            feature_drift_psi=floats["alarmFeatureDriftPsi"],
            prediction_drift_psi=floats["alarmPredictionDriftPsi"],
            performance_drop=floats["alarmPerformanceDrop"],
            gpu_idle_minutes=v["gpuIdleMinutes"], email=v["alarmEmail"],
            retrain_on_drift=v["retrainOnDrift"]),
        log_retention_days=v["logRetentionDays"],
        mlflow_admin_user=v["mlflowAdminUser"],
        mlflow_admin_password=mlflow_admin_password,  # type: ignore[arg-type]
        model_name=v["modelName"],
        training_instance_type=v["trainingInstanceType"],
        github_repository=v["githubRepository"],
        github_branch=v["githubBranch"],
        approval_required=v["approvalRequired"],
    )


def load_settings() -> Settings:
    """Read the running stack's config through Pulumi and validate it.

    Only keys that are set reach ``parse_settings``; it applies Pulumi.yaml's defaults
    for the rest (the CLI does the same, so the two paths agree). The admin password is
    read with ``require_secret`` so it stays encrypted in state and masked in previews.
    """
    declarations = load_declarations()
    cfg = pulumi.Config()
    values: dict[str, Any] = {}
    for key, decl in declarations.items():
        if decl.secret:
            continue
        raw = cfg.get(key)
        if raw is not None:
            values[key] = raw
    # Reading only the declared keys would let a misspelled one (gpuNodesMax) pass
    # unnoticed while its default applies: hand every key of the project's namespace
    # over, so parse_settings refuses the ones Pulumi.yaml does not declare.
    for key in project_keys_set(pulumi.get_project()):
        if key not in declarations:
            values[key] = cfg.get(key)
    password: pulumi.Input[str] | None = None
    if cfg.get_secret("mlflowAdminPassword") is not None:
        password = cfg.require_secret("mlflowAdminPassword")
    region = pulumi.Config("aws").get("region") or ""
    return parse_settings(
        project=pulumi.get_project(), stack=pulumi.get_stack(), region=region,
        values=values, mlflow_admin_password=password, declarations=declarations,
    )


def project_keys_set(project: str) -> set[str]:
    """Bare names of every ``project:`` key the engine handed this program, declared or not.

    The engine passes config either through ``set_all_config`` or the ``PULUMI_CONFIG``
    environment (depending on the language host); both are read.
    """
    from pulumi.runtime import config as runtime_config

    keys = {**runtime_config.get_config_env(), **runtime_config.CONFIG.get()}
    return {k.split(":", 1)[1] for k in keys if k.startswith(f"{project}:")}


def stack_values(stack_file: Path) -> tuple[str, dict[str, Any]]:
    """Read a ``Pulumi.<stack>.yaml`` as the CLI would: (aws region, project key values).

    Used by the offline plan, which has no CLI to read the stack file. Keys from other
    namespaces than the project's and ``aws:`` are refused, so a typo cannot hide.
    """
    data = yaml.safe_load(stack_file.read_text()) or {}
    project = yaml.safe_load(PROJECT_FILE.read_text())["name"]
    region = ""
    values: dict[str, Any] = {}
    for full_key, raw in (data.get("config") or {}).items():
        namespace, _, key = str(full_key).partition(":")
        if namespace == "aws" and key == "region":
            region = str(raw)
        elif namespace == project:
            values[key] = json.dumps(raw) if isinstance(raw, list) else raw
        else:
            raise ConfigError(f"{full_key}: {stack_file.name} sets a key outside {project}: and aws:region")
    return region, values


def as_pulumi_config(project: str, region: str, values: Mapping[str, Any]) -> dict[str, str]:
    """Config values in the string form Pulumi's engine hands a program (``project:key``)."""
    out = {"aws:region": region}
    for key, raw in values.items():
        if isinstance(raw, bool):
            out[f"{project}:{key}"] = "true" if raw else "false"
        elif isinstance(raw, (list, tuple)):
            out[f"{project}:{key}"] = json.dumps(list(raw))
        else:
            out[f"{project}:{key}"] = str(raw)
    return out
