"""Network: the VPC every other part lives in.

Private subnets (nodes, database, build jobs) across two or three zones, small public
subnets that hold only NAT gateways and internal-facing load balancers' ENIs, NAT per
zone (prod) or one shared (dev), flow logs into a KMS-encrypted log group, a default
security group that allows nothing, and interface/gateway VPC endpoints so that image
pulls, S3, STS, SageMaker and logs traffic never leaves AWS's network.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from infra import policies
from infra.common import kms_key, log_group, role
from infra.config import NetworkSettings
from infra.naming import subnet_cidrs

INTERFACE_ENDPOINTS: tuple[str, ...] = ("ecr.api", "ecr.dkr", "sts", "logs", "sagemaker.api",
                                        "sagemaker.runtime", "secretsmanager")


@dataclass
class NetworkArgs:
    """The network's settings, the stack's prefix and tags, and the account for key policy."""

    settings: NetworkSettings
    prefix: str
    region: str
    account_id: pulumi.Input[str]
    log_retention_days: int
    tags: dict[str, str]


class Network(pulumi.ComponentResource):
    """VPC, subnets, NAT, flow logs and VPC endpoints."""

    vpc_id: pulumi.Output[str]
    vpc_cidr: str
    private_subnet_ids: list[pulumi.Output[str]]
    public_subnet_ids: list[pulumi.Output[str]]
    endpoint_security_group_id: pulumi.Output[str]
    s3_prefix_list_id: pulumi.Output[str]

    def __init__(self, name: str, args: NetworkArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("mlops:network:Network", name, None, opts)
        s = args.settings
        tags = args.tags
        here = pulumi.ResourceOptions(parent=self)
        zones = list(s.availability_zones)
        private_cidrs, public_cidrs = subnet_cidrs(s.cidr, len(zones))

        vpc = aws.ec2.Vpc(name, cidr_block=s.cidr, enable_dns_hostnames=True,
                          enable_dns_support=True, tags={**tags, "Name": name}, opts=here)
        # Adopting the default security group with no rules empties it (CKV2_AWS_12).
        aws.ec2.DefaultSecurityGroup(f"{name}-default-sg", vpc_id=vpc.id, tags=tags, opts=here)

        key = kms_key(f"{name}-logs-key", description=f"{name} flow logs",
                      account_id=args.account_id, region=args.region,
                      services=[f"logs.{args.region}.amazonaws.com"], tags=tags, opts=here)
        flow_group = log_group(f"{name}-flow-logs", log_group_name=f"/vpc/{name}/flow-logs",
                               retention_days=args.log_retention_days, kms_key_arn=key.arn,
                               tags=tags, opts=here)
        flow_role = role(f"{name}-flow-logs-role",
                         trust=policies.service_trust("vpc-flow-logs.amazonaws.com"),
                         policy_inputs=[flow_group.arn],
                         policy=lambda arn: {"Version": "2012-10-17", "Statement": [
                             {**policies.logs_write(arn),
                              "Action": ["logs:CreateLogStream", "logs:PutLogEvents",
                                         "logs:DescribeLogStreams"]}]},
                         tags=tags, opts=here)
        aws.ec2.FlowLog(f"{name}-flow-log", vpc_id=vpc.id, traffic_type="ALL",
                        log_destination_type="cloud-watch-logs", log_destination=flow_group.arn,
                        iam_role_arn=flow_role.arn, max_aggregation_interval=60, tags=tags,
                        opts=here)

        igw = aws.ec2.InternetGateway(f"{name}-igw", vpc_id=vpc.id, tags=tags, opts=here)
        public_rt = aws.ec2.RouteTable(f"{name}-public-rt", vpc_id=vpc.id, tags=tags, opts=here)
        aws.ec2.Route(f"{name}-public-default", route_table_id=public_rt.id,
                      destination_cidr_block="0.0.0.0/0", gateway_id=igw.id, opts=here)

        public_ids: list[pulumi.Output[str]] = []
        private_ids: list[pulumi.Output[str]] = []
        private_rts: list[aws.ec2.RouteTable] = []
        nats: list[aws.ec2.NatGateway] = []
        for index, zone in enumerate(zones):
            public = aws.ec2.Subnet(
                f"{name}-public-{zone}", vpc_id=vpc.id, cidr_block=public_cidrs[index],
                availability_zone=zone, map_public_ip_on_launch=False,
                tags={**tags, "Name": f"{name}-public-{zone}", "kubernetes.io/role/elb": "1"},
                opts=here)
            aws.ec2.RouteTableAssociation(f"{name}-public-{zone}-rta", subnet_id=public.id,
                                          route_table_id=public_rt.id, opts=here)
            public_ids.append(public.id)
            if s.nat_gateway_per_az or index == 0:
                eip = aws.ec2.Eip(f"{name}-nat-{zone}-eip", domain="vpc", tags=tags, opts=here)
                nats.append(aws.ec2.NatGateway(f"{name}-nat-{zone}", allocation_id=eip.id,
                                               subnet_id=public.id, tags=tags, opts=here))
            private = aws.ec2.Subnet(
                f"{name}-private-{zone}", vpc_id=vpc.id, cidr_block=private_cidrs[index],
                availability_zone=zone,
                tags={**tags, "Name": f"{name}-private-{zone}",
                      "kubernetes.io/role/internal-elb": "1"},
                opts=here)
            rt = aws.ec2.RouteTable(f"{name}-private-{zone}-rt", vpc_id=vpc.id, tags=tags, opts=here)
            aws.ec2.Route(f"{name}-private-{zone}-default", route_table_id=rt.id,
                          destination_cidr_block="0.0.0.0/0", nat_gateway_id=nats[-1].id, opts=here)
            aws.ec2.RouteTableAssociation(f"{name}-private-{zone}-rta", subnet_id=private.id,
                                          route_table_id=rt.id, opts=here)
            private_ids.append(private.id)
            private_rts.append(rt)

        endpoint_sg = aws.ec2.SecurityGroup(
            f"{name}-endpoints-sg", vpc_id=vpc.id,
            description="HTTPS from inside the VPC to the interface VPC endpoints",
            ingress=[{"protocol": "tcp", "from_port": 443, "to_port": 443,
                      "cidr_blocks": [s.cidr], "description": "HTTPS from the VPC"}],
            egress=[{"protocol": "tcp", "from_port": 443, "to_port": 443,
                     "cidr_blocks": [s.cidr], "description": "Replies inside the VPC"}],
            tags=tags, opts=here)
        s3_endpoint = aws.ec2.VpcEndpoint(f"{name}-s3", vpc_id=vpc.id, vpc_endpoint_type="Gateway",
                            service_name=f"com.amazonaws.{args.region}.s3",
                            route_table_ids=[rt.id for rt in private_rts], tags=tags, opts=here)
        for service in INTERFACE_ENDPOINTS:
            aws.ec2.VpcEndpoint(
                f"{name}-{service.replace('.', '-')}", vpc_id=vpc.id,
                vpc_endpoint_type="Interface", service_name=f"com.amazonaws.{args.region}.{service}",
                private_dns_enabled=True, subnet_ids=private_ids,
                security_group_ids=[endpoint_sg.id], tags=tags, opts=here)

        self.vpc_id = vpc.id
        self.vpc_cidr = s.cidr
        self.private_subnet_ids = private_ids
        self.public_subnet_ids = public_ids
        self.endpoint_security_group_id = endpoint_sg.id
        # Traffic through a gateway endpoint goes to S3's public addresses: a security
        # group reaches it only by egress to this prefix list, never to the VPC's CIDR.
        self.s3_prefix_list_id = s3_endpoint.prefix_list_id
        self.register_outputs({"vpc_id": vpc.id, "private_subnet_ids": private_ids})
