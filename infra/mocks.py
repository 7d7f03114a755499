"""Run the program under Pulumi's mocks and capture every resource it declares.

Tests and the offline plan need neither the Pulumi CLI nor an AWS account, so the
program's graph is built with ``pulumi.runtime.set_mocks``: ``PlatformMocks`` answers
each resource by its type token with the computed outputs AWS would return (ARNs,
repository URLs, endpoints, digests) in realistic shapes, and ``RecordingMonitor`` keeps
each registration's inputs, outputs, parent and protection flags. ``capture_stack``
builds one stack and returns a ``Capture`` that the tests and ``infra.plan`` read. A
mock proves that the program's calls are well-formed and wired as intended, not that AWS
would accept them.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulumi
from pulumi.runtime.mocks import MockCallArgs, MockMonitor, MockResourceArgs, Mocks

ACCOUNT_ID = "123456789012"
PROJECT = "gpu-mlops-platform"


_SECRET_SIG = "4dabf18193072939515e22adb298388d"
"""Pulumi's wire signature for a secret value ({sig: "1b47...", "value": ...})."""


def normalize(value: Any) -> Any:
    """Plain values as the program meant them: secrets unwrapped (the writers redact
    them), and integral floats back to ints, because the mock runtime carries every
    number as a protobuf double while checkers compare ``runAsUser`` or ports as ints."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict) and _SECRET_SIG in value:
        return normalize(value.get("value"))
    if isinstance(value, dict):
        return {k: normalize(v) for k, v in value.items()}
    if isinstance(value, list):
        return [normalize(v) for v in value]
    return value


def _h(*parts: str, n: int = 17) -> str:
    return hashlib.sha256("/".join(parts).encode()).hexdigest()[:n]


@dataclass
class Recorded:
    """One registered resource: what the program asked for and what the mock answered."""

    urn: str
    type: str
    name: str
    custom: bool
    parent: str
    protect: bool
    retain_on_delete: bool
    provider: str
    ignore_changes: list[str]
    inputs: dict[str, Any]
    outputs: dict[str, Any]
    id: str


@dataclass
class Capture:
    """Everything one stack's program declared, plus its exported outputs."""

    stack: str
    resources: list[Recorded]
    outputs: dict[str, Any]
    seconds: float
    settings: Any = None

    def of_type(self, type_token: str) -> list[Recorded]:
        """Resources of one Pulumi type token."""
        return [r for r in self.resources if r.type == type_token]

    def one(self, type_token: str, name_contains: str = "") -> Recorded:
        """The single resource of a type whose name contains ``name_contains``."""
        found = [r for r in self.of_type(type_token) if name_contains in r.name]
        if len(found) != 1:
            raise LookupError(f"expected one {type_token} named *{name_contains}*, found "
                              f"{[r.name for r in found]}")
        return found[0]

    @property
    def custom(self) -> list[Recorded]:
        return [r for r in self.resources if r.custom]


class PlatformMocks(Mocks):
    """Mock provider answers, keyed on the type token, shaped like the real provider's."""

    def __init__(self, region: str) -> None:
        self.region = region
        # The mock monitor registers resources from several threads at once; each
        # thread's latest arguments are kept apart so the recorder pairs them right.
        self._local = threading.local()

    @property
    def last(self) -> MockResourceArgs | None:
        """The arguments of the resource this thread registered last."""
        return getattr(self._local, "args", None)

    def _physical(self, args: MockResourceArgs, key: str = "name", limit: int = 63) -> str:
        given = args.inputs.get(key)
        if given:
            return str(given)
        # Pulumi auto-naming: the logical name plus a random 7-character suffix.
        return f"{args.name[: limit - 8]}-{_h(args.typ, args.name, n=7)}".lower()

    def new_resource(self, args: MockResourceArgs) -> tuple[str, dict[str, Any]]:
        self._local.args = args
        t, r, a = args.typ, self.region, ACCOUNT_ID
        out: dict[str, Any] = dict(args.inputs)
        ident = f"{args.name}-{_h(t, args.name, n=8)}"
        if t == "aws:kms/key:Key":
            key_id = f"{_h(t, args.name, n=8)}-{_h(args.name, n=4)}-4{_h(args.name, 'x', n=3)}-8{_h(args.name, 'y', n=3)}-{_h(args.name, 'z', n=12)}"
            out.update(keyId=key_id, arn=f"arn:aws:kms:{r}:{a}:key/{key_id}")
            ident = key_id
        elif t == "aws:kms/alias:Alias":
            out["arn"] = f"arn:aws:kms:{r}:{a}:{args.inputs['name']}"
        elif t == "aws:iam/role:Role":
            name = self._physical(args, limit=64)
            out.update(name=name, arn=f"arn:aws:iam::{a}:role/{name}", uniqueId="AROA" + _h(name).upper())
            ident = name
        elif t == "aws:iam/openIdConnectProvider:OpenIdConnectProvider":
            out["arn"] = f"arn:aws:iam::{a}:oidc-provider/{str(args.inputs['url']).removeprefix('https://')}"
        elif t == "aws:s3/bucket:Bucket":
            bucket = self._physical(args, key="bucket")
            out.update(bucket=bucket, arn=f"arn:aws:s3:::{bucket}",
                       bucketDomainName=f"{bucket}.s3.amazonaws.com")
            ident = bucket
        elif t == "aws:ec2/vpc:Vpc":
            ident = "vpc-" + _h(args.name)
            out.update(arn=f"arn:aws:ec2:{r}:{a}:vpc/{ident}", defaultSecurityGroupId="sg-" + _h("d", args.name))
        elif t == "aws:ec2/subnet:Subnet":
            ident = "subnet-" + _h(args.name)
        elif t == "aws:ec2/securityGroup:SecurityGroup":
            ident = "sg-" + _h(args.name)
            out["arn"] = f"arn:aws:ec2:{r}:{a}:security-group/{ident}"
        elif t.startswith("aws:ec2/") and t != "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup":
            prefix = {"aws:ec2/natGateway:NatGateway": "nat", "aws:ec2/eip:Eip": "eipalloc",
                      "aws:ec2/internetGateway:InternetGateway": "igw",
                      "aws:ec2/routeTable:RouteTable": "rtb", "aws:ec2/vpcEndpoint:VpcEndpoint": "vpce",
                      "aws:ec2/flowLog:FlowLog": "fl"}.get(t, "r")
            ident = f"{prefix}-{_h(args.name)}"
            out.setdefault("arn", f"arn:aws:ec2:{r}:{a}:{t.split(':')[-1].lower()}/{ident}")
            if t == "aws:ec2/vpcEndpoint:VpcEndpoint" and args.inputs.get("vpcEndpointType") == "Gateway":
                out["prefixListId"] = "pl-" + _h("prefix-list", str(args.inputs.get("serviceName")), n=8)
        elif t == "aws:eks/cluster:Cluster":
            name = self._physical(args, limit=100)
            oidc = _h("oidc", name, n=32).upper()
            out.update(
                name=name, arn=f"arn:aws:eks:{r}:{a}:cluster/{name}",
                endpoint=f"https://{oidc}.gr7.{r}.eks.amazonaws.com",
                certificateAuthority={"data": "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCg=="},
                identities=[{"oidcs": [{"issuer": f"https://oidc.eks.{r}.amazonaws.com/id/{oidc}"}]}],
                vpcConfig={**args.inputs.get("vpcConfig", {}),
                           "clusterSecurityGroupId": "sg-" + _h("cluster", name),
                           "vpcId": "vpc-" + _h(name)},
                status="ACTIVE", platformVersion="eks.1")
            ident = name
        elif t == "aws:eks/nodeGroup:NodeGroup":
            out["arn"] = f"arn:aws:eks:{r}:{a}:nodegroup/{args.inputs.get('clusterName')}/{args.name}/{_h(args.name, n=8)}"
        elif t == "aws:ecr/repository:Repository":
            name = self._physical(args)
            out.update(name=name, arn=f"arn:aws:ecr:{r}:{a}:repository/{name}", registryId=a,
                       repositoryUrl=f"{a}.dkr.ecr.{r}.amazonaws.com/{name}")
            ident = name
        elif t == "docker:index/image:Image":
            image = str(args.inputs["imageName"])
            repo = image.rsplit(":", 1)[0]
            out.update(repoDigest=f"{repo}@sha256:{hashlib.sha256(image.encode()).hexdigest()}",
                       baseImageName=image, registryServer=repo.split("/")[0])
        elif t == "aws:rds/instance:Instance":
            name = str(args.inputs.get("identifier") or self._physical(args))
            address = f"{name}.c{_h(name, n=11)}.{r}.rds.amazonaws.com"
            out.update(arn=f"arn:aws:rds:{r}:{a}:db:{name}", address=address,
                       endpoint=f"{address}:5432", port=5432, identifier=name,
                       masterUserSecrets=[{"secretArn": f"arn:aws:secretsmanager:{r}:{a}:secret:rds!db-{_h(name, n=8)}-AbCdEf",
                                           "secretStatus": "active", "kmsKeyId": args.inputs.get("masterUserSecretKmsKeyId", "")}])
            ident = name
        elif t in ("aws:rds/subnetGroup:SubnetGroup", "aws:rds/parameterGroup:ParameterGroup"):
            name = self._physical(args)
            kind = "subgrp" if "subnet" in t else "pg"
            out.update(name=name, arn=f"arn:aws:rds:{r}:{a}:{kind}:{name}")
            ident = name
        elif t == "aws:secretsmanager/secret:Secret":
            name = self._physical(args)
            out.update(name=name, arn=f"arn:aws:secretsmanager:{r}:{a}:secret:{name}-{_h(name, n=6)}")
            ident = out["arn"]
        elif t == "aws:sagemaker/pipeline:Pipeline":
            out["arn"] = f"arn:aws:sagemaker:{r}:{a}:pipeline/{str(args.inputs['pipelineName']).lower()}"
            ident = str(args.inputs["pipelineName"])
        elif t == "aws:codepipeline/pipeline:Pipeline":
            name = self._physical(args)
            out.update(name=name, arn=f"arn:aws:codepipeline:{r}:{a}:{name}")
            ident = name
        elif t == "aws:codebuild/project:Project":
            name = self._physical(args)
            out.update(name=name, arn=f"arn:aws:codebuild:{r}:{a}:project/{name}")
            ident = name
        elif t == "aws:codestarconnections/connection:Connection":
            out.update(arn=f"arn:aws:codeconnections:{r}:{a}:connection/{_h(args.name, n=32)}",
                       connectionStatus="PENDING")
            ident = out["arn"]
        elif t == "aws:sns/topic:Topic":
            name = self._physical(args, limit=256)
            out.update(name=name, arn=f"arn:aws:sns:{r}:{a}:{name}")
            ident = out["arn"]
        elif t == "aws:cloudwatch/metricAlarm:MetricAlarm":
            name = self._physical(args)
            out.update(name=name, arn=f"arn:aws:cloudwatch:{r}:{a}:alarm:{name}")
            ident = name
        elif t == "aws:cloudwatch/logGroup:LogGroup":
            name = self._physical(args, limit=512)
            out.update(name=name, arn=f"arn:aws:logs:{r}:{a}:log-group:{name}")
            ident = name
        elif t == "aws:cloudwatch/eventRule:EventRule":
            name = self._physical(args)
            out.update(name=name, arn=f"arn:aws:events:{r}:{a}:rule/{name}")
            ident = name
        elif t == "aws:cloudwatch/dashboard:Dashboard":
            out["dashboardArn"] = f"arn:aws:cloudwatch::{a}:dashboard/{args.inputs['dashboardName']}"
        elif t == "kubernetes:core/v1:Service":
            meta = dict(args.inputs.get("metadata") or {})
            if (args.inputs.get("spec") or {}).get("type") == "LoadBalancer":
                out["status"] = {"loadBalancer": {"ingress": [{
                    "hostname": f"internal-k8s-{meta.get('name', args.name)}-{_h(args.name, n=10)}.elb.{r}.amazonaws.com"}]}}
        elif t.startswith("aws:") and "arn" not in out:
            service = t.split(":")[1].split("/")[0]
            out["arn"] = f"arn:aws:{service}:{r}:{a}:{t.split(':')[-1].lower()}/{ident}"
        if t.startswith("kubernetes:") and isinstance(out.get("metadata"), dict):
            out["metadata"] = {**out["metadata"], "name": out["metadata"].get("name") or self._physical(args)}
        out.setdefault("id", ident)
        return ident, out

    def call(self, args: MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]]]:
        if args.token == "aws:index/getCallerIdentity:getCallerIdentity":
            return {"accountId": ACCOUNT_ID, "arn": f"arn:aws:iam::{ACCOUNT_ID}:role/deployer",
                    "userId": "AROADEPLOYER", "id": ACCOUNT_ID}, []
        if args.token == "aws:ecr/getAuthorizationToken:getAuthorizationToken":
            return {"userName": "AWS", "password": "mock-ecr-token",
                    "authorizationToken": "QVdTOm1vY2stZWNyLXRva2Vu",
                    "proxyEndpoint": f"https://{ACCOUNT_ID}.dkr.ecr.{self.region}.amazonaws.com",
                    "expiresAt": "2099-01-01T00:00:00Z", "id": self.region}, []
        raise NotImplementedError(f"the mocks do not answer {args.token}: add it to PlatformMocks.call")


class RecordingMonitor(MockMonitor):
    """A MockMonitor that also keeps protection flags, parents and providers per URN."""

    def __init__(self, mocks: PlatformMocks) -> None:
        super().__init__(mocks)
        self.platform_mocks = mocks
        self.recorded: list[Recorded] = []

    def RegisterResource(self, request: Any) -> Any:  # noqa: N802 - gRPC method name
        response = super().RegisterResource(request)
        if request.type == "pulumi:pulumi:Stack":
            return response
        args = self.platform_mocks.last
        if args is None or args.name != request.name or args.typ != request.type:
            raise RuntimeError(f"recorder lost the inputs of {request.type} {request.name}")
        registration = self.resources[response.urn]
        self.recorded.append(Recorded(
            urn=response.urn, type=request.type, name=request.name, custom=bool(request.custom),
            parent=request.parent, protect=bool(request.protect),
            retain_on_delete=bool(request.retainOnDelete), provider=request.provider,
            ignore_changes=list(request.ignoreChanges),
            inputs=normalize(dict(args.inputs)),
            outputs=normalize(dict(registration.state or {})), id=str(registration.id or "")))
        return response


def stack_config(stack: str, root: Path | None = None) -> tuple[str, dict[str, Any]]:
    """(region, values) of ``Pulumi.<stack>.yaml``, read the way the CLI would."""
    from infra.config import PROJECT_FILE, stack_values

    base = root or PROJECT_FILE.parent
    path = base / f"Pulumi.{stack}.yaml"
    if not path.is_file():
        raise FileNotFoundError(f"no stack file {path.name} in {base}")
    return stack_values(path)


def capture_program(program: Callable[[], Any], *, stack: str, region: str,
                    config: Mapping[str, str] | None = None,
                    secret_keys: list[str] | None = None) -> Capture:
    """Run ``program`` (a function that declares resources) under mocks; capture it.

    ``config`` is the engine-form config (``project:key`` -> string). Whatever the
    program returns (a dict of Inputs) is resolved into ``Capture.outputs``.
    """
    mocks = PlatformMocks(region)
    monitor = RecordingMonitor(mocks)
    pulumi.runtime.set_mocks(mocks, project=PROJECT, stack=stack, preview=False, monitor=monitor)
    pulumi.runtime.set_all_config(dict(config or {"aws:region": region}), secret_keys=secret_keys or [])
    outputs: dict[str, Any] = {}
    holder: dict[str, Any] = {}
    started = time.perf_counter()

    @pulumi.runtime.test
    def run() -> pulumi.Output[Any]:
        result = program() or {}
        if isinstance(result, tuple):
            holder["settings"], result = result
        return pulumi.Output.all(**result).apply(outputs.update)

    run()
    return Capture(stack=stack, resources=list(monitor.recorded), outputs=outputs,
                   seconds=time.perf_counter() - started, settings=holder.get("settings"))


def capture_stack(stack: str, *, values: Mapping[str, Any] | None = None, region: str | None = None,
                  admin_password: str = "offline-plan-password-0123",
                  compiler: Callable[..., str] | None = None,
                  source_root: Path | None = None) -> Capture:
    """Build one stack's whole program under mocks and return what it declared.

    ``values``/``region`` default to ``Pulumi.<stack>.yaml``; the admin password is a
    placeholder secret (the real one lives only in the stack's encrypted config).
    Config goes through ``set_all_config`` exactly as the engine would hand it over,
    so ``load_settings`` runs its real validation.
    """
    from infra.config import SECRET_KEYS, as_pulumi_config, load_settings
    from infra.program import build

    if values is None or region is None:
        file_region, file_values = stack_config(stack)
        values = file_values if values is None else values
        region = file_region if region is None else region
    config = as_pulumi_config(PROJECT, region, values)
    if admin_password:
        config[f"{PROJECT}:mlflowAdminPassword"] = admin_password

    def program() -> tuple[Any, dict[str, Any]]:
        settings = load_settings()
        extra = {"source_root": source_root} if source_root else {}
        return settings, build(settings, compiler=compiler, **extra)

    return capture_program(program, stack=stack, region=region, config=config,
                           secret_keys=[f"{PROJECT}:{key}" for key in SECRET_KEYS])


def to_json(value: Any) -> str:
    """Stable JSON of captured values (secrets and unknowns rendered as strings)."""
    return json.dumps(value, sort_keys=True, default=str)
