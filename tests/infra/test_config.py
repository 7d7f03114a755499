"""Stack config: both stack files parse, every declared key is documented, and every
refusal names its key. Pure: no Pulumi runtime involved."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
import yaml

from infra.config import (PROJECT_FILE, ConfigError, as_pulumi_config, gpu_family,
                          load_declarations, parse_settings, stack_values)
from infra.eks_versions import EKS_VERSIONS, in_standard_support

PROJECT = "gpu-mlops-platform"
PASSWORD = "a-long-enough-admin-password"


def _values(stack: str) -> tuple[str, dict[str, Any]]:
    return stack_values(PROJECT_FILE.parent / f"Pulumi.{stack}.yaml")


def _parse(stack: str, region: str | None = None, password: str | None = PASSWORD,
           **overrides: Any) -> Any:
    file_region, values = _values(stack)
    values.update(overrides)
    return parse_settings(project=PROJECT, stack=stack, region=region or file_region,
                          values=values, mlflow_admin_password=password)


def test_project_file_declares_every_key_with_type_and_description() -> None:
    project = yaml.safe_load(PROJECT_FILE.read_text())
    assert project["runtime"]["name"] == "python" and project["main"] == "infra/"
    for key, spec in project["config"].items():
        assert spec.get("type") in ("string", "integer", "boolean", "array"), key
        assert spec.get("description"), f"{key} has no description"
    required = {k for k, d in load_declarations().items() if d.required}
    assert required == {"environment", "availabilityZones", "mlflowAdminPassword", "githubRepository"}


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_stack_files_parse(stack: str) -> None:
    settings = _parse(stack)
    assert settings.environment == stack
    assert settings.cluster.gpu_min == 0
    assert settings.prefix == f"mlops-{stack}"


def test_prod_is_strict_and_dev_relaxes_only_what_its_file_says() -> None:
    prod, dev = _parse("prod"), _parse("dev")
    assert prod.approval_required and not prod.cluster.endpoint_public and prod.database.multi_az
    assert prod.serving.min_replicas >= 2 and prod.network.nat_gateway_per_az
    assert not dev.approval_required
    # Dev's API endpoint is private too: its former allow-list named documentation
    # ranges (RFC 5737) that admit nobody.
    assert not dev.cluster.endpoint_public and not dev.cluster.public_access_cidrs


@pytest.mark.parametrize(("stack", "overrides", "key"), [
    ("dev", {"gpuInstanceTypes": '["m5.xlarge"]'}, "gpuInstanceTypes"),
    ("dev", {"gpuInstanceTypes": '["g9.xlarge"]'}, "gpuInstanceTypes"),
    ("dev", {"gpuInstanceTypes": '["not an instance"]'}, "gpuInstanceTypes"),
    ("dev", {"gpuNodeMin": 3, "gpuNodeMax": 2}, "gpuNodeMin"),
    ("dev", {"systemNodeMin": 5, "systemNodeMax": 3}, "systemNodeMin"),
    ("dev", {"vpcCidr": "10.0.0.0/33"}, "vpcCidr"),
    ("dev", {"vpcCidr": "not-a-cidr"}, "vpcCidr"),
    ("dev", {"vpcCidr": "8.8.0.0/16"}, "vpcCidr"),
    ("dev", {"clusterPublicAccessCidrs": '["0.0.0.0/0"]'}, "clusterPublicAccessCidrs"),
    ("dev", {"clusterPublicAccessCidrs": '["203.0.113.0/99"]'}, "clusterPublicAccessCidrs"),
    ("dev", {"clusterEndpointPublic": True, "clusterPublicAccessCidrs": "[]"},
     "clusterPublicAccessCidrs"),
    ("dev", {"clusterEndpointPublic": True,
             "clusterPublicAccessCidrs": '["203.0.113.0/24", "198.51.100.16/28"]'},
     "clusterPublicAccessCidrs"),
    ("dev", {"clusterEndpointPublic": True, "clusterPublicAccessCidrs": '["192.0.2.10/32"]'},
     "clusterPublicAccessCidrs"),
    ("dev", {"clusterEndpointPublic": True, "clusterPublicAccessCidrs": '["10.1.0.0/16"]'},
     "clusterPublicAccessCidrs"),
    ("dev", {"clusterPublicAccessCidrs": '["52.94.0.0/22"]'}, "clusterPublicAccessCidrs"),
    ("prod", {"approvalRequired": False}, "approvalRequired"),
    ("prod", {"clusterEndpointPublic": True, "clusterPublicAccessCidrs": '["203.0.113.0/24"]'},
     "clusterEndpointPublic"),
    ("prod", {"dbMultiAz": False}, "dbMultiAz"),
    ("prod", {"servingMinReplicas": 1}, "servingMinReplicas"),
    ("prod", {"logRetentionDays": 30}, "logRetentionDays"),
    ("prod", {"canaryBakeMinutes": 2}, "canaryBakeMinutes"),
    ("dev", {"logRetentionDays": 42}, "logRetentionDays"),
    ("dev", {"canaryWeight": 60}, "canaryWeight"),
    ("dev", {"clusterVersion": "1.21"}, "clusterVersion"),
    ("dev", {"clusterVersion": "1.31"}, "clusterVersion"),
    ("dev", {"environment": "staging"}, "environment"),
    ("dev", {"servingNamespace": "default"}, "servingNamespace"),
    ("dev", {"servingPool": "tpu"}, "servingPool"),
    ("dev", {"trainingInstanceType": "ml.m5.xlarge"}, "trainingInstanceType"),
    ("dev", {"githubRepository": "no-slash"}, "githubRepository"),
    ("dev", {"alarmEmail": "nobody"}, "alarmEmail"),
    ("dev", {"analysisMaxErrorRate": "lots"}, "analysisMaxErrorRate"),
    ("dev", {"dbMaxAllocatedStorageGb": 10}, "dbMaxAllocatedStorageGb"),
    ("dev", {"availabilityZones": '["us-east-1a", "us-east-1b"]'}, "availabilityZones"),
    ("dev", {"natGatewayPerAz": "maybe"}, "natGatewayPerAz"),
    ("dev", {"monitorSchedule": "hourly"}, "monitorSchedule"),
    ("dev", {"gpuNodeMax": "two"}, "gpuNodeMax"),
    ("dev", {"gpuCapcityType": "SPOT"}, "gpuCapcityType"),
    ("dev", {"modelName": "another-model"}, "modelName"),
    ("dev", {"mlflowAdminPassword": "in-plain-text-in-the-file"}, "mlflowAdminPassword"),
])
def test_bad_config_is_refused_naming_the_key(stack: str, overrides: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as error:
        _parse(stack, **overrides)
    assert f"{PROJECT}:{key}:" in str(error.value)


def test_missing_required_key_and_secret_are_refused() -> None:
    region, values = _values("dev")
    del values["githubRepository"]
    with pytest.raises(ConfigError) as error:
        parse_settings(project=PROJECT, stack="dev", region=region, values=values,
                       mlflow_admin_password=None)
    message = str(error.value)
    assert f"{PROJECT}:githubRepository: is required" in message


def test_missing_or_short_password_is_refused() -> None:
    with pytest.raises(ConfigError, match=f"{PROJECT}:mlflowAdminPassword: is required"):
        _parse("dev", password=None)
    with pytest.raises(ConfigError, match=f"{PROJECT}:mlflowAdminPassword: must be at least 16"):
        _parse("dev", password="short")


def test_bad_region_is_refused() -> None:
    with pytest.raises(ConfigError, match="aws:region: 'mars-1' is not an AWS region"):
        _parse("dev", region="mars-1")


def test_every_problem_is_listed_at_once() -> None:
    with pytest.raises(ConfigError) as error:
        _parse("prod", approvalRequired=False, dbMultiAz=False, gpuNodeMin=99)
    message = str(error.value)
    for key in ("approvalRequired", "dbMultiAz", "gpuNodeMin"):
        assert f"{PROJECT}:{key}:" in message


def test_stack_file_with_foreign_namespace_is_refused(tmp_path: Any) -> None:
    stack = tmp_path / "Pulumi.x.yaml"
    stack.write_text("config:\n  other-project:key: 1\n")
    with pytest.raises(ConfigError, match="other-project:key"):
        stack_values(stack)


def test_engine_form_config_round_trips() -> None:
    region, values = _values("dev")
    engine = as_pulumi_config(PROJECT, region, values)
    assert engine["aws:region"] == region
    assert engine[f"{PROJECT}:natGatewayPerAz"] == "false"
    raw = {k.split(":", 1)[1]: v for k, v in engine.items() if k.startswith(PROJECT)}
    assert parse_settings(project=PROJECT, stack="dev", region=region, values=raw,
                          mlflow_admin_password=PASSWORD) == _parse("dev")


@pytest.mark.parametrize(("itype", "family"), [("g5.xlarge", "g5"), ("ml.p4d.24xlarge", "p4d"),
                                               ("g6e.metal", "g6e")])
def test_gpu_family(itype: str, family: str) -> None:
    assert gpu_family(itype) == family


def test_gpu_family_refuses_garbage() -> None:
    with pytest.raises(ValueError, match="not an instance type"):
        gpu_family("large")


def test_public_endpoint_from_real_public_cidrs_is_accepted() -> None:
    settings = _parse("dev", clusterEndpointPublic=True,
                      clusterPublicAccessCidrs='["52.94.0.0/22", "2600:1f18::/36"]')
    assert settings.cluster.public_access_cidrs == ("52.94.0.0/22", "2600:1f18::/36")


def test_documentation_ranges_are_named_as_such() -> None:
    with pytest.raises(ConfigError, match="203.0.113.0/24 is a documentation range"):
        _parse("dev", clusterEndpointPublic=True, clusterPublicAccessCidrs='["203.0.113.0/24"]')


def _parse_on(day: dt.date, version: str) -> Any:
    region, values = _values("dev")
    values["clusterVersion"] = version
    return parse_settings(project=PROJECT, stack="dev", region=region, values=values,
                          mlflow_admin_password=PASSWORD, today=day)


def test_cluster_version_is_judged_on_the_date_of_the_run() -> None:
    """1.33 left standard support on 2026-07-29: accepted the day before, refused on it."""
    assert _parse_on(dt.date(2026, 7, 28), "1.33").cluster.version == "1.33"
    with pytest.raises(ConfigError) as error:
        _parse_on(dt.date(2026, 7, 29), "1.33")
    message = str(error.value)
    assert f"{PROJECT}:clusterVersion: 1.33 left EKS standard support on 2026-07-29" in message
    assert "1.34, 1.35" in message
    with pytest.raises(ConfigError, match="1.35 is not released on EKS before 2026-01-28"):
        _parse_on(dt.date(2025, 12, 1), "1.35")


def test_every_listed_version_has_a_window_and_pinned_clients() -> None:
    for minor, version in EKS_VERSIONS.items():
        assert version.released < version.standard_support_ends, minor
        assert version.autoscaler_tag.startswith(f"v{minor}."), minor
        assert version.kubectl.startswith(f"{minor}."), minor
    assert in_standard_support(dt.date(2026, 12, 3)) == ["1.35"]


def test_unknown_key_reaching_the_program_is_refused() -> None:
    """Through Pulumi's config (the path `pulumi up` and the offline plan take), a
    misspelled key must fail, not be ignored while its default applies."""
    from infra.mocks import capture_stack

    region, values = _values("dev")
    values["gpuNodesMax"] = 4
    with pytest.raises(ConfigError, match=f"{PROJECT}:gpuNodesMax: is not declared"):
        capture_stack("dev", values=values, region=region)
