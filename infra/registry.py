"""ContainerRegistry: ECR repositories and the images built into them, by digest.

One repository per image (training, serving, mlflow): immutable tags, scan on push,
KMS encryption, a lifecycle policy, and no repository policy (so nothing public).
pulumi-docker builds each image from the repository's Dockerfile and pushes it with a
content-derived tag; ``repo_digest`` (``<repo>@sha256:...``) is what every consumer
references, so what runs is exactly what was scanned, never what a tag points to now.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pulumi
import pulumi_aws as aws
import pulumi_docker as docker

from infra.common import child, kms_key

REPO_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class ImageSpec:
    """One image: its Dockerfile and the paths it COPYs (their content decides its tag)."""

    dockerfile: str
    context_paths: tuple[str, ...]


DEFAULT_IMAGES: dict[str, ImageSpec] = {
    "training": ImageSpec("training/Dockerfile", ("training", "pipeline", "requirements.lock")),
    "serving": ImageSpec("serving/Dockerfile", ("serving", "requirements.lock")),
    "mlflow": ImageSpec("infra/mlflow/Dockerfile", ("infra/mlflow",)),
}


def content_tag(root: Path, spec: ImageSpec) -> str:
    """A tag derived from the Dockerfile and the files it copies.

    ECR tags are immutable here, so a tag must never be reused for different bytes:
    the same sources give the same tag (no rebuild, no push), changed sources a new
    one. ``__pycache__`` and dotfiles are ignored. Raises FileNotFoundError naming the
    Dockerfile or path that is missing.
    """
    digest = hashlib.sha256()
    for rel in (spec.dockerfile, *spec.context_paths):
        path = root / rel
        if not path.exists():
            raise FileNotFoundError(f"image build input {rel} does not exist under {root}")
        files = [path] if path.is_file() else sorted(
            p for p in path.rglob("*")
            if p.is_file() and "__pycache__" not in p.parts
            and not any(part.startswith(".") for part in p.relative_to(root).parts))
        for file in files:
            digest.update(str(file.relative_to(root)).encode())
            digest.update(hashlib.sha256(file.read_bytes()).digest())
    return "src-" + digest.hexdigest()[:16]


def lifecycle_policy(untagged_days: int = 7) -> str:
    """Expire untagged images only, a week after their push.

    A count rule over tagged images ("keep the last 30") would expire the image the
    champion still runs once 30 newer builds exist: the served image is referenced by
    digest and its age says nothing about its use. Every image the platform deploys is
    pushed with a tag (pulumi-docker's content tag, the build stage's commit tag), so only
    leftovers without a tag (layers of a re-pushed build, failed pushes) are expired.
    """
    return json.dumps({"rules": [
        {"rulePriority": 1, "description": f"untagged images expire after {untagged_days} days",
         "selection": {"tagStatus": "untagged", "countType": "sinceImagePushed",
                       "countUnit": "days", "countNumber": untagged_days},
         "action": {"type": "expire"}},
    ]})


@dataclass
class ContainerRegistryArgs:
    """Which images to build, where from, and whether the repositories are protected."""

    prefix: str
    region: str
    account_id: pulumi.Input[str]
    tags: dict[str, str]
    protect: bool
    images: dict[str, ImageSpec] = field(default_factory=lambda: dict(DEFAULT_IMAGES))
    root: Path = REPO_ROOT
    platform: str = "linux/amd64"


class ContainerRegistry(pulumi.ComponentResource):
    """ECR repositories plus pulumi-docker builds; outputs URLs, ARNs and digests."""

    repository_urls: dict[str, pulumi.Output[str]]
    repository_names: dict[str, pulumi.Output[str]]
    repository_arns: dict[str, pulumi.Output[str]]
    repo_digests: dict[str, pulumi.Output[str]]
    kms_key_arn: pulumi.Output[str]

    def __init__(self, name: str, args: ContainerRegistryArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("mlops:registry:ContainerRegistry", name, None, opts)
        here = pulumi.ResourceOptions(parent=self)
        key = kms_key(f"{name}-key", description=f"{name} image encryption",
                      account_id=args.account_id, region=args.region, services=[],
                      tags=args.tags, opts=here)
        self.kms_key_arn = key.arn
        self.repository_urls = {}
        self.repository_names = {}
        self.repository_arns = {}
        self.repo_digests = {}
        for image, spec in args.images.items():
            repo = aws.ecr.Repository(
                f"{name}-{image}", name=f"{args.prefix}/{image}",
                image_tag_mutability="IMMUTABLE",
                image_scanning_configuration={"scan_on_push": True},
                encryption_configurations=[{"encryption_type": "KMS", "kms_key": key.arn}],
                force_delete=not args.protect, tags=args.tags,
                opts=child(self, protect=args.protect))
            aws.ecr.LifecyclePolicy(f"{name}-{image}-lifecycle", repository=repo.name,
                                    policy=lifecycle_policy(), opts=here)
            token = aws.ecr.get_authorization_token_output(registry_id=repo.registry_id,
                                                           opts=pulumi.InvokeOutputOptions(parent=self))
            tag = content_tag(args.root, spec)
            built = docker.Image(
                f"{name}-{image}-image",
                image_name=repo.repository_url.apply(lambda url, t=tag: f"{url}:{t}"),
                build=docker.DockerBuildArgs(context=str(args.root),
                                             dockerfile=str(args.root / spec.dockerfile),
                                             platform=args.platform),
                registry=docker.RegistryArgs(server=repo.repository_url,
                                             username=token.user_name,
                                             password=pulumi.Output.secret(token.password)),
                opts=here)
            self.repository_urls[image] = repo.repository_url
            self.repository_names[image] = repo.name
            self.repository_arns[image] = repo.arn
            self.repo_digests[image] = built.repo_digest
        self.register_outputs({"repository_urls": self.repository_urls,
                               "repo_digests": self.repo_digests})

    def arns(self, names: Sequence[str] | None = None) -> list[pulumi.Output[str]]:
        """Repository ARNs, all or the named ones, for IAM policies."""
        return [arn for image, arn in self.repository_arns.items() if names is None or image in names]
