"""Resource naming and subnet math: pure functions, tested without Pulumi.

Names derive from the stack prefix and the component name, so two stacks in one
account never collide, and each AWS name limit (IAM role 64, RDS identifier 63, S3
bucket 63 lowercase) is met by construction rather than discovered at deploy time.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re

_LIMITS: dict[str, int] = {"iam_role": 64, "rds": 63, "s3": 63, "ecr": 256, "eks": 100,
                           "sagemaker_pipeline": 256, "codebuild": 150, "alarm": 255,
                           "log_group": 512, "k8s": 63}


def aws_name(kind: str, *parts: str) -> str:
    """Join parts into a lowercase, hyphenated name that fits ``kind``'s length limit.

    A name that would be too long keeps its start and gains an 8-hex digest of the full
    name, so it stays unique and stable across runs. Raises KeyError for an unknown kind.
    """
    limit = _LIMITS[kind]
    name = re.sub(r"[^a-z0-9-]+", "-", "-".join(parts).lower()).strip("-")
    name = re.sub(r"-{2,}", "-", name)
    if len(name) <= limit:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{name[: limit - 9].rstrip('-')}-{digest}"


def subnet_cidrs(vpc_cidr: str, zone_count: int) -> tuple[list[str], list[str]]:
    """Carve (private, public) subnet CIDRs, one of each per zone, from the VPC block.

    The VPC splits into eight equal blocks: the first ``zone_count`` are the private
    subnets (room for many pods: EKS gives each pod a VPC address); block 4 is cut into
    small public subnets that only hold NAT gateways and load balancers. Raises
    ValueError when the block is too small or the zone count is outside 1-4.
    """
    vpc = ipaddress.IPv4Network(vpc_cidr, strict=True)
    if not 1 <= zone_count <= 4:
        raise ValueError(f"zone_count must be 1-4, got {zone_count}")
    if vpc.prefixlen > 20:
        raise ValueError(f"{vpc} is too small: use a /20 or larger")
    blocks = list(vpc.subnets(new_prefix=vpc.prefixlen + 3))
    private = [str(b) for b in blocks[:zone_count]]
    public = [str(s) for s in list(blocks[4].subnets(new_prefix=vpc.prefixlen + 6))[:zone_count]]
    return private, public
